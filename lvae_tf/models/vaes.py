"""The three models of the paper's comparison: `VAE` (K = 0), `HVAE`, `LangevinVAE`.

All share `FlowVAE` (encoder, decoder, ELBO, NLL); they differ only in the momentum
distribution and the flow bijector, which come from `lvae_tf.bijectors` -- the same code path
for training, sampling and NLL. Learned flow parameters are Keras weights of the model (so
they appear in `trainable_variables`, receive gradients, and are checkpointed); the bijector is
rebuilt from them inside every step. `learn_flow=False` freezes them.
"""

import collections.abc

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from lvae_tf import bijectors as lb
from lvae_tf import config as config_lib
from lvae_tf import registry
from lvae_tf.models.base import FlowVAE

tfd = tfp.distributions

__all__ = ['HVAE', 'LangevinVAE', 'MODELS', 'VAE']


def _logit(p):
  return float(np.log(p) - np.log1p(-p))


def _softplus_inverse(y):
  return float(np.log(np.expm1(y)))


def _check_range(name, value, low, high):
  if not low < value < high:
    raise ValueError(f'{name} must be in ({low}, {high}), got {value}.')


class VAE(FlowVAE):
  """The plain VAE (K = 0): the bound of Kingma & Welling (2014) with a Gaussian `q0`."""

  def __init__(self, num_steps=0, **kwargs):
    if num_steps:
      raise ValueError(f'VAE has no flow: num_steps must be 0, got {num_steps}.')
    kwargs.setdefault('name', 'vae')
    super().__init__(num_steps=0, **kwargs)


class LangevinVAE(FlowVAE):
  """Langevin-VAE: K quasi-symplectic Langevin steps (math.md section 1), one gradient each.

  Learned per-dimension step size `tau = 0.5 * sigmoid(theta_tau)` (the transform HVAE uses for
  its leapfrog step size, so both flows are parameterised alike; with `min_step_size` > 0,
  `tau = floor + (0.5 - floor) sigmoid(theta_tau)`) and damping
  `nu = softplus(theta_nu)`. The flow's log-det is `-K sum_d nu_d tau_d` (paper Theorem 2 with
  the dimension factor; it enters the ELBO with a minus sign, math.md section 2).

  The initial step size (0.2) is HVAE's, so both flows start alike (a smaller one left a K = 1
  flow close to the identity: docs/results/damping.md, "Initial step size").
  """

  def __init__(self, num_steps=10, step_size=0.2, damping=None,
               damping_shape='per_dimension', learn_flow=True,
               initial_temperature=1.5, min_step_size=0., **kwargs):
    kwargs.setdefault('name', 'langevin_vae')
    if num_steps < 1:
      raise ValueError(
          f'LangevinVAE needs num_steps >= 1, got {num_steps} (use VAE for K = 0).')
    _check_range('step_size', step_size, 0., 0.5)
    if not 0. <= min_step_size <= step_size:
      raise ValueError(f'min_step_size must be in [0, step_size = {step_size}], got '
                       f'{min_step_size}.')
    if damping is None:
      damping = config_lib.matched_damping(num_steps, step_size,
                                           initial_temperature)
    if not damping > 0:
      raise ValueError(f'damping must be > 0 (softplus-parameterised), got '
                       f'{damping}.')
    if damping_shape not in config_lib.CHOICES['damping_shape']:
      raise ValueError(f"damping_shape must be one of "
                       f"{config_lib.CHOICES['damping_shape']}, got {damping_shape!r}.")
    super().__init__(num_steps=num_steps, **kwargs)
    d = self.latent_dim
    self.damping_shape = damping_shape
    self.min_step_size = float(min_step_size)
    # (step - floor) / (0.5 - floor) is 2 * step exactly for floor 0 (a power-of-two divisor).
    self.step_size_logit = self.add_weight(
        name='step_size_logit', shape=[d], trainable=learn_flow,
        initializer=keras.initializers.Constant(
            _logit((step_size - self.min_step_size) / (0.5 - self.min_step_size))))
    self.damping_raw = self.add_weight(
        name='damping_raw', shape=[d] if damping_shape == 'per_dimension' else [],
        trainable=learn_flow,
        initializer=keras.initializers.Constant(_softplus_inverse(damping)))

  @property
  def step_size(self):
    """tau in [min_step_size, 0.5): `0.5 sigmoid(theta)` when there is no floor."""
    if not self.min_step_size:
      return 0.5 * tf.sigmoid(self.step_size_logit)
    return self.min_step_size + (0.5 - self.min_step_size) * tf.sigmoid(self.step_size_logit)

  @property
  def damping(self):
    """nu, shape `[D]` (per dimension) or `[]` (scalar, the paper's)."""
    return tf.nn.softplus(self.damping_raw)

  def momentum_distribution(self, loc):
    return tfd.MultivariateNormalDiag(tf.zeros_like(loc))

  def flow(self, target_log_prob_fn):
    return lb.langevin_flow(
        target_log_prob_fn, self.num_steps, self.step_size, self.damping,
        gradient_counter=self.gradient_counter,
        validate_args=self.validate_args)

  def flow_parameters(self):
    tau = self.step_size.numpy()
    nu = np.broadcast_to(self.damping.numpy(), tau.shape)
    return {'step_size_mean': float(tau.mean()), 'damping_mean': float(nu.mean()),
            'log_det_per_step': float(-(tau * nu).sum())}


class HVAE(FlowVAE):
  """Hamiltonian VAE (Caterini, Doucet & Sejdinovic, 2018), math.md section 3.

  K tempered leapfrog steps with learned per-dimension step size `eps = 0.5 * sigmoid(theta)`.
  Tempering:

  * `'fixed'` (default, the HVAE paper's main setting): learned `T0 = 1 + exp(theta_T)`,
    quadratic schedule `T_k = (1 - T0) k^2 / K^2 + T0`, `alpha_k = sqrt(T_k / T_{k-1})`;
  * `'free'`: K learned `alpha_k = sigmoid(theta_k)`, `T0 = prod(alpha_k)^-2`;
  * `'none'`: `alpha_k = 1`, `T0 = 1`.

  `rho0 ~ N(0, T0 I)`; the tempering's log-det `-(D/2) ln T0` cancels the wider momentum's
  entropy in the RB-ELBO. `gradient_mode='reference'` evaluates `grad ln p(x, z)` twice per
  step (2K, as the reference code and the paper's comparison); `'cached'` reuses the
  end-of-step gradient (K + 1), the honest baseline.
  """

  TEMPERINGS = config_lib.CHOICES['tempering']

  def __init__(self, num_steps=10, step_size=0.2, tempering='fixed',
               initial_temperature=1.5, gradient_mode='reference',
               learn_flow=True, **kwargs):
    kwargs.setdefault('name', 'hvae')
    if num_steps < 1:
      raise ValueError(
          f'HVAE needs num_steps >= 1, got {num_steps} (use VAE for K = 0).')
    if tempering not in self.TEMPERINGS:
      raise ValueError(
          f'tempering must be one of {self.TEMPERINGS}, got {tempering!r}.')
    if gradient_mode not in config_lib.CHOICES['hvae_gradient']:
      raise ValueError(f"gradient_mode must be one of {config_lib.CHOICES['hvae_gradient']}, "
                       f'got {gradient_mode!r}.')
    _check_range('step_size', step_size, 0., 0.5)
    if initial_temperature <= 1.:
      raise ValueError(f'initial_temperature must be > 1, got '
                       f'{initial_temperature}.')
    super().__init__(num_steps=num_steps, **kwargs)
    self.tempering = tempering
    self.gradient_mode = gradient_mode
    self.step_size_logit = self.add_weight(
        name='step_size_logit', shape=[self.latent_dim], trainable=learn_flow,
        initializer=keras.initializers.Constant(_logit(2. * step_size)))
    if tempering == 'fixed':
      self.temperature_raw = self.add_weight(
          name='temperature_raw', shape=[], trainable=learn_flow,
          initializer=keras.initializers.Constant(
              float(np.log(initial_temperature - 1.))))
    elif tempering == 'free':
      self.alpha_logit = self.add_weight(
          name='alpha_logit', shape=[num_steps], trainable=learn_flow,
          initializer=keras.initializers.Constant(_logit(0.9)))

  @property
  def step_size(self):
    return 0.5 * tf.sigmoid(self.step_size_logit)

  @property
  def initial_temperature(self):
    if self.tempering == 'fixed':
      return 1. + tf.exp(self.temperature_raw)
    if self.tempering == 'free':
      return tf.exp(-2. * tf.reduce_sum(tf.math.log_sigmoid(self.alpha_logit)))
    return tf.constant(1., self.step_size_logit.dtype)

  @property
  def alphas(self):
    if self.tempering == 'fixed':
      return lb.fixed_tempering(self.initial_temperature, self.num_steps)
    if self.tempering == 'free':
      return tf.sigmoid(self.alpha_logit)
    return tf.ones([self.num_steps], self.step_size_logit.dtype)

  def momentum_distribution(self, loc):
    scale = tf.sqrt(tf.cast(self.initial_temperature, loc.dtype))
    return tfd.MultivariateNormalDiag(tf.zeros_like(loc),
                                      scale * tf.ones_like(loc))

  def flow(self, target_log_prob_fn):
    return lb.TemperedLeapfrog(
        target_log_prob_fn, self.step_size, self.alphas,
        gradient_mode=self.gradient_mode,
        gradient_counter=self.gradient_counter,
        validate_args=self.validate_args)

  def flow_parameters(self):
    return {'step_size_mean': float(self.step_size.numpy().mean()),
            'initial_temperature': float(self.initial_temperature.numpy())}


class _Models(collections.abc.Mapping):
  """`MODELS[flow]`: the model class of each registered flow (`lvae_tf.registry`)."""

  def __getitem__(self, name):
    if name not in registry.flow_names():
      raise KeyError(name)
    return registry.flow(name).model_class()

  def __iter__(self):
    return iter(registry.flow_names())

  def __len__(self):
    return len(registry.flow_names())


MODELS = _Models()
