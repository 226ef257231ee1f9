"""Shared pytest setup: quiet TF logs, the --runslow switch, CPU determinism."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top


def pytest_addoption(parser):
  parser.addoption('--runslow', action='store_true', default=False,
                   help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
  if config.getoption('--runslow'):
    return
  skip = pytest.mark.skip(reason='slow; run with --runslow')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)
