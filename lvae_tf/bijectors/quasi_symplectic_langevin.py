"""The quasi-symplectic Langevin step (paper Eq. 7, corrected) and its flow."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tensorflow_probability.python.internal import assert_util
from tensorflow_probability.python.internal import dtype_util
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import prefer_static as ps
from tensorflow_probability.python.internal import tensor_util

from lvae_tf.bijectors import gradients
from lvae_tf.bijectors import tempered_leapfrog

tfb = tfp.bijectors

__all__ = [
    'QuasiSymplecticLangevin',
    'langevin_flow',
]


class QuasiSymplecticLangevin(tfb.Bijector):
  """One quasi-symplectic Langevin step `Psi` on the state `[z, rho]`.

  A second-order quasi-symplectic splitting [(Milstein and Tretyakov, 2003)][1]
  of the damped Langevin dynamics

  ```none
  dz = rho dt,    d rho = grad l(z) dt - nu * rho dt + sigma dW,
  ```

  with target log density `l(z) = target_log_prob_fn(z)`, step size `tau` and
  damping `nu` (each a scalar or one value per latent dimension). One step is
  damp, drift, kick, drift, damp:

  ```none
  Forward (x = [z, rho] -> y = [z', rho']):
    rho_a = exp(-nu * tau / 2) * rho     # half damping (K_II of Eq. 7)
    z_a   = z + tau / 2 * rho_a          # half drift
    rho_b = rho_a + tau * grad l(z_a)    # kick: the step's only gradient
            + sqrt(tau) * sigma * xi     #   (noise term only if sigma != 0)
    z'    = z_a + tau / 2 * rho_b        # half drift
    rho'  = exp(-nu * tau / 2) * rho_b   # half damping (K_II of Eq. 7)

  Inverse (y = [z', rho'] -> x = [z, rho]):
    rho_b = exp(+nu * tau / 2) * rho'
    z_a   = z' - tau / 2 * rho_b
    rho_a = rho_b - tau * grad l(z_a) - sqrt(tau) * sigma * xi
    z     = z_a - tau / 2 * rho_a
    rho   = exp(+nu * tau / 2) * rho_a

  Log-det (the same at every input):
    log |det d(z', rho') / d(z, rho)| = -sum_d nu_d * tau_d
  ```

  Corrections to the paper (see `docs/math.md`, section 1):

  * Paper Eq. 7 as printed moves z by the gradient (`Phi_1 = Phi - tau/2 *
    grad ln p`) and never lets the gradient reach the momentum; that map's
    log|det J| depends on the input, so Theorem 2 fails for it. Implemented
    here: the scheme Eq. 7 intends, in which the gradient kicks the momentum
    and the momentum moves z (corrected per math.md section 1).
  * Paper Eq. 8 / Theorem 2 prints `J = exp(-nu * tau)`; the determinant of
    the map on `R^{2D}` is `exp(-sum_d nu_d tau_d)` (`exp(-nu * tau * D)` for
    scalars): the two half dampings scale D momentum coordinates each, the
    drifts and the kick are shears with determinant 1.
  * With `nu = 0` the step is position-Verlet leapfrog: symplectic, det = 1
    (paper Theorem 1).

  The Jacobian *determinant* is constant but the Jacobian *matrix* is not, so
  `is_constant_jacobian` stays `False` (TFP treats that flag as "affine").

  With `noise_scale` `sigma > 0`, `xi ~ N(0, I)` is a stateless draw from the
  bijector's `seed`, so `forward` and `inverse` use the same `xi` and the step
  stays a bijection with the same log-det for a fixed seed (math.md section 1;
  the paper's experiments use `sigma = 0`). `xi` is computed as
  `ndtri(uniform)` from stateless Philox integer bits rather than by
  `tf.random.stateless_normal`, whose output differs between eager and
  `jit_compile=True` on CPU (TF 2.21): a forward pass under XLA and an inverse
  in eager mode would otherwise not be inverses.

  The event is the list `[z, rho]`, both of shape `[..., D]`
  (`forward_min_event_ndims=[1, 1]`); the log-det is one tensor of the batch
  shape `[...]`. The dtype is that of `step_size`, `damping` and
  `noise_scale` (Python floats adopt it; default `float32`).

  #### Examples

  ```python
  target_log_prob_fn = lambda z: -0.5 * tf.reduce_sum(z**2, axis=-1)
  step = QuasiSymplecticLangevin(target_log_prob_fn, step_size=0.1,
                                 damping=0.5)
  z, rho = tf.random.normal([2, 64]), tf.random.normal([2, 64])
  z1, rho1 = step.forward([z, rho])
  step.forward_log_det_jacobian([z, rho])  # ==> [-3.2, -3.2] (= -0.5*0.1*64)

  # K steps; the ELBO's volume term is K * (-sum_d nu_d tau_d).
  flow = langevin_flow(target_log_prob_fn, num_steps=5, step_size=0.1,
                       damping=0.5)
  ```

  #### References

  [1]: G. N. Milstein and M. V. Tretyakov. Quasi-symplectic methods for
       Langevin-type equations. _IMA Journal of Numerical Analysis_,
       23(4):593-626, 2003.

  [2]: Zihao Wang and Herve Delingette. Quasi-symplectic Langevin
       Variational Autoencoder. (The paper this package reproduces; its
       Eqs. 7, 8 and 13 are corrected as noted above.)
  """

  def __init__(self,
               target_log_prob_fn,
               step_size,
               damping,
               noise_scale=0.,
               seed=None,
               gradient_counter=None,
               validate_args=False,
               name='quasi_symplectic_langevin'):
    """Instantiates one quasi-symplectic Langevin step.

    Args:
      target_log_prob_fn: Python callable mapping `z` (`[..., D]`) to the
        target log density `l(z)` (`[...]`), e.g. `ln p(x, z)`.
      step_size: Floating-point `Tensor` or `tf.Variable` `tau > 0`, a scalar
        or shape `[D]` (one step size per latent dimension).
      damping: Floating-point `Tensor` or `tf.Variable` `nu >= 0`, a scalar or
        shape `[D]`.
      noise_scale: Floating-point `Tensor` `sigma >= 0`, a scalar or shape
        `[D]`. Default value: `0.` (deterministic step, as in the paper).
      seed: Seed of the noise `xi`: a stateless seed (`int32` `Tensor` of
        shape `[2]`, or a pair of Python ints), or anything
        `tfp.random.sanitize_seed` accepts (a Python int is TFP-stateful: it
        is turned into a stateless seed once, here). Required unless
        `noise_scale` is statically zero; ignored then.
      gradient_counter: Optional `GradientCounter` counting the executed
        gradient evaluations (one per `forward` or `inverse` call).
      validate_args: Python `bool`; if `True`, check `step_size > 0`,
        `damping >= 0`, `noise_scale >= 0` and the inputs (same shape for z
        and rho, finite values) at run time, and the shapes the static shapes
        cannot tell (each parameter a scalar, `[D]` or `[1]`; the target's
        output of shape `z.shape[:-1]`).
      name: Python `str` name prefixed to ops created by this bijector.

    Raises:
      TypeError: if `target_log_prob_fn` is not callable.
      ValueError: if a parameter has rank > 1, two parameters have static
        lengths that cannot broadcast to one D, or `noise_scale` is not
        statically zero and `seed` is `None`. `forward`, `inverse` and the
        log-det raise `ValueError` if the static shapes show a parameter that
        does not broadcast against `D = z.shape[-1]`; `forward` and `inverse`
        if `target_log_prob_fn(z)` does not have shape `z.shape[:-1]`.
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      dtype = dtype_util.common_dtype(
          [step_size, damping, noise_scale], dtype_hint=tf.float32)
      if not callable(target_log_prob_fn):
        raise TypeError('`target_log_prob_fn` must be callable; got {}.'
                        .format(target_log_prob_fn))
      self._target_log_prob_fn = target_log_prob_fn
      self._step_size = tensor_util.convert_nonref_to_tensor(
          step_size, dtype=dtype, name='step_size')
      self._damping = tensor_util.convert_nonref_to_tensor(
          damping, dtype=dtype, name='damping')
      self._noise_scale = tensor_util.convert_nonref_to_tensor(
          noise_scale, dtype=dtype, name='noise_scale')
      gradients.check_parameter_shapes(self._named_parameters())
      self._has_noise = _maybe_nonzero(self._noise_scale)
      if self._has_noise and seed is None:
        raise ValueError(
            '`noise_scale` is not statically zero, so a `seed` is required: '
            'forward and inverse must draw the same noise to be inverses. '
            'Pass e.g. `seed=tfp.random.sanitize_seed(...)` or '
            '`noise_scale=0.`.')
      self._seed = (tfp.random.sanitize_seed(seed, name='seed')
                    if self._has_noise else None)
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
    """The step size `tau`."""
    return self._step_size

  @property
  def damping(self):
    """The damping `nu`."""
    return self._damping

  @property
  def noise_scale(self):
    """The noise scale `sigma`."""
    return self._noise_scale

  @property
  def seed(self):
    """The stateless seed of the noise (`None` if there is no noise)."""
    return self._seed

  @property
  def gradient_counter(self):
    """The `GradientCounter`, or `None`."""
    return self._gradient_counter

  @classmethod
  def _parameter_properties(cls, dtype):
    # Parameters are per latent dimension (event rank 1): they add no batch
    # shape to the bijector.
    return dict(
        step_size=parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=(
                lambda: tfb.Softplus(low=dtype_util.eps(dtype)))),
        damping=parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=tfb.Softplus),
        noise_scale=parameter_properties.ParameterProperties(
            event_ndims=1,
            default_constraining_bijector_fn=tfb.Softplus))

  def _named_parameters(self):
    """The per-dimension parameters, `[(arg_name, value)]`."""
    return [('step_size', self._step_size), ('damping', self._damping),
            ('noise_scale', self._noise_scale)]

  def _parameters_for(self, z):
    """`tau, nu, sigma` as `Tensor`s, checked against `D = z.shape[-1]`."""
    return gradients.check_parameters_against_event(
        [(arg_name, tf.convert_to_tensor(value))
         for arg_name, value in self._named_parameters()],
        z, self.validate_args)

  def _noise(self, z, step_size, noise_scale):
    """`sqrt(tau) * sigma * xi`, the same for forward and inverse."""
    xi = _stateless_standard_normal(ps.shape(z), self._seed, z.dtype)
    return tf.sqrt(step_size) * noise_scale * xi

  def _gradient(self, z):
    _, grad = gradients.value_and_gradient(
        self._target_log_prob_fn, z, gradient_counter=self._gradient_counter,
        validate_args=self.validate_args)
    return grad

  def _forward(self, x):
    z, rho = gradients.split_state(x, self.validate_args, 'x')
    tau, nu, sigma = self._parameters_for(z)
    decay = tf.exp(-0.5 * nu * tau)
    rho = decay * rho                   # half damping
    z = z + 0.5 * tau * rho             # half drift
    rho = rho + tau * self._gradient(z)  # kick
    if self._has_noise:
      rho = rho + self._noise(z, tau, sigma)
    z = z + 0.5 * tau * rho             # half drift
    rho = decay * rho                   # half damping
    return tf.nest.pack_sequence_as(x, [z, rho])

  def _inverse(self, y):
    z, rho = gradients.split_state(y, self.validate_args, 'y')
    tau, nu, sigma = self._parameters_for(z)
    growth = 1. / tf.exp(-0.5 * nu * tau)
    rho = growth * rho
    z = z - 0.5 * tau * rho
    rho = rho - tau * self._gradient(z)
    if self._has_noise:
      rho = rho - self._noise(z, tau, sigma)
    z = z - 0.5 * tau * rho
    rho = growth * rho
    return tf.nest.pack_sequence_as(y, [z, rho])

  def _log_det(self, state):
    """`-sum_d nu_d * tau_d`, broadcast to the batch shape of `state`."""
    z, _ = tf.nest.flatten(state)
    tau, nu, _ = self._parameters_for(z)
    log_det = -tf.reduce_sum(tf.broadcast_to(nu * tau, ps.shape(z)[-1:]))
    return gradients.broadcast_to_batch(log_det, state)

  def _forward_log_det_jacobian(self, x):
    return self._log_det(x)

  def _inverse_log_det_jacobian(self, y):
    return -self._log_det(y)

  def _parameter_control_dependencies(self, is_init):
    if not self.validate_args:
      return []
    assertions = []
    # Static ranks are checked in `__init__`; here only unknown ones.
    for arg_name, value in self._named_parameters():
      if is_init != tensor_util.is_ref(value):
        assertions.extend(gradients.parameter_rank_assertions(
            value, arg_name, self.validate_args))
    if is_init != tensor_util.is_ref(self._step_size):
      assertions.append(assert_util.assert_positive(
          self._step_size,
          message='Argument `step_size` (tau) must be positive (tau > 0).'))
    if is_init != tensor_util.is_ref(self._damping):
      assertions.append(assert_util.assert_non_negative(
          self._damping,
          message='Argument `damping` (nu) must be non-negative (nu >= 0).'))
    if is_init != tensor_util.is_ref(self._noise_scale):
      assertions.append(assert_util.assert_non_negative(
          self._noise_scale,
          message=('Argument `noise_scale` (sigma) must be non-negative '
                   '(sigma >= 0).')))
    return assertions


def langevin_flow(target_log_prob_fn,
                  num_steps,
                  step_size,
                  damping,
                  noise_scale=0.,
                  seed=None,
                  gradient_counter=None,
                  validate_args=False,
                  name='langevin_flow'):
  """K quasi-symplectic Langevin steps `Psi^K` as one bijector on `[z, rho]`.

  ```none
  Forward:  [z_K, rho_K] = Psi(...Psi(Psi([z_0, rho_0]))...)   (K steps)
  Log-det:  -K * sum_d nu_d * tau_d                             (constant)
  ```

  Paper Eq. 13 / Algorithm 1 sum the step log-dets as `-K * nu * tau`; the
  factor D of each step (math.md section 1) is included here.

  The steps form a `tfb.Chain`, which handles the structured `[1, 1]` event
  (its min event ndims are inferred as `[1, 1]`; its log-det is the sum of the
  steps'). The chain's log-det walks the steps forward to find each step's
  input, so on an input not seen before `forward_log_det_jacobian(x)` runs
  the K steps (K gradients); the steps' caches then answer `forward(x)` on the
  same tensors, and vice versa: `forward` plus `forward_log_det_jacobian` on
  one input cost K gradient evaluations in total, in eager mode and within one
  traced function.

  `num_steps == 0` gives the identity on `[z, rho]` with log-det 0 and no
  gradient evaluation. TFP's empty `Chain` is a single-part identity (it would
  stack `[z, rho]` into one tensor), so the chain then holds a zero-step
  `TemperedLeapfrog`, which is exactly that identity.

  Args:
    target_log_prob_fn: Python callable, `z` (`[..., D]`) -> `l(z)` (`[...]`).
    num_steps: Python `int` K >= 0.
    step_size: `tau > 0`, scalar or `[D]`, `Tensor` or `tf.Variable`.
    damping: `nu >= 0`, scalar or `[D]`, `Tensor` or `tf.Variable`.
    noise_scale: `sigma >= 0`, scalar or `[D]`. Default value: `0.`.
    seed: Stateless seed, required if `noise_scale` is not statically zero;
      each step gets its own seed from `tfp.random.split_seed`.
    gradient_counter: Optional `GradientCounter`, shared by all steps: K
      evaluations per `forward`, K per `inverse`.
    validate_args: Python `bool`, passed to every step.
    name: Python `str`, name of the chain.

  Returns:
    flow: A `tfb.Chain` of K `QuasiSymplecticLangevin` steps,
      `forward_min_event_ndims == [1, 1]`.

  Raises:
    ValueError: if `num_steps` is not a non-negative Python integer, or the
      parameters' shapes are wrong (see `QuasiSymplecticLangevin`).
  """
  num_steps = gradients.check_num_steps(num_steps)
  with tf.name_scope(name):
    if num_steps == 0:
      dtype = dtype_util.common_dtype(
          [step_size, damping, noise_scale], dtype_hint=tf.float32)
      # The identity uses `step_size` only; check the others' shapes here.
      gradients.check_parameter_shapes(
          [(arg_name, tensor_util.convert_nonref_to_tensor(
              value, dtype=dtype, name=arg_name))
           for arg_name, value in [('step_size', step_size),
                                   ('damping', damping),
                                   ('noise_scale', noise_scale)]])
      steps = [tempered_leapfrog.TemperedLeapfrog(
          target_log_prob_fn, step_size=step_size,
          tempering=tf.zeros([0], dtype), gradient_counter=gradient_counter,
          validate_args=validate_args, name='identity')]
    else:
      seeds = ([None] * num_steps if seed is None else
               tfp.random.split_seed(seed, n=num_steps, salt='langevin_flow'))
      # `Chain` applies its list last-to-first: step 1 is the last element.
      steps = [
          QuasiSymplecticLangevin(
              target_log_prob_fn, step_size=step_size, damping=damping,
              noise_scale=noise_scale, seed=seeds[k],
              gradient_counter=gradient_counter, validate_args=validate_args,
              name='quasi_symplectic_langevin_{}'.format(k + 1))
          for k in reversed(range(num_steps))]
  return tfb.Chain(steps, validate_args=validate_args, name=name)


def _stateless_standard_normal(shape, seed, dtype):
  """N(0, 1) draws that are the same in eager, `tf.function` and XLA."""
  # Stateless Philox int64 bits agree across execution modes; float normals
  # and uniforms do not. Keep the bits a float's mantissa holds exactly, map
  # them to a uniform in the open interval (0, 1), then through the normal
  # quantile function.
  num_bits = 52 if dtype == tf.float64 else 23
  bits = tf.random.stateless_uniform(
      shape, seed=seed, minval=None, maxval=None, dtype=tf.int64,
      alg='philox')
  bits = tf.bitwise.bitwise_and(bits, (1 << num_bits) - 1)
  uniform = (tf.cast(bits, dtype) + 0.5) * (0.5**num_bits)
  return tf.math.ndtri(uniform)


def _maybe_nonzero(x):
  """`False` only if `x` is statically known to be all zeros."""
  if tensor_util.is_ref(x):
    return True
  x_ = tf.get_static_value(x)
  return x_ is None or bool(np.any(x_ != 0))

