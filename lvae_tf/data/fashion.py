"""Fashion-MNIST from the Debian package dataset-fashion-mnist (original IDX files).

Each file's size, then sha256, is checked against `FASHION_MNIST_FILES` before it is
decompressed, and the decompressed IDX file's sha256 before it is parsed. Without the package
(or with a `data_dir`), `load_fashion_mnist` reads the TFDS data set instead.
"""

import functools
import gzip
import hashlib
import io
import os
import pathlib

from lvae_tf.data import datasets
from lvae_tf.data import errors
from lvae_tf.data import files
from lvae_tf.data import idx
from lvae_tf.data import tfds as tfds_adapter

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


def _read_fashion_file(path, gz_sha, gz_size, idx_sha, idx_size):
  """Verifies one .gz (size, then sha256), decompresses and verifies it."""
  fix = (f'reinstall the package (apt-get install --reinstall '
         f'dataset-fashion-mnist), or pass data_dir to read a prepared TFDS '
         f'fashion_mnist instead')
  size = os.stat(path).st_size
  if size != gz_size:
    raise errors.DataIntegrityError(
        f'Fashion-MNIST file {path} has {size:,} bytes, expected {gz_size:,} '
        f'(sha256 {gz_sha}). Its size alone rules it out, so it was not read. '
        f'Fix: {fix}.')
  raw, digest = files.read_exact(path, size)
  if digest != gz_sha:
    raise errors.DataIntegrityError(
        f'Fashion-MNIST file {path} failed its checksum: sha256 {digest}, '
        f'expected {gz_sha} ({gz_size:,} bytes). Nothing was parsed. '
        f'Fix: {fix}.')
  with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
    content = f.read(idx_size + 1)  # Bounded, although the sha256 already passed.
  if len(content) != idx_size or hashlib.sha256(content).hexdigest() != idx_sha:
    raise errors.DataIntegrityError(
        f'Fashion-MNIST file {path} decompresses to {len(content):,} bytes that '
        f'are not the expected IDX file (sha256 {idx_sha}, {idx_size:,} '
        f'bytes). Fix: {fix}.')
  return idx.parse_idx(content, path, images='images' in path.name)


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
    raise errors.DataIntegrityError(
        f'Fashion-MNIST in {directory}: {len(x_train)} training images but '
        f'{len(y_train)} labels, {len(x_test)} test images but {len(y_test)} '
        f'labels.')
  k = datasets.holdout_size(len(x_train))
  n = len(x_train) - k
  out = datasets.read_only(x_train[:n].copy(), y_train[:n].copy(), x_train[n:].copy(),
                           y_train[n:].copy(), x_test, y_test)
  source = (f'Fashion-MNIST, Debian package dataset-fashion-mnist: '
            f'{directory} (sha256 ok); validation = last {k:,} of the '
            f'{len(x_train):,} training images (IDX order)')
  return datasets.ImageData(*out, source=source, name='fashion_mnist', binarized=False)


def _load_fashion_debian(directory):
  """The four files in `directory`, after checking each is a regular file (cached)."""
  directory = pathlib.Path(directory)
  key = []
  for name, expected in FASHION_MNIST_FILES.items():
    path = directory / name
    problem = files.file_problem(path)
    if problem is not None:
      raise errors.DataNotFoundError(
          f'Fashion-MNIST file {path} {problem}: the directory {directory} '
          f'exists but does not hold the Debian package\'s files '
          f'{", ".join(FASHION_MNIST_FILES)}. Fix: apt-get install --reinstall '
          f'dataset-fashion-mnist (as root), or pass data_dir to read a '
          f'prepared TFDS fashion_mnist instead.')
    st = path.stat()
    key.append((name, st.st_size, st.st_mtime_ns, expected))
  return _load_fashion_cached(str(directory.resolve()), tuple(key))


def load_fashion_mnist(spec, data_dir=None):
  """Fashion-MNIST: with no `data_dir`, the Debian package if `FASHION_MNIST_DIR` exists;
  otherwise TFDS (`load_tfds`)."""
  if data_dir:
    return tfds_adapter.load_tfds(spec, data_dir)
  if os.path.isdir(FASHION_MNIST_DIR):
    return _load_fashion_debian(FASHION_MNIST_DIR)
  also = (f'; and the Debian package\'s directory {FASHION_MNIST_DIR} '
          f'does not exist')
  extra = (f'. Or, without TFDS: {FASHION_MNIST_INSTALL_HINT}, which is '
           f'read when data_dir is not given')
  return tfds_adapter.load_prepared(
      tfds_adapter.TfdsOptions(**spec.options), spec.name, tfds_adapter.default_tfds_data_dir(),
      tfds_adapter.TFDS_SEARCHED, also, extra)
