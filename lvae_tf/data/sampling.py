"""Stateless random draws from explicit seeds: seed handling, sub-seeds, `binarize`.

Every draw is a deterministic function of an explicit seed (`tf.random.stateless_*`, Philox),
so a stream of draws can be resumed at any step. Sub-seeds are `fold_in(fold_in(seed, salt), i)`
with the salts `SALT_SHUFFLE` (epoch orders) and `SALT_BINARIZE` (training batches).
"""

import numpy as np
import tensorflow as tf

ALG = 'philox'  # Explicit, so that draws do not depend on the device.
SALT_SHUFFLE = 1
SALT_BINARIZE = 2


def seed_tensor(seed):
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


def fold_in(seed, data):
  """The sub-seed of a shape-[2] seed tensor for the integer `data` (stateless_fold_in)."""
  return tf.random.experimental.stateless_fold_in(
      seed, tf.cast(data, tf.int64), alg=ALG)


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
  u = tf.random.stateless_uniform(tf.shape(p), seed=seed_tensor(seed),
                                  dtype=tf.float32, alg=ALG)
  return tf.cast(u < p, tf.float32)


def epoch_order(num, seed, epoch):
  """Stateless permutation of range(num) for `epoch` (int64).

  Its seed is `fold_in(fold_in(seed, SALT_SHUFFLE), epoch)`.
  """
  return tf.random.experimental.stateless_shuffle(
      tf.range(num, dtype=tf.int64),
      seed=fold_in(fold_in(seed, SALT_SHUFFLE), epoch), alg=ALG)
