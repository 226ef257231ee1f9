"""Tests of lvae_tf.data.load_dataset and the pipelines' `binarized` mode.

No network: the TFDS data sets are written on disk by subclasses of the real
TFDS builders (same name, version, features and directory layout) whose only
change is to generate a few dozen synthetic examples instead of downloading.
`load_dataset` then reads them through `tfds.builder(name, data_dir=...)`,
exactly as it reads a data set prepared with `tfds build`. Fashion-MNIST from
the Debian package is tested on synthetic IDX files (always) and on the
package itself when it is installed.
"""
import gzip
import hashlib
import pathlib
import struct

import numpy as np
import pytest

from lvae_tf import data
from lvae_tf.data import fashion as data_fashion

tfds = pytest.importorskip('tensorflow_datasets')

# Literal copies of the Debian package's checksums (cross-check the module).
FASHION_GZ_SHA256 = {
    'train-images-idx3-ubyte.gz':
        'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
    'train-labels-idx1-ubyte.gz':
        '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
    't10k-images-idx3-ubyte.gz':
        'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
    't10k-labels-idx1-ubyte.gz':
        '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
}
NUM = {'train': 30, 'test': 10}  # Split sizes of the synthetic data sets.


# ---------------------------------------------------------------------------
# Synthetic TFDS data sets.


def _tagged(n, offset=0):
  """n images whose row 0 spells offset + index in 0/255 bits; rows 1+ grey."""
  x = np.full((n, 28, 28), 128, np.uint8)
  bits = ((offset + np.arange(n))[:, None] >> np.arange(28)[None, :]) & 1
  x[:, 0, :] = 255 * bits
  return x


def _tags(images):
  """Tags of uint8 (N, 28, 28) images made by `_tagged`."""
  return ((np.asarray(images)[:, 0, :] // 255).astype(np.int64)
          << np.arange(28)).sum(1)


def _prepare(data_dir, name, splits, config=None):
  """Writes `splits` ({split: [example dict]}) as TFDS data set `name`."""
  cls = tfds.builder_cls(name)

  class Offline(cls, skip_registration=True):
    """The real builder, generating the given examples instead of downloading."""

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(examples)
              for split, examples in splits.items()}

    def _examples(self, examples):
      yield from enumerate(examples)

  Offline.name = cls.name
  builder = Offline(data_dir=str(data_dir), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      compute_stats=tfds.download.ComputeStatsMode.SKIP))


def _binary_images(n, seed):
  return np.random.default_rng(seed).integers(0, 2, (n, 28, 28, 1), np.uint8)


def _emnist_images(n):
  """Asymmetric images (rows != columns): a bar in row i % 28, a dot at (0, 5)."""
  x = np.zeros((n, 28, 28, 1), np.uint8)
  for i in range(n):
    x[i, i % 28, :, 0] = 200
    x[i, 0, 5, 0] = 255
  return x


def _omniglot_image(ink_columns=0, ink_rows=0):
  """105x105 RGB, white, black ink in the first columns/rows."""
  x = np.full((105, 105, 3), 255, np.uint8)
  x[:, :ink_columns] = 0
  x[:ink_rows, :] = 0
  return x


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """A TFDS data_dir with small fashion_mnist, binarized_mnist, emnist, omniglot."""
  tfds.disable_progress_bar()
  root = tmp_path_factory.mktemp('tfds')
  _prepare(root, 'fashion_mnist', {
      'train': [{'image': x[..., None], 'label': i % 10}
                for i, x in enumerate(_tagged(NUM['train']))],
      'test': [{'image': x[..., None], 'label': i % 10}
               for i, x in enumerate(_tagged(NUM['test'], offset=1000))]})
  _prepare(root, 'binarized_mnist', {
      split: [{'image': x} for x in _binary_images(n, seed)]
      for split, n, seed in (('train', 20, 1), ('validation', 6, 2),
                             ('test', 8, 3))})
  _prepare(root, 'emnist', {
      split: [{'image': x, 'label': 1 + i % 26}
              for i, x in enumerate(_emnist_images(n))]
      for split, n in (('train', 20), ('test', 5))}, config='letters')
  omniglot = [_omniglot_image(ink_columns=30), _omniglot_image(ink_rows=2)]
  _prepare(root, 'omniglot', {
      split: [{'image': omniglot[i % 2], 'alphabet': 0, 'alphabet_char_id': i,
               'label': i} for i in range(n)]
      for split, n in (('train', 10), ('test', 4))})
  return root


def _stored(root, name, split):
  """A split as TFDS stores it, in its order: (images, labels or None)."""
  builder = tfds.builder(name, data_dir=str(root))
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=(
      tfds.ReadConfig(interleave_cycle_length=1)))
  examples = list(tfds.as_numpy(ds))
  images = np.stack([e['image'] for e in examples])
  labels = (np.array([e['label'] for e in examples]) if 'label' in examples[0]
            else None)
  return images, labels


def _check_arrays(d, sizes, labels=True):
  for split, n in zip(('train', 'valid', 'test'), sizes):
    x, y = getattr(d, f'{split}_images'), getattr(d, f'{split}_labels')
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8, split
    assert not x.flags.writeable, split
    if labels:
      assert y.shape == (n,) and y.dtype == np.int64 and not y.flags.writeable
    else:
      assert y is None


# ---------------------------------------------------------------------------
# TFDS data sets.


def test_fashion_mnist_from_tfds_holds_out_the_end_of_train(tfds_dir):
  d = data.load_dataset('fashion_mnist', data_dir=tfds_dir)
  assert d.name == 'fashion_mnist' and not d.binarized
  _check_arrays(d, (27, 3, 10))  # 30 < 60,000 training images: 10% held out.
  stored_x, stored_y = _stored(tfds_dir, 'fashion_mnist', 'train')
  np.testing.assert_array_equal(d.train_images, stored_x[:27, ..., 0])
  np.testing.assert_array_equal(d.valid_images, stored_x[27:, ..., 0])
  np.testing.assert_array_equal(d.valid_labels, stored_y[27:])
  tags = np.concatenate([_tags(d.train_images), _tags(d.valid_images)])
  np.testing.assert_array_equal(np.sort(tags), np.arange(30))
  np.testing.assert_array_equal(d.train_labels, _tags(d.train_images) % 10)
  np.testing.assert_array_equal(np.sort(_tags(d.test_images)),
                                1000 + np.arange(10))
  assert d.source.startswith(
      f'TFDS fashion_mnist 3.0.1: {tfds_dir}/fashion_mnist/3.0.1; validation '
      f'= last 3 of its 30 training images (TFDS order); content sha256 ')
  assert data.load_dataset('fashion_mnist', data_dir=tfds_dir) is d  # Cached.


def test_holdout_size_policy():
  assert data.holdout_size(60_000) == 10_000  # MNIST-like, as MNIST.
  assert data.holdout_size(88_800) == 10_000  # emnist/letters.
  assert data.holdout_size(19_280) == 1_928  # omniglot: 10%.
  assert data.holdout_size(30) == 3


def test_binarized_mnist_keeps_its_splits_and_pixels(tfds_dir):
  d = data.load_dataset('binarized_mnist', data_dir=tfds_dir)
  assert d.name == 'binarized_mnist' and d.binarized
  _check_arrays(d, (20, 6, 8), labels=False)
  for split, field in (('train', 'train_images'), ('validation', 'valid_images'),
                       ('test', 'test_images')):
    stored, _ = _stored(tfds_dir, 'binarized_mnist', split)
    assert set(np.unique(stored)) == {0, 1}
    np.testing.assert_array_equal(getattr(d, field), 255 * stored[..., 0])
  assert 'validation = its own validation split' in d.source


def test_binarized_images_pass_through_the_pipelines_unchanged(tfds_dir):
  d = data.load_dataset('binarized_mnist', data_dir=tfds_dir)
  x = d.train_images
  expected = x[..., None] / np.float32(255)  # Exactly 0. or 1.
  stream = [b.numpy() for b in data.train_dataset(
      x, 4, seed=(3, 4), binarized=True).take(12)]  # 2.4 epochs.
  # Same order as the default (dynamic) stream, whose Bernoulli draw is the
  # identity on 0/255 pixels: the batches are equal, and are images of x.
  dynamic = [b.numpy() for b in data.train_dataset(x, 4, seed=(3, 4)).take(12)]
  by_bytes = {im.tobytes(): i for i, im in enumerate(expected)}
  seen = []
  for b, b_dyn in zip(stream, dynamic):
    assert b.dtype == np.float32 and b.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(b, b_dyn)
    seen.extend(by_bytes[im.tobytes()] for im in b)
  np.testing.assert_array_equal(np.sort(seen[:20]), np.arange(20))  # Epoch 0.
  resumed = [b.numpy() for b in data.train_dataset(
      x, 4, seed=(3, 4), start_step=7, binarized=True).take(5)]
  for s, b in enumerate(resumed, 7):
    np.testing.assert_array_equal(b, stream[s], err_msg=f'step {s}')
  for mode in ('fixed', 'dynamic', 'none'):
    got = np.concatenate(list(data.eval_dataset(
        x, 6, seed=(1, 2), binarization=mode, binarized=True).as_numpy_iterator()))
    np.testing.assert_array_equal(got, expected, err_msg=mode)
  got = np.concatenate([b for b, _ in data.labeled_dataset(
      x, np.zeros(20, np.int64), 8, seed=5, binarization='dynamic',
      binarized=True).as_numpy_iterator()])
  np.testing.assert_array_equal(np.sort(got.reshape(20, -1), 0),
                                np.sort(expected.reshape(20, -1), 0))


def test_binarized_true_refuses_grey_or_0_1_bytes():
  grey = _tagged(6)  # Rows 1+ are 128.
  with pytest.raises(ValueError, match=r'binarized=True needs binary images: '
                     r'every uint8 pixel 0 or 255, got values in \[0, 255\]'):
    data.train_dataset(grey, 2, seed=0, binarized=True)
  with pytest.raises(ValueError, match=r'multiply by 255'):
    data.eval_dataset(_binary_images(4, 0), 2, None, binarized=True)
  with pytest.raises(ValueError, match=r'every float32 pixel 0 or 1'):
    data.labeled_dataset(np.full((2, 28, 28), .5, np.float32), [0, 1], 2,
                         binarized=True)


def test_emnist_is_transposed_to_mnist_orientation(tfds_dir):
  d = data.load_dataset('emnist/letters', data_dir=tfds_dir)
  assert d.name == 'emnist/letters' and not d.binarized
  _check_arrays(d, (18, 2, 5))
  stored_x, stored_y = _stored(tfds_dir, 'emnist/letters', 'train')
  np.testing.assert_array_equal(
      np.concatenate([d.train_images, d.valid_images]),
      np.transpose(stored_x[..., 0], (0, 2, 1)))
  np.testing.assert_array_equal(d.train_labels, stored_y[:18])
  # The stored bar in row r is now a column; the dot at (0, 5) is at (5, 0).
  assert (d.train_images[:, 5, 0] == 255).all()
  assert 'transposed to MNIST orientation' in d.source
  with pytest.raises(data.DataNotFoundError,  # emnist = emnist/byclass.
                     match=f'`tfds build emnist/byclass --data_dir={tfds_dir}`'):
    data.load_dataset('emnist', data_dir=tfds_dir)


def test_omniglot_is_inverted_grey_and_area_resized(tfds_dir):
  d = data.load_dataset('omniglot', data_dir=tfds_dir)
  _check_arrays(d, (9, 1, 4))
  images = np.concatenate([d.train_images, d.valid_images, d.test_images])
  for im in images:
    if im[5, 0] == 255:  # 30 black columns of 105: 30 / 3.75 = 8 columns.
      expected = np.zeros((28, 28), np.uint8)
      expected[:, :8] = 255
    else:  # 2 black rows: row 0 is 2 / 3.75 ink, 255 * 0.533 = 136.
      expected = np.zeros((28, 28), np.uint8)
      expected[0] = 136
    np.testing.assert_array_equal(im, expected)
  assert {im[5, 0] for im in images} == {0, 255}  # Both kinds present.
  assert 'last 1 of its 10 training images' in d.source
  assert 'inverted grey, area-resized to 28x28' in d.source


# ---------------------------------------------------------------------------
# Errors.


def test_not_prepared_says_where_it_looked_and_how_to_prepare(tmp_path):
  empty = tmp_path / 'tfds'
  empty.mkdir()
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_dataset('kmnist', data_dir=empty)
  assert str(e.value) == (
      f"TFDS data set 'kmnist' (version 3.0.1) is not prepared in data_dir "
      f"{empty}: no {empty}/kmnist/3.0.1/dataset_info.json. Nothing is "
      f"downloaded at run time. Fix: on a machine with network access run "
      f"`tfds build kmnist --data_dir={empty}`, or in Python "
      f"`tensorflow_datasets.builder('kmnist', data_dir='{empty}')"
      f".download_and_prepare()`, then copy the directory {empty}/kmnist to "
      f"the same place under this machine's data_dir.")
  assert not list(empty.iterdir())  # Nothing written, nothing downloaded.
  (empty / 'kmnist' / '2.0.0').mkdir(parents=True)
  with pytest.raises(data.DataNotFoundError,
                     match=r'found other versions there: 2\.0\.0; this '
                     r'tensorflow_datasets reads 3\.0\.1'):
    data.load_dataset('kmnist', data_dir=empty)


def test_not_prepared_exits_through_the_cli_with_status_2(tmp_path, capsys):
  from lvae_tf import cli  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as e:
    try:  # What experiments/table1.py does with a DataError.
      data.load_dataset('emnist/digits', data_dir=tmp_path)
    except data.DataError as err:
      cli.fail(str(err))
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: TFDS data set 'emnist/digits' (version 3.1.0) "
                        f"is not prepared in data_dir {tmp_path}")
  assert f'`tfds build emnist/digits --data_dir={tmp_path}`' in err


def test_default_data_dir_and_fashion_mnist_without_the_package(
    tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  assert data.default_tfds_data_dir() == str(tmp_path)
  monkeypatch.setattr(data_fashion, 'FASHION_MNIST_DIR', str(tmp_path / 'no-deb'))
  with pytest.raises(data.DataNotFoundError) as e:
    data.load_dataset('fashion_mnist')
  msg = str(e.value)
  assert msg.startswith(
      f"TFDS data set 'fashion_mnist' (version 3.0.1) is not prepared in "
      f"data_dir {tmp_path} (TFDS' default: $TFDS_DATA_DIR, else "
      f"~/tensorflow_datasets; pass data_dir to look elsewhere): no "
      f"{tmp_path}/fashion_mnist/3.0.1/dataset_info.json; and the Debian "
      f"package's directory {tmp_path / 'no-deb'} does not exist.")
  assert msg.endswith(
      'Or, without TFDS: apt-get install dataset-fashion-mnist (as root), '
      'which is read when data_dir is not given.')


def test_data_dir_that_is_a_file(tmp_path):
  f = tmp_path / 'file'
  f.write_text('x')
  with pytest.raises(data.DataNotFoundError,
                     match=f'TFDS data_dir {f} exists and is not a directory'):
    data.load_dataset('kmnist', data_dir=f)


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(data.UnknownDatasetError) as e:
    data.load_dataset('cifar10')
  assert str(e.value) == (
      "unknown data set 'cifar10'; known: mnist, binarized_mnist, "
      "fashion_mnist, kmnist, emnist, emnist/byclass, emnist/bymerge, "
      "emnist/balanced, emnist/letters, emnist/digits, emnist/mnist, "
      "omniglot.")
  assert isinstance(e.value, data.DataError)
  assert isinstance(e.value, ValueError)


def test_mnist_is_load_mnist_and_ignores_data_dir(tmp_path, monkeypatch):
  monkeypatch.delenv(data.ENV_VAR, raising=False)
  m = data.load_dataset()
  assert m is data.load_mnist() is data.load_dataset('mnist', data_dir=tmp_path)
  assert isinstance(m, data.Mnist) and data.Mnist is data.ImageData
  assert m.name == 'mnist' and not m.binarized


# ---------------------------------------------------------------------------
# Fashion-MNIST from the Debian package.


def _gz_idx(path, array, labels):
  if labels:
    header = struct.pack('>II', 0x801, len(array))
  else:
    header = struct.pack('>IIII', 0x803, *array.shape)
  idx = header + array.astype(np.uint8).tobytes()
  path.write_bytes(gzip.compress(idx, mtime=0))
  return idx


@pytest.fixture
def fake_debian(tmp_path, monkeypatch):
  """Synthetic Fashion-MNIST IDX files, declared as the package's files."""
  directory = tmp_path / 'fashion-mnist'
  directory.mkdir()
  contents = {
      'train-images-idx3-ubyte.gz': (_tagged(30), False),
      'train-labels-idx1-ubyte.gz': (np.arange(30) % 10, True),
      't10k-images-idx3-ubyte.gz': (_tagged(10, offset=1000), False),
      't10k-labels-idx1-ubyte.gz': (np.arange(10) % 10, True),
  }
  files = {}
  for name, (array, labels) in contents.items():
    idx = _gz_idx(directory / name, array, labels)
    gz = (directory / name).read_bytes()
    files[name] = (hashlib.sha256(gz).hexdigest(), len(gz),
                   hashlib.sha256(idx).hexdigest(), len(idx))
  monkeypatch.setattr(data_fashion, 'FASHION_MNIST_DIR', str(directory))
  monkeypatch.setattr(data_fashion, 'FASHION_MNIST_FILES', files)
  return directory


def test_debian_fashion_mnist_is_parsed_and_split(fake_debian):
  d = data.load_dataset('fashion_mnist')
  _check_arrays(d, (27, 3, 10))
  np.testing.assert_array_equal(_tags(d.train_images), np.arange(27))
  np.testing.assert_array_equal(_tags(d.valid_images), [27, 28, 29])
  np.testing.assert_array_equal(d.valid_labels, [7, 8, 9])
  np.testing.assert_array_equal(_tags(d.test_images), 1000 + np.arange(10))
  assert d.source == (
      f'Fashion-MNIST, Debian package dataset-fashion-mnist: {fake_debian} '
      f'(sha256 ok); validation = last 3 of the 30 training images (IDX order)')


def test_debian_fashion_mnist_corrupt_resized_or_missing(fake_debian):
  name = 't10k-labels-idx1-ubyte.gz'
  path = fake_debian / name
  sha, size = data_fashion.FASHION_MNIST_FILES[name][:2]
  raw = bytearray(path.read_bytes())
  raw[-1] ^= 1
  path.write_bytes(bytes(raw))
  with pytest.raises(data.DataIntegrityError) as e:
    data.load_dataset('fashion_mnist')
  assert str(e.value).startswith(
      f'Fashion-MNIST file {path} failed its checksum: sha256 '
      f'{hashlib.sha256(raw).hexdigest()}, expected {sha} ({size:,} bytes). '
      f'Nothing was parsed. Fix: reinstall the package')
  path.write_bytes(bytes(raw) + b'x')
  with pytest.raises(data.DataIntegrityError,
                     match=f'has {size + 1:,} bytes, expected {size:,}.*'
                     f'not read'):
    data.load_dataset('fashion_mnist')
  path.unlink()
  with pytest.raises(data.DataNotFoundError,
                     match=f'Fashion-MNIST file {path} does not exist: the '
                     f'directory {fake_debian} exists but'):
    data.load_dataset('fashion_mnist')


_DEBIAN = pathlib.Path('/usr/share/datasets/fashion-mnist')


@pytest.mark.skipif(
    not _DEBIAN.is_dir(),
    reason='Debian package dataset-fashion-mnist not installed '
           '(apt-get install dataset-fashion-mnist)')
def test_real_debian_fashion_mnist():
  assert data.FASHION_MNIST_DIR == str(_DEBIAN)
  assert {k: v[0] for k, v in data.FASHION_MNIST_FILES.items()} == (
      FASHION_GZ_SHA256)
  d = data.load_dataset('fashion_mnist')
  _check_arrays(d, (50_000, 10_000, 10_000))
  assert d.source.startswith(
      f'Fashion-MNIST, Debian package dataset-fashion-mnist: {_DEBIAN} '
      f'(sha256 ok)')
  # Published figures of Fashion-MNIST.
  np.testing.assert_array_equal(d.train_labels[:10],
                                [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
  np.testing.assert_array_equal(d.test_labels[:10],
                                [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
  y = np.concatenate([d.train_labels, d.valid_labels])
  np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(d.test_labels), [1000] * 10)
  hist = sum(np.bincount(x.ravel(), minlength=256)
             for x in (d.train_images, d.valid_images))
  v = np.arange(256) / 255.
  mean = (hist * v).sum() / hist.sum()
  assert mean == pytest.approx(0.2860, abs=5e-5)
  assert np.sqrt((hist * v**2).sum() / hist.sum() - mean**2) == pytest.approx(
      0.3530, abs=5e-5)
  assert data.load_dataset('fashion_mnist') is d  # Cached.


@pytest.mark.slow
@pytest.mark.parametrize('name', ['binarized_mnist', 'fashion_mnist'])
def test_train_and_evaluate_on_a_tfds_dataset(tfds_dir, tmp_path, name):
  """Slow (trains; fast cover: test_binarized_images_pass_through_the_pipelines_unchanged).

  `--dataset`/`--data_dir` end to end: a tiny run trains and evaluates on the TFDS data."""
  from lvae_tf import train  # pylint: disable=g-import-not-at-top
  config = train.Config.from_preset(
      'tiny', flow='langevin', num_steps=1, dataset=name, data_dir=str(tfds_dir), batch_size=4,
      train_images=0, valid_images=0, test_images=0, nll_test_images=4, nll_batch_size=4,
      eval_batch_size=4, max_epochs=1, verbose=0, precision='float32')
  record = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert record['dataset'] == name and name in record['data_source']
  assert record['metrics']['train_steps'] == config.steps_per_epoch
  assert np.isfinite(record['metrics']['nll_mean']) and np.isfinite(record['metrics']['test_elbo'])
  # Classifier FID/IS only where the classifier applies (digits).
  assert ('classifier_fid' in record['metrics']) == (name == 'binarized_mnist')
