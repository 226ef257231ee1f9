"""`tf.data` pipelines of binarised images: training stream, evaluation pass, labelled batches.

The training stream is a function of (seed, global step) only, so a killed run resumes
bit-identically with `train_dataset(..., start_step=step)`; the draws are `lvae_tf.data.sampling`'s.
"""

import numpy as np
import tensorflow as tf

from lvae_tf.data import sampling

_BINARIZATIONS = ('fixed', 'dynamic', 'none')


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
  seed = sampling.seed_tensor(seed)
  images_t = tf.constant(x)
  height, width = x.shape[1:]

  def make_batch(step):
    epoch = step // n
    k = step % n
    order = sampling.epoch_order(num, seed, epoch)
    idx = order[k * batch_size:(k + 1) * batch_size]
    if binarized:
      batch = _grey(tf.gather(images_t, idx))
    else:
      batch = sampling.binarize(tf.gather(images_t, idx), sampling.fold_in(
          sampling.fold_in(seed, sampling.SALT_BINARIZE), step))
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
    fixed = tf.cast(sampling.binarize(x, seed), tf.uint8).numpy()
    ds = tf.data.Dataset.from_tensor_slices(fixed).batch(batch_size)
    ds = ds.map(lambda b: tf.cast(b, tf.float32))
  else:  # 'dynamic' (or 'fixed' built inside a graph: same values).
    seed = sampling.seed_tensor(seed)
    images_t = tf.constant(x)

    def one_pass(_):
      drawn = tf.cast(sampling.binarize(images_t, seed), tf.uint8)
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
  seed_t = None if seed is None else sampling.seed_tensor(seed)
  if binarization == 'fixed':
    x = tf.cast(sampling.binarize(x, seed_t), tf.uint8).numpy()
  images_t = tf.constant(x)
  labels_t = tf.constant(y.astype(np.int64))

  def epoch_indices(epoch):
    if seed_t is None:
      order = tf.range(num, dtype=tf.int64)
    else:
      order = sampling.epoch_order(num, seed_t, epoch)
    return tf.data.Dataset.from_tensor_slices(order)

  epochs = (tf.data.Dataset.counter(dtype=tf.int64) if repeat else
            tf.data.Dataset.range(1))
  ds = epochs.flat_map(epoch_indices).batch(batch_size, drop_remainder=repeat)

  def make_batch(k, idx):
    batch = tf.gather(images_t, idx)
    if binarization == 'dynamic':
      batch = sampling.binarize(
          batch, sampling.fold_in(sampling.fold_in(seed_t, sampling.SALT_BINARIZE), k))
    elif binarization == 'fixed':
      batch = tf.cast(batch, tf.float32)
    else:
      batch = _grey(batch)
    return batch[..., tf.newaxis], tf.gather(labels_t, idx)

  ds = ds.enumerate().map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  return _with_options(ds.prefetch(tf.data.AUTOTUNE))
