"""Encoder and decoder of the HVAE reference architecture (math.md section 5).

Encoder: three 5x5 stride-2 SAME convolutions (16, 32, 32 channels) -> 4x4x32 -> dense 450
-> `mu` (linear) and `s = softplus(linear)`. Decoder mirrors it: 64 -> 450 -> 512 -> 4x4x32
-> transposed convolutions to 7x7x32, 14x14x16, 28x28x1 Bernoulli *logits*. The final bias is
one scalar, initialised from the training data (`output_bias_from_images`); all other biases
start at 0.

Initialisation (`init`): `'he'` (default, `keras.initializers.HeNormal`), `'reference'` (the
HVAE code's `N(0, 1 / sqrt(n_in + n_out))` with `n_in`, `n_out` the full activation sizes of the
layer's input and output, see `reference_initializer`) or `'glorot'` (Keras' default).

Why not the reference initialisation by default: with softplus activations it (and Glorot)
leaves the model on the plateau where the decoder ignores `z` (each pixel modelled by its
mean; the measurements are in docs/results/initialisation.md). Softplus halves a signal's
variance per layer at initialisation (its slope is 1/2 at 0); the reference init's small
weights then leave almost no `z` signal at the decoder output, and the KL term closes the
posterior before reconstruction can use it. He init (variance 2 / fan_in) compensates.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

__all__ = [
    'build_decoder',
    'build_encoder',
    'output_bias_from_images',
    'reference_initializer',
]

IMAGE_SHAPE = (28, 28, 1)


def reference_initializer(n_in, n_out, seed=None):
  """`N(0, 1/sqrt(n_in + n_out))`, the HVAE reference code's weight initialiser."""
  return keras.initializers.RandomNormal(
      stddev=1. / np.sqrt(n_in + n_out), seed=seed)


def _kernel_init(init, n_in, n_out, seed):
  if init == 'reference':
    return reference_initializer(n_in, n_out, seed)
  if init == 'he':
    return keras.initializers.HeNormal(seed)
  if init == 'glorot':
    return keras.initializers.GlorotUniform(seed)
  raise ValueError(
      f"init must be 'he', 'reference' or 'glorot', got {init!r}.")


def _seed(seed, i):
  return None if seed is None else seed + i


def build_encoder(latent_dim=64, activation='softplus', init='he',
                  seed=None, name='encoder', dtype=None):
  """Image `(b, 28, 28, 1)` in [0, 1] -> `(mu, s)`, each `(b, latent_dim)`, `s > 0`.

  `dtype` is the hidden layers' Keras dtype policy (e.g. 'mixed_bfloat16'); the output heads
  `mu` and `s` always compute in float32 (`ln s` enters the ELBO per dimension).
  """
  x = keras.Input(IMAGE_SHAPE, name='image')
  h = x
  sizes = [28 * 28 * 1, 14 * 14 * 16, 7 * 7 * 32, 4 * 4 * 32]
  for i, channels in enumerate((16, 32, 32)):
    h = keras.layers.Conv2D(
        channels, 5, strides=2, padding='same', activation=activation,
        kernel_initializer=_kernel_init(init, sizes[i], sizes[i + 1],
                                        _seed(seed, i)),
        dtype=dtype, name=f'conv{i + 1}')(h)
  h = keras.layers.Flatten()(h)
  h = keras.layers.Dense(
      450, activation=activation,
      kernel_initializer=_kernel_init(init, 512, 450, _seed(seed, 3)),
      dtype=dtype, name='dense')(h)
  mu = keras.layers.Dense(
      latent_dim, kernel_initializer=_kernel_init(init, 450, latent_dim,
                                                  _seed(seed, 4)),
      dtype='float32', name='mu')(h)
  s = keras.layers.Dense(
      latent_dim, activation='softplus',
      kernel_initializer=_kernel_init(init, 450, latent_dim, _seed(seed, 5)),
      dtype='float32', name='scale')(h)
  return keras.Model(x, [mu, s], name=name)


def build_decoder(latent_dim=64, activation='softplus', init='he',
                  output_bias=0., seed=None, name='decoder', dtype=None):
  """Latent `(b, latent_dim)` -> Bernoulli logits `(b, 28, 28, 1)`.

  `dtype` is the hidden layers' Keras dtype policy (e.g. 'mixed_bfloat16'); the logits layer
  always computes in float32 (784 Bernoulli terms per image sum into the likelihood).
  """
  z = keras.Input((latent_dim,), name='z')
  h = keras.layers.Dense(
      450, activation=activation,
      kernel_initializer=_kernel_init(init, latent_dim, 450, _seed(seed, 10)),
      dtype=dtype, name='dense1')(z)
  h = keras.layers.Dense(
      512, activation=activation,
      kernel_initializer=_kernel_init(init, 450, 512, _seed(seed, 11)),
      dtype=dtype, name='dense2')(h)
  h = keras.layers.Reshape((4, 4, 32), dtype=dtype)(h)
  # (in - 1) * 2 + 5 - 2 * 2 + output_padding: 4 -> 7 -> 14 -> 28.
  layers = [(32, 0, 'deconv1'), (16, 1, 'deconv2'), (1, 1, 'logits')]
  sizes = [4 * 4 * 32, 7 * 7 * 32, 14 * 14 * 16, 28 * 28 * 1]
  for i, (channels, output_padding, layer_name) in enumerate(layers):
    last = i == len(layers) - 1
    h = keras.layers.Conv2DTranspose(
        channels, 5, strides=2, padding='same', output_padding=output_padding,
        activation=None if last else activation,
        kernel_initializer=_kernel_init(init, sizes[i], sizes[i + 1],
                                        _seed(seed, 12 + i)),
        # One output channel: the bias is the single scalar of the reference.
        bias_initializer=(keras.initializers.Constant(float(output_bias))
                          if last else 'zeros'),
        dtype='float32' if last else dtype, name=layer_name)(h)
  return keras.Model(z, h, name=name)


def output_bias_from_images(images):
  """The reference decoder bias: mean over images of logit(the image's mean intensity).

  Args:
    images: uint8 `(n, 28, 28)` (bytes, divided by 255) or float in [0, 1].

  Returns:
    A Python float.
  """
  x = np.asarray(images)
  x = x.astype(np.float64) / 255. if x.dtype == np.uint8 else x.astype(
      np.float64)
  means = np.clip(x.reshape(len(x), -1).mean(axis=1), 1e-6, 1 - 1e-6)
  return float(np.mean(np.log(means) - np.log1p(-means)))
