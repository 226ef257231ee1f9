"""API misuse of the flow bijectors: wrong shapes fail early and say so.

Issue 10, item 9. A `target_log_prob_fn` returning `[..., D]` instead of
`[...]`, or a per-dimension parameter (`step_size`, `damping`, `noise_scale`)
whose length is not D, must raise a `ValueError` naming the argument, the
offending shape and the expected one, in eager mode and at trace time inside
`tf.function`; with `validate_args=True`, shapes only known at run time are
checked by assertions (`InvalidArgumentError`) with the same wording. Good
inputs (scalar, `[D]`, `[1]`; any batch shape of z) still work, and their
numbers are checked against a NumPy re-implementation of the steps.
"""

import re

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from lvae_tf import bijectors as lb

F64 = tf.float64
D = 2
INVALID = tf.errors.InvalidArgumentError


def f64(value):
  return tf.constant(value, F64)


def quartic(z):
  return -0.25 * tf.reduce_sum(z**4, axis=-1) - 0.5 * tf.reduce_sum(
      z**2, axis=-1)


def quartic_grad(z):
  return -z**3 - z


def per_dimension_target(z):  # forgot the reduce_sum: returns [..., D]
  return -0.25 * z**4 - 0.5 * z**2


def summed_target(z):  # sums over the batch too: returns []
  return tf.reduce_sum(quartic(z))


def state(batch_shape=(4,), dims=D, seed=0):
  rng = np.random.RandomState(seed)
  shape = list(batch_shape) + [dims]
  return [tf.constant(rng.randn(*shape)), tf.constant(rng.randn(*shape))]


def fresh(x):
  """Copies the tensors, so the bijector cache cannot answer."""
  return tf.nest.map_structure(tf.identity, x)


def call(fn, traced):
  """`fn()` eagerly, or traced (and run) as a `tf.function`."""
  return tf.function(fn)() if traced else fn()


def numpy_langevin_step(x, tau, nu):
  """One quasi-symplectic Langevin step (sigma = 0) on `quartic`, in NumPy."""
  z, rho = [np.asarray(t) for t in x]
  decay = np.exp(-0.5 * np.asarray(nu) * np.asarray(tau))
  rho = decay * rho
  z = z + 0.5 * np.asarray(tau) * rho
  rho = rho + np.asarray(tau) * quartic_grad(z)
  z = z + 0.5 * np.asarray(tau) * rho
  return [z, decay * rho]


def numpy_leapfrog(x, eps, alphas):
  """K tempered leapfrog steps on `quartic`, in NumPy."""
  z, rho = [np.asarray(t) for t in x]
  eps = np.asarray(eps)
  for alpha in alphas:
    rho = rho + 0.5 * eps * quartic_grad(z)
    z = z + eps * rho
    rho = rho + 0.5 * eps * quartic_grad(z)
    rho = alpha * rho
  return [z, rho]


def make_flow(kind, target, step_size=0.3, damping=0.7, noise_scale=0.,
              validate_args=False, gradient_counter=None):
  """One of the three bijectors under test, `float64`."""
  kwargs = dict(gradient_counter=gradient_counter, validate_args=validate_args)
  cast = lambda v: tf.cast(v, F64)
  if kind == 'langevin_step':
    return lb.QuasiSymplecticLangevin(
        target, cast(step_size), cast(damping), noise_scale=cast(noise_scale),
        seed=[1, 2], **kwargs)
  if kind == 'langevin_flow':
    return lb.langevin_flow(
        target, 2, cast(step_size), cast(damping),
        noise_scale=cast(noise_scale), seed=[1, 2], **kwargs)
  return lb.TemperedLeapfrog(target, cast(step_size),
                             tf.constant([0.9, 1.1], F64),
                             gradient_mode=kind, **kwargs)


KINDS = ['langevin_step', 'langevin_flow', 'reference', 'cached']


class ApiTestCase(tf.test.TestCase, parameterized.TestCase):
  # tf.test.TestCase.test_session is a deprecated helper, not a test: hide it
  # from pytest (which would otherwise report it as skipped in every class).
  test_session = None

  def assert_raises_naming(self, error, fragments, fn):
    """`fn()` raises `error` whose message contains every fragment."""
    with self.assertRaises(error) as context:
      fn()
    message = str(context.exception)
    for fragment in fragments:
      self.assertIn(fragment, message)
    return message


class TargetShapeTest(ApiTestCase):

  @parameterized.product(kind=KINDS, method=['forward', 'inverse'],
                         traced=[False, True])
  def test_per_dimension_output_raises(self, kind, method, traced):
    flow = make_flow(kind, per_dimension_target)
    x = state()
    self.assert_raises_naming(
        ValueError, ['`target_log_prob_fn`', 'Got shape [4, 2]',
                     'z of shape [4, 2]', 'expected shape [4].'],
        lambda: call(lambda: getattr(flow, method)(x), traced))

  @parameterized.product(kind=['langevin_step', 'reference'],
                         traced=[False, True])
  def test_scalar_output_raises(self, kind, traced):
    flow = make_flow(kind, summed_target)
    x = state(batch_shape=(3, 5))
    self.assert_raises_naming(
        ValueError, ['`target_log_prob_fn`', 'Got shape []',
                     'expected shape [3, 5].'],
        lambda: call(lambda: flow.forward(x), traced))

  def test_value_and_gradient_checks_directly(self):
    z = state()[0]
    self.assert_raises_naming(
        ValueError, ['`target_log_prob_fn`', 'Got shape [4, 2]',
                     'expected shape [4].'],
        lambda: lb.value_and_gradient(per_dimension_target, z))

  def test_partially_known_shapes_raise_at_trace_time(self):
    # The batch size is unknown, but the rank already shows the error.
    flow = make_flow('langevin_step', per_dimension_target)

    @tf.function(input_signature=[tf.TensorSpec([None, D], F64)] * 2)
    def forward(z, rho):
      return flow.forward([z, rho])
    self.assert_raises_naming(
        ValueError, ['`target_log_prob_fn`', 'Got shape [None, 2]',
                     'expected shape [None].'],
        lambda: forward.get_concrete_function())

  @parameterized.parameters('langevin_step', 'cached')
  def test_run_time_check_with_validate_args(self, kind):
    # Shapes only known at run time: a target dropping a batch member.
    flow = make_flow(kind, lambda z: quartic(z)[1:], validate_args=True)

    @tf.function(input_signature=[tf.TensorSpec([None, D], F64)] * 2)
    def forward(z, rho):
      return flow.forward([z, rho])
    message = self.assert_raises_naming(
        INVALID, ['`target_log_prob_fn`'], lambda: forward(*state()))
    self.assertRegex(message, r'Got shape\] \[3\] \[for z of shape\] \[4 2\]'
                     r' \[expected shape\] \[4\]')


class ParameterShapeTest(ApiTestCase):

  @parameterized.product(
      kind_and_arg=[('langevin_step', 'step_size'),
                    ('langevin_step', 'damping'),
                    ('langevin_step', 'noise_scale'),
                    ('langevin_flow', 'step_size'),
                    ('langevin_flow', 'damping'),
                    ('reference', 'step_size'),
                    ('cached', 'step_size')],
      method=['forward', 'inverse', 'forward_log_det_jacobian'],
      traced=[False, True])
  def test_wrong_length_raises(self, kind_and_arg, method, traced):
    kind, arg_name = kind_and_arg
    flow = make_flow(kind, quartic, **{arg_name: tf.fill([5], 0.1)})
    x = state()
    self.assert_raises_naming(
        ValueError, ['`{}`'.format(arg_name), 'got shape [5]', 'D = 2',
                     'z of shape [4, 2]'],
        lambda: call(lambda: getattr(flow, method)(x), traced))

  @parameterized.product(
      kind_and_arg=[('langevin_step', 'step_size'),
                    ('langevin_step', 'damping'),
                    ('langevin_step', 'noise_scale'),
                    ('langevin_flow', 'damping'),
                    ('reference', 'step_size')],
      traced=[False, True])
  def test_rank_two_raises_at_construction(self, kind_and_arg, traced):
    kind, arg_name = kind_and_arg
    self.assert_raises_naming(
        ValueError, ['`{}`'.format(arg_name), 'got shape [1, 2]'],
        lambda: call(lambda: make_flow(
            kind, quartic, **{arg_name: tf.fill([1, D], 0.1)}), traced))

  def test_rank_two_raises_for_zero_step_langevin_flow(self):
    # K = 0 is the identity and uses no damping; its shape is still checked.
    self.assert_raises_naming(
        ValueError, ['`damping`', 'got shape [2, 2]'],
        lambda: lb.langevin_flow(quartic, 0, 0.1, tf.fill([2, 2], 0.5)))

  def test_inconsistent_lengths_raise_at_construction(self):
    self.assert_raises_naming(
        ValueError, ['`step_size` and `damping`', 'got shapes [3] and [2]'],
        lambda: lb.QuasiSymplecticLangevin(quartic, tf.fill([3], 0.1),
                                           tf.fill([2], 0.5)))
    self.assert_raises_naming(
        ValueError, ['`damping` and `noise_scale`', 'got shapes [2] and [4]'],
        lambda: lb.QuasiSymplecticLangevin(
            quartic, tf.fill([1], 0.1), tf.fill([2], 0.5),
            noise_scale=tf.fill([4], 0.5), seed=[1, 2]))

  def test_run_time_check_of_unknown_latent_dimension(self):
    counter = lb.GradientCounter()
    flow = make_flow('langevin_step', quartic, step_size=tf.fill([5], 0.1),
                     validate_args=True, gradient_counter=counter)

    @tf.function(input_signature=[tf.TensorSpec([None, None], F64)] * 2)
    def forward(z, rho):
      return flow.forward([z, rho])
    message = self.assert_raises_naming(
        INVALID, ['`step_size`'], lambda: forward(*state()))
    self.assertRegex(message, r'Got shape\] \[5\] \[with D =\] \[2\]')
    # A good input through the same traced function: one gradient per step.
    good = make_flow('langevin_step', quartic, step_size=tf.fill([D], 0.3),
                     validate_args=True, gradient_counter=counter)

    @tf.function(input_signature=[tf.TensorSpec([None, None], F64)] * 2)
    def good_forward(z, rho):
      return good.forward([z, rho])
    x = state()
    counter.reset()
    self.assertAllClose(numpy_langevin_step(x, 0.3, 0.7),
                        good_forward(*x), atol=1e-12)
    self.assertEqual(1, counter.count.numpy())

  def test_run_time_check_of_unknown_parameter_rank(self):
    x = state()

    @tf.function(input_signature=[tf.TensorSpec(None, F64)])
    def forward(step_size):
      flow = lb.QuasiSymplecticLangevin(quartic, step_size, f64(0.7),
                                        validate_args=True)
      return flow.forward(x)
    message = self.assert_raises_naming(
        INVALID, ['`step_size`'], lambda: forward(tf.fill([2, 2], f64(0.1))))
    self.assertRegex(message, r'Got shape\] \[2 2\]')
    self.assertAllClose(numpy_langevin_step(x, [0.3, 0.2], 0.7),
                        forward(f64([0.3, 0.2])), atol=1e-12)
    self.assertAllClose(numpy_langevin_step(x, 0.3, 0.7), forward(f64(0.3)),
                        atol=1e-12)

  def test_tempering_length_is_not_tied_to_latent_dimension(self):
    # `tempering` has one factor per step: K = 5 with D = 2 is fine.
    alphas = [0.9, 1.1, 0.95, 1.05, 1.]
    flow = lb.TemperedLeapfrog(quartic, f64(0.1), f64(alphas))
    x = state()
    self.assertAllClose(numpy_leapfrog(x, 0.1, alphas), flow.forward(x),
                        atol=1e-12)


# Good parameter shapes: scalar, one per dimension, and [1] (broadcast).
GOOD_PARAMETERS = dict(
    scalar=(0.3, 0.7),
    per_dimension=([0.3, 0.2], [0.7, 0.]),
    broadcast=([0.3], [0.7]))
# Good batch shapes of z: none, one, two batch dimensions.
BATCH_SHAPES = dict(unbatched=(), batch=(4,), two_batch_dims=(2, 3))


class GoodInputTest(ApiTestCase):

  @parameterized.product(parameters=list(GOOD_PARAMETERS),
                         batch=list(BATCH_SHAPES), traced=[False, True])
  def test_langevin_step_matches_numpy(self, parameters, batch, traced):
    tau, nu = GOOD_PARAMETERS[parameters]
    counter = lb.GradientCounter()
    step = lb.QuasiSymplecticLangevin(quartic, f64(tau), f64(nu),
                                      gradient_counter=counter)
    x = state(BATCH_SHAPES[batch], seed=1)

    def run():
      y = step.forward(x)
      return y, step.inverse(fresh(y)), step.forward_log_det_jacobian(x)
    y, x_back, fldj = call(run, traced)
    self.assertAllClose(numpy_langevin_step(x, tau, nu), y, atol=1e-12)
    self.assertAllClose(x, x_back, atol=1e-12)
    expected_log_det = -np.sum(np.broadcast_to(np.multiply(tau, nu), [D]))
    self.assertAllClose(
        np.full(BATCH_SHAPES[batch], expected_log_det), fldj, atol=1e-12)
    self.assertEqual(2, counter.count.numpy())  # one per forward, inverse

  @parameterized.product(parameters=list(GOOD_PARAMETERS),
                         traced=[False, True])
  def test_langevin_flow_matches_numpy(self, parameters, traced):
    tau, nu = GOOD_PARAMETERS[parameters]
    flow = lb.langevin_flow(quartic, 2, f64(tau), f64(nu))
    x = state(seed=2)
    expected = numpy_langevin_step(numpy_langevin_step(x, tau, nu), tau, nu)
    self.assertAllClose(expected, call(lambda: flow.forward(x), traced),
                        atol=1e-12)

  @parameterized.product(parameters=list(GOOD_PARAMETERS),
                         batch=list(BATCH_SHAPES), traced=[False, True])
  def test_leapfrog_matches_numpy(self, parameters, batch, traced):
    eps, _ = GOOD_PARAMETERS[parameters]
    alphas = [0.9, 1.1]
    flow = lb.TemperedLeapfrog(quartic, f64(eps), f64(alphas),
                               gradient_mode='cached')
    x = state(BATCH_SHAPES[batch], seed=3)

    def run():
      return flow.forward(x), flow.forward_log_det_jacobian(x)
    y, fldj = call(run, traced)
    self.assertAllClose(numpy_leapfrog(x, eps, alphas), y, atol=1e-12)
    self.assertAllClose(
        np.full(BATCH_SHAPES[batch], D * np.sum(np.log(alphas))), fldj,
        atol=1e-12)


class MessageTest(ApiTestCase):

  def test_exact_wording(self):
    """The exact messages, written down once (the other tests check parts)."""
    x = state()
    with self.assertRaisesRegex(ValueError, '^' + re.escape(
        '`step_size` must be a scalar or of shape [D] (or [1]), D = '
        'z.shape[-1] the latent dimension; got shape [5] with D = 2 (z of '
        'shape [4, 2]).') + '$'):
      make_flow('langevin_step', quartic,
                step_size=tf.fill([5], 0.1)).forward(x)
    with self.assertRaisesRegex(ValueError, '^' + re.escape(
        '`target_log_prob_fn` must return one log density per batch member: '
        'a `Tensor` of shape z.shape[:-1] (z of shape [..., D] -> [...]). Got '
        'shape [4, 2] for z of shape [4, 2]; expected shape [4].') + '$'):
      make_flow('reference', per_dimension_target).forward(x)
    with self.assertRaisesRegex(ValueError, '^' + re.escape(
        '`damping` must be a scalar or a vector of shape [D] (one value per '
        'latent dimension); got shape [1, 2].') + '$'):
      make_flow('langevin_step', quartic, damping=tf.fill([1, D], 0.1))

if __name__ == '__main__':
  tf.test.main()
