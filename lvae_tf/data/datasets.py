"""The data set type and the one entry point: `ImageData`, `load_dataset`, the holdout policy.

`load_dataset(name)` looks `name` up in the data set registry (`lvae_tf.registry`) and calls
its loader (`lvae_tf.data.mnist`, `lvae_tf.data.tfds`, `lvae_tf.data.fashion`, or one
registered elsewhere); every loader returns an `ImageData`.
"""

import dataclasses
import hashlib

import numpy as np

from lvae_tf import registry
from lvae_tf.data import errors


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


#: Validation images taken from the end of a training split that has no
#: validation split, when it has at least `HOLDOUT_MIN_TRAIN` images (else 10%).
HOLDOUT = 10_000
HOLDOUT_MIN_TRAIN = 60_000


def holdout_size(num_train):
  """Validation images cut from the end of a training split without one.

  `HOLDOUT` (10,000) when the split has at least `HOLDOUT_MIN_TRAIN` (60,000)
  images, as for MNIST; otherwise 10% of it (rounded down).
  """
  return HOLDOUT if num_train >= HOLDOUT_MIN_TRAIN else num_train // 10


def read_only(*arrays):
  """Makes the arrays (None skipped) read-only, as `ImageData` shares them; returns them."""
  for a in arrays:
    if a is not None:
      a.setflags(write=False)
  return arrays


def fingerprint(arrays):
  """First 16 hex digits of the sha256 of the arrays' bytes (and shapes)."""
  h = hashlib.sha256()
  for a in arrays:
    if a is None:
      h.update(b'none')
      continue
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).data)
  return h.hexdigest()[:16]


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
    raise errors.UnknownDatasetError(
        f'unknown data set {name!r}; known: {", ".join(known)}.')
  spec = registry.dataset(name.strip())
  data = spec.load(data_dir if data_dir is not None and str(data_dir) else None)
  for split in ('train', 'valid', 'test'):
    images = getattr(data, f'{split}_images')
    if tuple(images.shape[1:]) != tuple(spec.image_shape[:2]):
      raise errors.DataIntegrityError(
          f'data set {spec.name!r}: {split} images have shape {images.shape}, expected '
          f'(N, {spec.image_shape[0]}, {spec.image_shape[1]}) (DatasetSpec.image_shape).')
  return data
