"""`FlowVAE`: the one ELBO / NLL code path shared by `VAE`, `HVAE` and `LangevinVAE`.

A batch travels as: image `x` -> encoder -> `q0(z | x) = N(mu, s^2)` -> `z0` -> together with a
momentum `rho0 ~ N(0, T0 I)` -> the model's K-step flow (a `tfp.bijectors.Bijector` on
`[z, rho]`, built per batch around `ln p(x, z)`) -> `(zK, rhoK)` -> decoder logits -> `ln w`.

The log importance weight (math.md section 2, the paper's Eq. 11-13 with the volume term's
sign corrected):

```none
ln w = ln p(x | zK) + ln N(zK; 0, I) + ln N(rhoK; 0, I)
       - ln q0(z0 | x) - ln m(rho0) + sum_k ln|det J_k|          # m = momentum distribution
```

For Langevin-VAE `sum_k ln|det J_k| = -K sum_d nu_d tau_d`; for HVAE it is `-(D/2) ln T0`
from the tempering. The Rao-Blackwellised estimate (paper Eq. 13) replaces `-ln q0(z0|x)` and
`-ln m(rho0)` by the entropies of `q0` and `m`, which are their expectations; with `m = N(0, I)`
it reduces to math.md's

```none
ELBO_RB = ln p(x | zK) - |zK|^2/2 - |rhoK|^2/2 + sum_d ln s_d + D - K sum_d nu_d tau_d.
```

The same `log_weights` serves training (RB, S = 1), the test ELBO and the importance-sampled
NLL (full weights, S samples, math.md section 4).
"""

import collections
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from lvae_tf import data as data_lib
from lvae_tf.models import networks

tfd = tfp.distributions

__all__ = ['FlowSample', 'FlowVAE', 'NonFiniteLossError']


class FlowSample(collections.namedtuple(
    'FlowSample', ['q0', 'momentum', 'z0', 'rho0', 'zK', 'rhoK', 'log_det'])):
  """Base distributions, base sample, flowed sample and `sum_k ln|det J_k|` (shape `(b,)`)."""
  __slots__ = ()


class NonFiniteLossError(FloatingPointError):
  """Raised when a training loss or gradient is not finite."""


def _check_images_static(x):
  """`lvae_tf.data.check_images` (static under `tf.function`), then a float tensor."""
  return tf.convert_to_tensor(data_lib.check_images(x))


def _replica_standard_normal(like, seed):
  """`N(0, I)` noise shaped like `like` `(b, D)`, the same on any number of replicas.

  Under `tf.distribute` with R replicas in sync, replica r holds rows `[r b, (r + 1) b)` of the
  global batch; it draws the global batch's noise `(R b, D)` and keeps its own rows, so every
  example gets the noise it would get on one device and a distributed run reproduces a
  single-device run up to floating-point reduction order.
  """
  context = tf.distribute.get_replica_context()
  replicas = 1 if context is None else context.num_replicas_in_sync
  if replicas == 1:
    return tf.random.stateless_normal(tf.shape(like), seed, dtype=like.dtype)
  b = tf.shape(like)[0]
  noise = tf.random.stateless_normal(
      tf.concat([[replicas * b], tf.shape(like)[1:]], 0), seed, dtype=like.dtype)
  start = tf.cast(context.replica_id_in_sync_group, tf.int32) * b
  return noise[start:start + b]


class FlowVAE(keras.Model):
  """A VAE whose approximate posterior is pushed through a K-step flow on `[z, rho]`.

  Subclasses define the flow (`flow`) and the momentum distribution
  (`momentum_distribution`); with `num_steps = 0` (plain VAE) they return `None` and the
  momentum is left out altogether.

  `train_step`/`test_step` maximise / report the batch mean of the Rao-Blackwellised ELBO so
  that `model.fit` brings the progress bar, callbacks, History, TensorBoard and
  `tf.distribute` support. Randomness is stateless, keyed by `(seed, optimizer step)` in
  training and by `(seed, evaluation batch)` in `test_step`, so a resumed run sees the same
  noise as an uninterrupted one and every validation pass uses the same noise (common random
  numbers for early stopping).
  """

  def __init__(self, latent_dim=64, num_steps=0, activation='softplus',
               init='he', output_bias=0., seed=0, gradient_counter=None,
               validate_args=False, precision='float32', name=None):
    super().__init__(name=name)
    if precision not in ('float32', 'mixed_bfloat16'):
      raise ValueError(f"precision must be 'float32' or 'mixed_bfloat16', got {precision!r}.")
    if latent_dim <= 0:
      raise ValueError(f'latent_dim must be positive, got {latent_dim}.')
    if num_steps < 0:
      raise ValueError(
          f'num_steps (K) must be >= 0, got {num_steps}.')
    self.latent_dim = int(latent_dim)
    self.num_steps = int(num_steps)
    self.seed = int(seed)
    self.gradient_counter = gradient_counter
    self.validate_args = validate_args
    # Mixed precision: the encoder's and decoder's hidden layers compute in bf16 (variables
    # stay float32); their outputs, the flow state (z, rho), step sizes, damping,
    # temperatures, log-dets and the loss are float32 (math.md section 7).
    self.precision = precision
    hidden = None if precision == 'float32' else precision
    self.encoder = networks.build_encoder(latent_dim, activation, init,
                                          seed=seed, dtype=hidden)
    self.decoder = networks.build_decoder(latent_dim, activation, init,
                                          output_bias=output_bias, seed=seed,
                                          dtype=hidden)
    self._eval_batch = tf.Variable(
        0, dtype=tf.int64, trainable=False, name='eval_batch',
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.loss_tracker = keras.metrics.Mean(name='loss')
    self.elbo_tracker = keras.metrics.Mean(name='elbo')

  # -- What a subclass defines. ------------------------------------------------

  def momentum_distribution(self, loc):
    """The distribution `m(rho0)` of the initial momentum, shaped like `loc`; None if K = 0."""
    del loc
    return None

  def flow(self, target_log_prob_fn):
    """The K-step flow bijector on `[z, rho]` around `target_log_prob_fn`; None if K = 0."""
    del target_log_prob_fn
    return None

  def flow_parameters(self):
    """Named, human-readable current flow parameters (for logs and records)."""
    return {}

  # -- The model. --------------------------------------------------------------

  def _check_images(self, x):
    """Static shape/dtype check; with `validate_args`, also finite values in [0, 1]."""
    x = _check_images_static(x)
    if self.validate_args:
      x = tf.debugging.assert_all_finite(
          x, 'Images contain NaN or Inf; expected binarised pixels in [0, 1].')
      with tf.control_dependencies([
          tf.debugging.assert_greater_equal(
              x, tf.zeros([], x.dtype),
              message='Images have values < 0; expected pixels in [0, 1].'),
          tf.debugging.assert_less_equal(
              x, tf.ones([], x.dtype),
              message='Images have values > 1; expected pixels in [0, 1].')]):
        x = tf.identity(x)
    return x

  @property
  def metrics(self):
    return [self.loss_tracker, self.elbo_tracker]

  def log_likelihood(self, x, z):
    """`ln p(x | z)`: Bernoulli log-likelihood of binary images `x` under decoder logits."""
    logits = self.decoder(z)
    return -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
        axis=[-3, -2, -1])

  def prior(self, loc):
    return tfd.MultivariateNormalDiag(tf.zeros_like(loc))

  def target_log_prob_fn(self, x):
    """`z -> ln p(x, z) = ln p(x | z) + ln N(z; 0, I)`: the flow's target (math.md notation `l`)."""
    def target(z):
      return self.log_likelihood(x, z) + self.prior(z).log_prob(z)
    return target

  def flow_sample(self, x, seed, encoded=None):
    """Draws `(z0, rho0)` from the base and pushes it through the flow.

    Args:
      x: binary images `(b, 28, 28, 1)`, float.
      seed: stateless seed, int shape `[2]`.
      encoded: optional `(mu, s)`, the encoder's output for `x` when the caller already has it
        (the NLL encodes each image once for all its importance samples).

    Returns:
      `FlowSample(q0, momentum, z0, rho0, zK, rhoK, log_det)`; for K = 0, `momentum`,
      `rho0`, `rhoK` are None and `log_det` is 0.
    """
    x = self._check_images(x)
    mu, s = self.encoder(x) if encoded is None else encoded
    q0 = tfd.MultivariateNormalDiag(mu, s)  # reparameterised: z0 = mu + s * eps
    seed_z, seed_rho = tfp.random.split_seed(seed, n=2)
    z0 = mu + s * _replica_standard_normal(mu, seed_z)
    momentum = self.momentum_distribution(mu)
    if momentum is None:
      return FlowSample(q0, None, z0, None, z0, None, tf.zeros_like(mu[..., 0]))
    rho0 = momentum.stddev() * _replica_standard_normal(mu, seed_rho)
    flow = self.flow(self.target_log_prob_fn(x))
    log_det = flow.forward_log_det_jacobian([z0, rho0])
    zk, rhok = flow.forward([z0, rho0])
    return FlowSample(q0, momentum, z0, rho0, zk, rhok,
                      tf.broadcast_to(log_det, tf.shape(mu)[:-1]))

  def log_weights(self, x, seed, rao_blackwell=False, encoded=None):
    """One importance log-weight `ln w` per image (math.md section 2).

    Args:
      x: binary images `(b, 28, 28, 1)`, float.
      seed: stateless seed, int shape `[2]`.
      rao_blackwell: use the entropies of `q0` and of the momentum distribution instead of
        the sampled `-ln q0(z0)`, `-ln m(rho0)` (paper Eq. 13): same expectation, lower
        variance. `False` gives the exact weight used by the NLL estimator.
      encoded: optional `(mu, s)` of `x` (`flow_sample`).

    Returns:
      `ln w`, shape `(b,)`.
    """
    f = self.flow_sample(x, seed, encoded)
    log_w = (self.log_likelihood(x, f.zK) + self.prior(f.zK).log_prob(f.zK) +
             (f.q0.entropy() if rao_blackwell else -f.q0.log_prob(f.z0)))
    if f.momentum is not None:
      log_w += (tfd.MultivariateNormalDiag(tf.zeros_like(f.rhoK)).log_prob(
          f.rhoK) + f.log_det + (f.momentum.entropy() if rao_blackwell
                                 else -f.momentum.log_prob(f.rho0)))
    return log_w

  def elbo(self, x, seed, rao_blackwell=True):
    """Per-image ELBO estimate (one sample), Rao-Blackwellised by default."""
    return self.log_weights(x, seed, rao_blackwell=rao_blackwell)

  def call(self, x, training=False):
    """Per-image RB-ELBO with a fixed seed (for `model(x)`; training uses `train_step`)."""
    del training
    return self.elbo(x, seed=tf.constant([self.seed, 0], tf.int32))

  # -- Keras hooks. ------------------------------------------------------------

  def _step_seed(self, salt, counter):
    # TFP's stateless seeds are int32 pairs. No replica id: under tf.distribute each replica
    # takes its rows of the global batch's noise (`_replica_standard_normal`).
    return tf.stack([
        tf.constant(self.seed % 2**20 * 1000 + salt * 100, tf.int32),
        tf.cast(counter % 2**31, tf.int32)])

  def train_step(self, data):
    x = _check_images_static(keras.utils.unpack_x_y_sample_weight(data)[0])
    seed = self._step_seed(1, self.optimizer.iterations)
    with tf.GradientTape() as tape:
      elbo = self.elbo(x, seed)
      # Mean over the GLOBAL batch: gradients are summed across replicas.
      loss = tf.nn.compute_average_loss(-elbo)
    self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
    self.loss_tracker.update_state(-elbo)
    self.elbo_tracker.update_state(elbo)
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    x = _check_images_static(keras.utils.unpack_x_y_sample_weight(data)[0])
    elbo = self.elbo(x, self._step_seed(2, self._eval_batch))
    self._eval_batch.assign_add(1)
    self.loss_tracker.update_state(-elbo)
    self.elbo_tracker.update_state(elbo)
    return {m.name: m.result() for m in self.metrics}

  def reset_metrics(self):
    # Called by Keras at the start of every evaluation: restart the evaluation noise so that
    # every validation pass uses the same draws.
    super().reset_metrics()
    self._eval_batch.assign(0)

  # -- Evaluation and generation. ----------------------------------------------

  def log_marginal_likelihood(self, x, num_samples=1000, chunk_size=100,
                              seed=(0, 0)):
    """Importance-sampled `ln p(x)` per image (math.md section 4).

    `ln p(x) ~= logsumexp_s ln w_s - ln S` with the full (not Rao-Blackwellised) weights of
    `log_weights`. Memory is bounded by evaluating `chunk_size` samples of the batch at a
    time; only the `(S, b)` weights are kept. No parameter gradients are recorded (the flow
    still differentiates `ln p(x, z)` w.r.t. `z` inside).

    Args:
      x: binary images `(b, 28, 28, 1)`.
      num_samples: S > 0.
      chunk_size: samples evaluated together (memory ~ chunk_size * b flow passes).
      seed: stateless seed `[2]`.

    Returns:
      float64 numpy array `(b,)`.
    """
    if num_samples <= 0:
      raise ValueError(f'num_samples must be positive, got {num_samples}.')
    if chunk_size <= 0:
      raise ValueError(f'chunk_size must be positive, got {chunk_size}.')
    x = _check_images_static(x)
    seeds = tfp.random.split_seed(tf.constant(seed, tf.int32),
                                  n=math.ceil(num_samples / chunk_size))
    chunks = []
    for i, start in enumerate(range(0, num_samples, chunk_size)):
      n = min(chunk_size, num_samples - start)
      chunks.append(self._log_weights_chunk(x, n, seeds[i]).numpy())
    log_w = np.concatenate(chunks, axis=0).astype(np.float64)  # (S, b)
    m = log_w.max(axis=0)
    return m + np.log(np.mean(np.exp(log_w - m), axis=0))

  @tf.function(reduce_retracing=True)
  def _log_weights_chunk(self, x, n, seed):
    b = tf.shape(x)[0]
    # Sample-major tiling: row s * b + i is sample s of image i. The encoder runs once per
    # image, not once per sample (the same numbers: it is deterministic).
    mu, s = self.encoder(x)
    encoded = (tf.tile(mu, [n, 1]), tf.tile(s, [n, 1]))
    tiled = tf.tile(x, [n, 1, 1, 1])
    return tf.reshape(self.log_weights(tiled, seed, rao_blackwell=False, encoded=encoded),
                      [n, b])

  def sample_images(self, num_images, seed=(0, 0)):
    """Bernoulli means `sigmoid(decoder(z))`, `z ~ N(0, I)`: shape `(n, 28, 28, 1)`."""
    z = tf.random.stateless_normal([num_images, self.latent_dim],
                                   seed=tf.constant(seed, tf.int32))
    return tf.sigmoid(self.decoder(z))

  def reconstruct(self, x, seed=(0, 0)):
    """Bernoulli means of `p(x | zK)` for `zK` pushed through the flow from `q0(z | x)`."""
    f = self.flow_sample(x, tf.constant(seed, tf.int32))
    return tf.sigmoid(self.decoder(f.zK))
