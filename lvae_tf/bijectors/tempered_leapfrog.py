"""The HVAE flow: K tempered leapfrog steps as one bijector (math.md s. 3)."""

import tensorflow as tf
import tensorflow_probability as tfp

from tensorflow_probability.python.internal import assert_util
from tensorflow_probability.python.internal import dtype_util
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import prefer_static as ps
from tensorflow_probability.python.internal import tensor_util

from lvae_tf.bijectors import gradients

tfb = tfp.bijectors

__all__ = [
    'TemperedLeapfrog',
    'fixed_tempering',
    'hamiltonian_flow',
]

GRADIENT_MODES = ('reference', 'cached')


class TemperedLeapfrog(tfb.Bijector):
  """The whole K-step tempered leapfrog flow of HVAE on the state `[z, rho]`.

  The Hamiltonian VAE flow [(Caterini et al., 2018)][1]: K leapfrog steps of
  the Hamiltonian `H(z, rho) = -l(z) + |rho|^2 / 2` (with `l(z) =
  target_log_prob_fn(z)`, step size `eps`, a scalar or one per latent
  dimension), each followed by tempering of the momentum by `alpha_k`:

  ```none
  Forward ([z_0, rho_0] -> [z_K, rho_K]), for k = 1..K:
    rho_half = rho + eps / 2 * grad l(z)
    z'       = z + eps * rho_half
    rho'     = rho_half + eps / 2 * grad l(z')
    rho_k    = alpha_k * rho'                        # tempering
  Inverse, for k = K..1:
    rho'     = rho_k / alpha_k
    rho_half = rho' - eps / 2 * grad l(z')
    z        = z' - eps * rho_half
    rho      = rho_half - eps / 2 * grad l(z)
  Log-det (the same at every input):
    log |det d(z_K, rho_K) / d(z_0, rho_0)| = D * sum_k ln alpha_k
  ```

  The leapfrog steps are symplectic (det 1); tempering scales the D momentum
  coordinates. For the "fixed" schedule (`fixed_tempering`) the total is
  `-(D/2) ln T0`, which cancels the entropy of `rho_0 ~ N(0, T0 I)`
  (math.md section 3).

  `gradient_mode` chooses the cost, not the result (both give the same
  outputs up to float rounding):

  * `'reference'`: `grad l` at the start and the end of every step, nothing
    reused, 2K gradient evaluations per `forward` or `inverse`, as the HVAE
    reference code (anthonycaterini/hvae-nips, `mnist/models.py`). This is the
    baseline of the paper's speed comparison.
  * `'cached'`: the end-of-step gradient is reused as the next step's start
    (tempering rescales `rho` only, so `z` and its gradient are unchanged):
    K + 1 evaluations, as TFP's leapfrog integrator carries `(target, grad)`.

  The steps are unrolled in Python (K is the static length of `tempering`).
  The event is the list `[z, rho]`, both `[..., D]`
  (`forward_min_event_ndims=[1, 1]`); the log-det is one tensor of the batch
  shape `[...]`. The Jacobian matrix depends on the input, so
  `is_constant_jacobian` stays `False`.

  #### Examples

  ```python
  target_log_prob_fn = lambda z: -0.5 * tf.reduce_sum(z**2, axis=-1)
  flow = TemperedLeapfrog(target_log_prob_fn, step_size=0.1,
                          tempering=fixed_tempering(1.5, num_steps=5),
                          gradient_mode='cached')
  z, rho = tf.random.normal([2, 64]), tf.random.normal([2, 64])
  zK, rhoK = flow.forward([z, rho])
  flow.forward_log_det_jacobian([z, rho])  # ==> [-12.97, -12.97] (-32 ln 1.5)
  ```

  #### References

  [1]: Anthony L. Caterini, Arnaud Doucet and Dino Sejdinovic. Hamiltonian
       Variational Auto-Encoder. In _Neural Information Processing Systems_,
       2018. https://arxiv.org/abs/1805.11328

  [2]: Radford M. Neal. MCMC using Hamiltonian dynamics. _Handbook of Markov
       Chain Monte Carlo_, 2011. https://arxiv.org/abs/1206.1901
  """

  def __init__(self,
               target_log_prob_fn,
               step_size,
               tempering,
               gradient_mode='reference',
               gradient_counter=None,
               validate_args=False,
               name='tempered_leapfrog'):
    """Instantiates the K-step tempered leapfrog flow.

    Args:
      target_log_prob_fn: Python callable mapping `z` (`[..., D]`) to the
        target log density `l(z)` (`[...]`).
      step_size: Floating-point `Tensor` or `tf.Variable` `eps > 0`, scalar or
        shape `[D]`.
      tempering: Floating-point 1-D `Tensor` or `tf.Variable` of the K
        tempering factors `alpha_k > 0`; K is its static length (ones: no
        tempering; an empty vector: the identity).
      gradient_mode: Python `str`, `'reference'` (2K gradient evaluations) or
        `'cached'` (K + 1). Default value: `'reference'`.
      gradient_counter: Optional `GradientCounter` counting the executed
        gradient evaluations.
      validate_args: Python `bool`; if `True`, check `step_size > 0`,
        `tempering > 0` and the inputs at run time, and the shapes the static
        shapes cannot tell (`step_size` a scalar, `[D]` or `[1]`; the target's
        output of shape `z.shape[:-1]`).
      name: Python `str` name prefixed to ops created by this bijector.

    Raises:
      TypeError: if `target_log_prob_fn` is not callable.
      ValueError: if `gradient_mode` is unknown, `tempering` is not a vector of
        statically known length, or `step_size` has rank > 1. `forward`,
        `inverse` and the log-det raise `ValueError` if the static shapes show
        a `step_size` that does not broadcast against `D = z.shape[-1]`;
        `forward` and `inverse` if `target_log_prob_fn(z)` does not have shape
        `z.shape[:-1]`. (`tempering` has one factor per step, K, unrelated to
        D: each `alpha_k` is a scalar.)
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      dtype = dtype_util.common_dtype(
          [step_size, tempering], dtype_hint=tf.float32)
      if not callable(target_log_prob_fn):
        raise TypeError('`target_log_prob_fn` must be callable; got {}.'
                        .format(target_log_prob_fn))
      if gradient_mode not in GRADIENT_MODES:
        raise ValueError(
            '`gradient_mode` must be one of {}; got {!r}.'.format(
                GRADIENT_MODES, gradient_mode))
      self._target_log_prob_fn = target_log_prob_fn
      self._gradient_mode = gradient_mode
      self._step_size = tensor_util.convert_nonref_to_tensor(
          step_size, dtype=dtype, name='step_size')
      self._tempering = tensor_util.convert_nonref_to_tensor(
          tempering, dtype=dtype, name='tempering')
      gradients.check_parameter_shapes([('step_size', self._step_size)])
      if (self._tempering.shape.rank != 1 or
          self._tempering.shape[0] is None):
        raise ValueError(
            '`tempering` must be a 1-D vector of the K tempering factors, '
            'with K known statically; got shape {}.'.format(
                gradients.format_shape(self._tempering.shape)))
      self._num_steps = int(self._tempering.shape[0])
      self._gradient_counter = gradient_counter
      super().__init__(
          forward_min_event_ndims=[1, 1],
          dtype=dtype,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def target_log_prob_fn(self):
    """The target log density `l(z)`."""
    return self._target_log_prob_fn

  @property
  def step_size(self):
    """The leapfrog step size `eps`."""
    return self._step_size

  @property
  def tempering(self):
    """The K tempering factors `alpha_k`."""
    return self._tempering

  @property
  def num_steps(self):
    """K, the number of leapfrog steps (Python `int`)."""
    return self._num_steps

  @property
  def gradient_mode(self):
    """`'reference'` (2K gradients) or `'cached'` (K + 1)."""
    return self._gradient_mode

  @property
  def gradient_counter(self):
    """The `GradientCounter`, or `None`."""
    return self._gradient_counter

  @classmethod
  def _parameter_properties(cls, dtype):
    # `step_size` is per latent dimension and `tempering` per flow step: both
    # have event rank 1 and add no batch shape to the bijector.
    return dict(
        step_size=parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=(
                lambda: tfb.Softplus(low=dtype_util.eps(dtype)))),
        tempering=parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=(
                lambda: tfb.Softplus(low=dtype_util.eps(dtype)))))

  def _gradient(self, z):
    _, grad = gradients.value_and_gradient(
        self._target_log_prob_fn, z, gradient_counter=self._gradient_counter,
        validate_args=self.validate_args)
    return grad

  def _step_size_for(self, z):
    """`eps` as a `Tensor`, checked against `D = z.shape[-1]`."""
    [eps] = gradients.check_parameters_against_event(
        [('step_size', tf.convert_to_tensor(self._step_size))], z,
        self.validate_args)
    return eps

  def _alphas(self):
    return tf.unstack(tf.convert_to_tensor(self._tempering),
                      num=self._num_steps)

  def _forward(self, x):
    z, rho = gradients.split_state(x, self.validate_args, 'x')
    eps = self._step_size_for(z)
    cached = self._gradient_mode == 'cached'
    grad = None
    for alpha in self._alphas():
      if grad is None or not cached:
        grad = self._gradient(z)
      rho = rho + 0.5 * eps * grad    # half kick
      z = z + eps * rho               # drift
      grad = self._gradient(z)
      rho = rho + 0.5 * eps * grad    # half kick
      rho = alpha * rho               # tempering
    return tf.nest.pack_sequence_as(x, [z, rho])

  def _inverse(self, y):
    z, rho = gradients.split_state(y, self.validate_args, 'y')
    eps = self._step_size_for(z)
    cached = self._gradient_mode == 'cached'
    grad = None
    for alpha in reversed(self._alphas()):
      rho = rho / alpha               # undo tempering
      if grad is None or not cached:
        grad = self._gradient(z)
      rho = rho - 0.5 * eps * grad
      z = z - eps * rho
      grad = self._gradient(z)
      rho = rho - 0.5 * eps * grad
    return tf.nest.pack_sequence_as(y, [z, rho])

  def _log_det(self, state):
    """`D * sum_k ln alpha_k`, broadcast to the batch shape of `state`."""
    z, rho = tf.nest.flatten(state)
    # The log-det does not use `eps`; check it anyway, as forward does.
    eps = self._step_size_for(z)
    with tf.control_dependencies([eps] if self.validate_args else []):
      num_dims = tf.cast(ps.shape(rho)[-1], self._tempering.dtype)
      log_det = num_dims * tf.reduce_sum(
          tf.math.log(tf.convert_to_tensor(self._tempering)))
    return gradients.broadcast_to_batch(log_det, state)

  def _forward_log_det_jacobian(self, x):
    return self._log_det(x)

  def _inverse_log_det_jacobian(self, y):
    return -self._log_det(y)

  def _parameter_control_dependencies(self, is_init):
    if not self.validate_args:
      return []
    assertions = []
    if is_init != tensor_util.is_ref(self._step_size):
      # A static rank is checked in `__init__`; here only an unknown one.
      assertions.extend(gradients.parameter_rank_assertions(
          self._step_size, 'step_size', self.validate_args))
      assertions.append(assert_util.assert_positive(
          self._step_size,
          message='Argument `step_size` (eps) must be positive (eps > 0).'))
    if is_init != tensor_util.is_ref(self._tempering):
      assertions.append(assert_util.assert_positive(
          self._tempering,
          message=('Argument `tempering` (alpha_k) must be positive '
                   '(alpha_k > 0).')))
    return assertions


def fixed_tempering(initial_temperature, num_steps, name='fixed_tempering'):
  """HVAE's "fixed" tempering schedule, differentiable in `T0`.

  ```none
  T_k     = (1 - T0) * k^2 / K^2 + T0,   k = 0..K    (T_0 = T0, T_K = 1)
  alpha_k = sqrt(T_k / T_{k-1}),         k = 1..K    (prod_k alpha_k = T0^-1/2)
  ```

  HVAE learns `T0 = 1 + exp(theta)` and draws `rho_0 ~ N(0, T0 I)`
  (math.md section 3).

  Args:
    initial_temperature: Floating-point scalar `Tensor` or `tf.Variable` T0.
    num_steps: Python `int` K >= 0.
    name: Python `str` name prefixed to ops created by this function.

  Returns:
    alphas: `Tensor` of shape `[K]`, the dtype of `initial_temperature`
      (default `float32`).

  Raises:
    ValueError: if `num_steps` is not a non-negative Python integer.
  """
  num_steps = gradients.check_num_steps(num_steps)
  with tf.name_scope(name):
    dtype = dtype_util.common_dtype([initial_temperature],
                                    dtype_hint=tf.float32)
    t0 = tf.convert_to_tensor(initial_temperature, dtype=dtype,
                              name='initial_temperature')
    if num_steps == 0:
      return tf.zeros([0], dtype=dtype)
    k = tf.range(num_steps + 1, dtype=dtype)
    temperatures = (1. - t0) * k**2 / num_steps**2 + t0
    return tf.sqrt(temperatures[1:] / temperatures[:-1])


def hamiltonian_flow(target_log_prob_fn,
                     num_steps,
                     step_size,
                     tempering=None,
                     gradient_mode='reference',
                     gradient_counter=None,
                     validate_args=False,
                     name='hamiltonian_flow'):
  """K tempered leapfrog steps (HVAE); untempered if `tempering` is `None`.

  Args:
    target_log_prob_fn: Python callable, `z` (`[..., D]`) -> `l(z)` (`[...]`).
    num_steps: Python `int` K >= 0.
    step_size: `eps > 0`, scalar or `[D]`, `Tensor` or `tf.Variable`.
    tempering: Optional 1-D `Tensor` of K factors `alpha_k > 0`, e.g.
      `fixed_tempering(T0, K)`. Default value: `None` (ones: plain leapfrog,
      log-det 0).
    gradient_mode: `'reference'` (2K gradients) or `'cached'` (K + 1).
    gradient_counter: Optional `GradientCounter`.
    validate_args: Python `bool`.
    name: Python `str` name of the bijector.

  Returns:
    flow: A `TemperedLeapfrog`.

  Raises:
    ValueError: if `num_steps` is not a non-negative Python integer, or
      `tempering` does not have K entries.
  """
  num_steps = gradients.check_num_steps(num_steps)
  if tempering is None:
    dtype = dtype_util.common_dtype([step_size], dtype_hint=tf.float32)
    tempering = tf.ones([num_steps], dtype=dtype)
  flow = TemperedLeapfrog(
      target_log_prob_fn, step_size=step_size, tempering=tempering,
      gradient_mode=gradient_mode, gradient_counter=gradient_counter,
      validate_args=validate_args, name=name)
  if flow.num_steps != num_steps:
    raise ValueError(
        '`tempering` must have `num_steps` = {} entries; got {}.'.format(
            num_steps, flow.num_steps))
  return flow
