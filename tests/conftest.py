"""Shared pytest setup: quiet TF logs; the `slow` marker; trained runs shared by the session.

`make test` (CI) runs every test; `make test-fast` deselects those marked `slow` (subprocess
training runs, notebooks, multi-process distribution), each of which names in its docstring
the fast test that covers the same claim where one exists.

Training is what makes tests slow: a test that needs *a* trained run, not one of its own, takes
`tiny_vae_run` (trained once per session), or `tiny_vae_copy` to write into it.
"""
import dataclasses
import os
import shutil

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A run directory written by `train_and_evaluate`, with its config and record."""
  config: object  # lvae_tf.config.Config, resolved as training resolved it
  workdir: str
  record: dict


@pytest.fixture(scope='session')
def tiny_vae_run(tmp_path_factory):
  """A tiny-preset VAE trained for one epoch on MNIST (float32, deterministic, quiet).

  Shared by every test of the session: read it, never write into it (`tiny_vae_copy`).
  The directory is named by `lvae_tf.config.run_name`, as `experiments/table1.py` names it.
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from lvae_tf import train  # pylint: disable=g-import-not-at-top
  config = config_lib.Config.from_preset('tiny', flow='vae', num_steps=0, max_epochs=1,
                                         verbose=0, deterministic=True, precision='float32')
  workdir = tmp_path_factory.mktemp('tiny_vae_run') / 'runs' / config_lib.run_name(config)
  record = train.train_and_evaluate(config, str(workdir))
  return TrainedRun(config, str(workdir), record)


@pytest.fixture
def tiny_vae_copy(tiny_vae_run, tmp_path):
  """A private copy of `tiny_vae_run` (`<tmp_path>/<run name>`), to resume, damage or extend."""
  target = tmp_path / os.path.basename(tiny_vae_run.workdir)
  shutil.copytree(tiny_vae_run.workdir, target)
  return dataclasses.replace(tiny_vae_run, workdir=str(target))
