"""The TFDS adapter: data sets prepared beforehand in a TFDS data_dir, read as `ImageData`.

The builder is only asked whether the data is prepared (`download_and_prepare` is never
called); a missing data set raises `DataNotFoundError` with the `tfds build` command that
prepares it. Images are converted to MNIST's 28x28 byte convention (EMNIST transposed back,
Omniglot inverted and area-resized, 0/1 binarisations stored as 0/255).
"""

import dataclasses
import functools
import os
import pathlib

import numpy as np
import tensorflow as tf

from lvae_tf import registry
from lvae_tf.data import datasets
from lvae_tf.data import errors
from lvae_tf.data import files

_TFDS_PIP = 'pip install tensorflow-datasets==4.9.10 (it is in requirements.txt)'


@dataclasses.dataclass(frozen=True)
class TfdsOptions:
  """How `load_tfds` reads one data set (its `lvae_tf.registry.DatasetSpec.options`)."""
  tfds_name: str            # Name for `tfds.builder` ('emnist/letters').
  has_validation: bool = False  # The TFDS data set has a 'validation' split.
  binarized: bool = False   # Pixels are 0/1 (stored as 0/255 in ImageData).
  transpose: bool = False   # EMNIST: stored transposed relative to MNIST.
  omniglot: bool = False    # 105x105 RGB -> inverted grey, area-resized to 28.
  has_labels: bool = True


def _tfds_spec(name):
  """The `TfdsOptions` of a registered TFDS data set."""
  return TfdsOptions(**registry.dataset(name).options)


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.DataNotFoundError(
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
  return errors.DataNotFoundError(
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
    raise errors.DataIntegrityError(
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
    raise errors.DataIntegrityError(
        f'TFDS data set {spec.tfds_name} in {path}: reading split {split!r} '
        f'failed: {e.message}') from e
  x = (np.concatenate(images) if images else
       np.zeros((0, 28, 28), np.uint8))
  expected_n = builder.info.splits[split].num_examples
  if len(x) != expected_n:
    raise errors.DataIntegrityError(
        f'TFDS data set {spec.tfds_name} in {path}: split {split!r} has '
        f'{len(x):,} images, its dataset_info.json says {expected_n:,}.')
  if spec.binarized:
    if x.size and x.max() > 1:
      raise errors.DataIntegrityError(
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
    k = datasets.holdout_size(len(x_train))
    n = len(x_train) - k
    x_valid, y_valid = x_train[n:].copy(), (
        None if y_train is None else y_train[n:].copy())
    x_train, y_train = x_train[:n].copy(), (
        None if y_train is None else y_train[:n].copy())
    policy = (f'last {k:,} of its {n + k:,} training images (TFDS order)')
  arrays = datasets.read_only(x_train, y_train, x_valid, y_valid, x_test, y_test)
  source = (f'TFDS {spec.tfds_name} {builder.version}: {path}; validation = '
            f'{policy}; content sha256 {datasets.fingerprint(arrays)}')
  if spec.omniglot:
    source += '; 105x105 RGB -> inverted grey, area-resized to 28x28'
  elif spec.transpose:
    source += '; transposed to MNIST orientation'
  return datasets.ImageData(*arrays, source=source, name=name,
                            binarized=spec.binarized)


def load_prepared(spec, name, data_dir, searched='', also='', extra=''):
  """The data set `spec` (`TfdsOptions`) prepared in `data_dir`, as the `ImageData` `name`.

  `searched`, `also` and `extra` are added to the message of the `DataNotFoundError` raised
  when it is not prepared there (how `data_dir` was chosen, what else was tried, another fix).
  """
  tfds = _import_tfds()
  data_dir = pathlib.Path(data_dir).expanduser()
  if data_dir.exists() and not data_dir.is_dir():
    raise errors.DataNotFoundError(
        f'TFDS data_dir {data_dir} {files.file_problem(data_dir) or "exists"} and '
        f'is not a directory; expected the directory that holds prepared TFDS '
        f'data sets (for {spec.tfds_name!r}: '
        f'{data_dir}/{spec.tfds_name}/<version>/dataset_info.json).')
  data_dir = str(data_dir.absolute())
  try:
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataIntegrityError(
        f'TFDS data set {spec.tfds_name!r} in data_dir {data_dir} could not be '
        f'opened: {type(e).__name__}: {e}') from e
  if not prepared:
    raise _not_prepared(spec, builder, data_dir, searched, also, extra)
  info = pathlib.Path(os.fspath(builder.data_dir)) / 'dataset_info.json'
  return _load_tfds_cached(name, data_dir, str(info.parent),
                           info.stat().st_mtime_ns)


#: How the default data_dir was chosen, for the messages.
TFDS_SEARCHED = (' (TFDS\' default: $TFDS_DATA_DIR, else ~/tensorflow_datasets; '
                 'pass data_dir to look elsewhere)')


def load_tfds(spec, data_dir=None):
  """The loader of a registered TFDS data set (`spec.options`: see `TfdsOptions`), prepared in
  `data_dir` (None: TFDS' default)."""
  tfds_spec = TfdsOptions(**spec.options)
  if data_dir:
    return load_prepared(tfds_spec, spec.name, data_dir)
  return load_prepared(tfds_spec, spec.name, default_tfds_data_dir(), TFDS_SEARCHED)
