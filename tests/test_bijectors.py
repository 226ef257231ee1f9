"""Value tests of the flow bijectors (lvae_tf.bijectors).

Each test checks numbers against an independent computation: autodiff
Jacobians, exact solutions of the (damped) linear oscillator, finite
differences, TFP's own TransformedDistribution, eager vs traced execution.
Small dimensions (D = 2 or 3), float64 where precision matters.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from lvae_tf import bijectors as lb

tfb = tfp.bijectors
tfd = tfp.distributions

F64 = tf.float64
D = 3


# Non-quadratic targets l(z), z: [..., 3] -> [...].
def banana(z):
  return -0.5 * (z[..., 0]**2 + (z[..., 1] - z[..., 0]**2)**2 +
                 tf.reduce_sum(z[..., 2:]**2, axis=-1))


def quartic(z):
  return -0.25 * tf.reduce_sum(z**4, axis=-1) - 0.5 * tf.reduce_sum(
      z**2, axis=-1)


def mixture(z):
  m = tf.constant([1.5, -1., 0.5], z.dtype)
  return tf.reduce_logsumexp(
      tf.stack([-0.5 * tf.reduce_sum((z - m)**2, axis=-1),
                -0.5 * tf.reduce_sum((z + m)**2, axis=-1)], axis=-1), axis=-1)


def standard_normal(z):
  return -0.5 * tf.reduce_sum(z**2, axis=-1)


TARGETS = dict(banana=banana, quartic=quartic, mixture=mixture)

# (step size, damping): scalars, and one value per latent dimension.
SCALAR_PARAMS = (0.3, 0.7)
PER_DIM_PARAMS = ([0.1, 0.3, 0.2], [0.5, 0., 1.2])


def f64(x):
  return tf.constant(x, F64)


def random_state(num_points, dims=D, scale=1.5, seed=0, dtype=np.float64):
  rng = np.random.RandomState(seed)
  return [tf.constant(scale * rng.randn(num_points, dims).astype(dtype)),
          tf.constant(scale * rng.randn(num_points, dims).astype(dtype))]


def fresh(state):
  """Copies the tensors, so the bijector cache cannot answer."""
  return tf.nest.map_structure(tf.identity, state)


def autodiff_log_det(fn, state):
  """Sign and log|det| of the autodiff Jacobian of [z, rho] -> [z', rho']."""
  dims = state[0].shape[-1]
  v = tf.concat(state, axis=-1)
  with tf.GradientTape() as tape:
    tape.watch(v)
    out = tf.concat(fn([v[..., :dims], v[..., dims:]]), axis=-1)
  jacobian = tape.batch_jacobian(out, v)
  sign, log_abs_det = tf.linalg.slogdet(jacobian)
  return sign, log_abs_det


def printed_eq7(target_log_prob_fn, step_size, damping):
  """Paper Eq. 7 exactly as printed (sigma = 0): the gradient moves Phi."""
  def psi(state):
    phi, k = state
    _, grad = lb.value_and_gradient(target_log_prob_fn, phi)
    k1 = np.exp(-damping * step_size / 2.) * k
    phi1 = phi + step_size / 2. * (-grad)
    k2 = k1
    k_next = np.exp(-damping * step_size / 2.) * k2
    phi_next = phi1 + step_size / 2. * k2
    return [phi_next, k_next]
  return psi


def energy(target_log_prob_fn, state):
  z, rho = state
  return -target_log_prob_fn(z) + 0.5 * tf.reduce_sum(rho**2, axis=-1)


def run_steps(bijector, state, num_steps):
  """Applies `bijector` num_steps times; returns all states (traced loop)."""
  @tf.function
  def run(z, rho):
    zs = tf.TensorArray(z.dtype, size=num_steps + 1).write(0, z)
    rhos = tf.TensorArray(z.dtype, size=num_steps + 1).write(0, rho)
    def body(i, z, rho, zs, rhos):
      z, rho = bijector.forward([z, rho])
      return i + 1, z, rho, zs.write(i + 1, z), rhos.write(i + 1, rho)
    _, _, _, zs, rhos = tf.while_loop(
        lambda i, *_: i < num_steps, body, [0, z, rho, zs, rhos])
    return zs.stack(), rhos.stack()
  return run(*state)


def oscillator_exact(omega, damping, state, t):
  """Exact flow of dz = rho dt, d rho = (-omega^2 z - nu rho) dt at time t."""
  z, rho = [np.asarray(s) for s in state]
  out_z, out_rho = np.zeros_like(z), np.zeros_like(rho)
  for d, w in enumerate(omega):
    a = tf.constant([[0., 1.], [-w**2, -damping]], F64)
    propagator = tf.linalg.expm(a * t).numpy()
    out = propagator @ np.stack([z[:, d], rho[:, d]])
    out_z[:, d], out_rho[:, d] = out
  return out_z, out_rho


class BijectorTestCase(tf.test.TestCase, parameterized.TestCase):
  # tf.test.TestCase.test_session is a deprecated helper, not a test: hide it
  # from pytest (which would otherwise report it as skipped in every class).
  test_session = None


class QuasiSymplecticLangevinTest(BijectorTestCase):

  @parameterized.product(target=list(TARGETS), per_dim=[False, True])
  def test_log_det_matches_autodiff_jacobian(self, target, per_dim):
    step_size, damping = PER_DIM_PARAMS if per_dim else SCALAR_PARAMS
    step = lb.QuasiSymplecticLangevin(
        TARGETS[target], f64(step_size), f64(damping))
    x = random_state(5, seed=1)
    expected = -np.sum(np.broadcast_to(np.multiply(damping, step_size), [D]))

    sign, autodiff = autodiff_log_det(step.forward, x)
    fldj = step.forward_log_det_jacobian(x)
    y = step.forward(x)
    ildj = step.inverse_log_det_jacobian(fresh(y))

    self.assertAllEqual(np.ones(5), sign)
    self.assertAllClose(np.full(5, expected), autodiff, atol=1e-10)
    self.assertLess(np.ptp(autodiff.numpy()), 1e-10)  # same at every point
    self.assertAllClose(autodiff, fldj, atol=1e-10)
    self.assertAllClose(fldj, -ildj, atol=1e-12)

  @parameterized.parameters(False, True)
  def test_zero_damping_is_volume_preserving(self, per_dim):
    step_size = PER_DIM_PARAMS[0] if per_dim else SCALAR_PARAMS[0]
    step = lb.QuasiSymplecticLangevin(quartic, f64(step_size), f64(0.))
    x = random_state(4, seed=2)
    _, autodiff = autodiff_log_det(step.forward, x)
    self.assertAllClose(np.zeros(4), autodiff, atol=1e-10)
    self.assertAllClose(np.zeros(4), step.forward_log_det_jacobian(x))

  def test_printed_eq7_log_det_varies_but_corrected_step_does_not(self):
    step_size, damping = 0.5, 0.7
    x = [f64([[0., 0., 0.], [2., -1.5, 1.]]), f64([[0.3, -0.2, 0.1]] * 2)]
    _, printed = autodiff_log_det(
        printed_eq7(quartic, step_size, damping), x)
    _, corrected = autodiff_log_det(
        lb.QuasiSymplecticLangevin(quartic, f64(step_size),
                                   f64(damping)).forward, x)
    # Printed: log det = sum_d log(1 + tau/2 (3 z_d^2 + 1)) - nu tau D, which
    # depends on z; Theorem 2 fails for it.
    self.assertGreater(abs(printed[1] - printed[0]), 1.)
    self.assertAllClose(np.full(2, -damping * step_size * D), corrected,
                        atol=1e-10)

  @parameterized.parameters(
      dict(noise_scale=0., seed=None), dict(noise_scale=0.8, seed=[4, 2]))
  def test_round_trips_bypass_cache(self, noise_scale, seed):
    step = lb.QuasiSymplecticLangevin(
        banana, f64(PER_DIM_PARAMS[0]), f64(PER_DIM_PARAMS[1]),
        noise_scale=noise_scale, seed=seed)
    x = random_state(4, seed=3)
    y = step.forward(x)
    self.assertAllClose(x, step.inverse(fresh(y)), atol=1e-12)
    y2 = random_state(4, seed=4)
    self.assertAllClose(y2, step.forward(fresh(step.inverse(y2))), atol=1e-12)
    if noise_scale:  # the noise does move the state
      noiseless = lb.QuasiSymplecticLangevin(
          banana, f64(PER_DIM_PARAMS[0]), f64(PER_DIM_PARAMS[1]))
      self.assertGreater(
          np.max(np.abs(y[1] - noiseless.forward(fresh(x))[1])), 0.1)

  def test_noise_is_standard_normal_and_scaled(self):
    # l = 0 (zero gradient), nu = 0, rho = 0: rho' = sqrt(tau) * sigma * xi.
    zero_target = lambda z: 0. * tf.reduce_sum(z, axis=-1)
    step = lb.QuasiSymplecticLangevin(
        zero_target, f64(0.25), f64(0.), noise_scale=f64(2.), seed=[7, 8])
    x = [tf.zeros([20000, 2], F64), tf.zeros([20000, 2], F64)]
    xi = step.forward(x)[1].numpy() / (0.5 * 2.)
    self.assertAllClose([0., 0.], xi.mean(0), atol=0.03)
    self.assertAllClose([1., 1.], xi.std(0), atol=0.03)
    self.assertAllClose(0., np.corrcoef(xi.T)[0, 1], atol=0.03)

  def test_float32(self):
    step = lb.QuasiSymplecticLangevin(banana, 0.1, 0.5)
    x = random_state(3, dtype=np.float32)
    y = step.forward(x)
    self.assertEqual(tf.float32, y[0].dtype)
    self.assertAllClose(x, step.inverse(fresh(y)), atol=1e-5)
    self.assertAllClose(np.full(3, -0.05 * D),
                        step.forward_log_det_jacobian(x))


class LangevinFlowTest(BijectorTestCase):

  @parameterized.parameters(False, True)
  def test_log_det_matches_autodiff_jacobian(self, per_dim):
    step_size, damping = PER_DIM_PARAMS if per_dim else SCALAR_PARAMS
    flow = lb.langevin_flow(mixture, 3, f64(step_size), f64(damping))
    self.assertEqual([1, 1], list(flow.forward_min_event_ndims))
    x = random_state(4, seed=5)
    expected = -3 * np.sum(
        np.broadcast_to(np.multiply(damping, step_size), [D]))
    _, autodiff = autodiff_log_det(flow.forward, x)
    self.assertAllClose(np.full(4, expected), autodiff, atol=1e-9)
    self.assertAllClose(autodiff, flow.forward_log_det_jacobian(x),
                        atol=1e-9)
    self.assertAllClose(flow.forward_log_det_jacobian(x),
                        -flow.inverse_log_det_jacobian(fresh(flow.forward(x))))

  def test_chain_equals_composed_steps(self):
    x = random_state(3, seed=6)
    flow = lb.langevin_flow(banana, 3, f64(0.2), f64(0.4), noise_scale=0.5,
                            seed=[1, 2])
    state = x
    # Chain lists its bijectors last-to-first.
    for step in reversed(flow.bijectors):
      state = step.forward(state)
    self.assertAllClose(state, flow.forward(fresh(x)), atol=1e-12)
    # With noise, every step has its own seed.
    seeds = [s.seed.numpy().tolist() for s in flow.bijectors]
    self.assertLen(set(map(tuple, seeds)), 3)

  @parameterized.parameters(
      dict(noise_scale=0., seed=None), dict(noise_scale=0.5, seed=[3, 1]))
  def test_round_trips_bypass_cache(self, noise_scale, seed):
    flow = lb.langevin_flow(quartic, 4, f64(PER_DIM_PARAMS[0]),
                            f64(PER_DIM_PARAMS[1]), noise_scale=noise_scale,
                            seed=seed)
    x = random_state(3, seed=7)
    self.assertAllClose(x, flow.inverse(fresh(flow.forward(x))), atol=1e-11)
    y = random_state(3, seed=8)
    self.assertAllClose(y, flow.forward(fresh(flow.inverse(y))), atol=1e-11)

  def test_zero_steps_is_identity(self):
    counter = lb.GradientCounter()
    flow = lb.langevin_flow(banana, 0, f64(0.1), f64(0.5),
                            gradient_counter=counter)
    x = random_state(3, seed=9)
    self.assertEqual([1, 1], list(flow.forward_min_event_ndims))
    self.assertAllEqual(x, flow.forward(x))
    self.assertAllEqual(x, flow.inverse(fresh(x)))
    self.assertAllEqual(np.zeros(3), flow.forward_log_det_jacobian(x))
    self.assertEqual(0, counter.count.numpy())

  def test_energy_conserved_without_damping_dissipated_with(self):
    x = random_state(3, seed=10, scale=1.)
    h0 = energy(quartic, x).numpy()
    # nu = 0: position-Verlet leapfrog, symplectic (Theorem 1).
    zs, rhos = run_steps(
        lb.QuasiSymplecticLangevin(quartic, f64(0.05), f64(0.)), x, 500)
    h = energy(quartic, [zs, rhos]).numpy()
    self.assertLess(np.max(np.abs(h - h0)), 0.02)  # measured 0.0095; H0 ~ 1-5
    # nu > 0 on a quadratic target: H decays like exp(-nu t).
    x = random_state(3, seed=11, scale=1.)
    h0 = energy(standard_normal, x).numpy()
    zs, rhos = run_steps(
        lb.QuasiSymplecticLangevin(standard_normal, f64(0.1), f64(0.5)), x,
        200)
    h = energy(standard_normal, [zs, rhos]).numpy()
    self.assertTrue(np.all(h[-1] < 1e-3 * h0), msg=(h[-1], h0))
    self.assertAllLess(np.diff(h, axis=0), 1e-12)  # never increases here

  @parameterized.parameters(0., 0.5)
  def test_weak_order_two_on_damped_oscillator(self, damping):
    omega = [1., 2.]
    target = lambda z: -0.5 * tf.reduce_sum(
        tf.constant(omega, z.dtype)**2 * z**2, axis=-1)
    x = random_state(3, dims=2, seed=12, scale=1.)
    exact = oscillator_exact(omega, damping, x, t=2.)
    errors = []
    for num_steps in (20, 40):
      flow = lb.langevin_flow(target, num_steps, f64(2. / num_steps),
                              f64(damping))
      errors.append(np.max(np.abs(np.subtract(flow.forward(x), exact))))
    self.assertBetween(errors[0] / errors[1], 3.5, 4.5)


class TemperedLeapfrogTest(BijectorTestCase):

  @parameterized.product(target=list(TARGETS), mode=['reference', 'cached'])
  def test_log_det_matches_autodiff_jacobian(self, target, mode):
    tempering = [0.9, 1.15, 0.8]
    flow = lb.TemperedLeapfrog(TARGETS[target], f64(PER_DIM_PARAMS[0]),
                               f64(tempering), gradient_mode=mode)
    x = random_state(4, seed=13)
    _, autodiff = autodiff_log_det(flow.forward, x)
    expected = D * np.sum(np.log(tempering))
    self.assertAllClose(np.full(4, expected), autodiff, atol=1e-10)
    self.assertAllClose(autodiff, flow.forward_log_det_jacobian(x),
                        atol=1e-10)
    self.assertAllClose(flow.forward_log_det_jacobian(x),
                        -flow.inverse_log_det_jacobian(fresh(flow.forward(x))))

  def test_fixed_tempering_log_det_cancels_initial_temperature(self):
    t0 = 1.7
    alphas = lb.fixed_tempering(f64(t0), 4)
    temps = [(1. - t0) * k**2 / 16. + t0 for k in range(5)]
    self.assertAllClose(np.sqrt(np.divide(temps[1:], temps[:-1])), alphas)
    flow = lb.hamiltonian_flow(quartic, 4, f64(0.1), tempering=alphas)
    self.assertAllClose(np.full(2, -D / 2. * np.log(t0)),
                        flow.forward_log_det_jacobian(random_state(2)))
    self.assertEqual(0, lb.fixed_tempering(f64(t0), 0).shape[0])

  def test_reference_and_cached_agree(self):
    x = random_state(4, seed=14)
    kwargs = dict(target_log_prob_fn=mixture, step_size=f64([0.2, 0.1, 0.3]),
                  tempering=lb.fixed_tempering(f64(1.5), 5))
    reference = lb.TemperedLeapfrog(gradient_mode='reference', **kwargs)
    cached = lb.TemperedLeapfrog(gradient_mode='cached', **kwargs)
    self.assertAllClose(reference.forward(x), cached.forward(fresh(x)),
                        atol=1e-13)
    self.assertAllClose(reference.inverse(x), cached.inverse(fresh(x)),
                        atol=1e-13)

  @parameterized.parameters('reference', 'cached')
  def test_round_trips_bypass_cache(self, mode):
    flow = lb.TemperedLeapfrog(banana, f64(0.2), f64([1.2, 0.7, 0.9]),
                               gradient_mode=mode)
    x = random_state(3, seed=15)
    self.assertAllClose(x, flow.inverse(fresh(flow.forward(x))), atol=1e-11)
    y = random_state(3, seed=16)
    self.assertAllClose(y, flow.forward(fresh(flow.inverse(y))), atol=1e-11)

  def test_reversible_under_momentum_flip(self):
    flow = lb.hamiltonian_flow(banana, 5, f64([0.1, 0.2, 0.15]))
    z, rho = random_state(3, seed=17)
    z1, rho1 = flow.forward([z, rho])
    z2, rho2 = flow.forward([z1, -rho1])
    self.assertAllClose(z, z2, atol=1e-12)
    self.assertAllClose(-rho, rho2, atol=1e-12)

  def test_untempered_leapfrog_conserves_energy(self):
    x = random_state(3, seed=18, scale=1.)
    h0 = energy(banana, x).numpy()
    zs, rhos = run_steps(
        lb.hamiltonian_flow(banana, 1, f64(0.02), gradient_mode='cached'),
        x, 500)
    h = energy(banana, [zs, rhos]).numpy()
    self.assertLess(np.max(np.abs(h - h0)), 0.005)  # measured 0.001; H0 ~ 2

  def test_weak_order_two_on_oscillator(self):
    omega = [1., 2.]
    target = lambda z: -0.5 * tf.reduce_sum(
        tf.constant(omega, z.dtype)**2 * z**2, axis=-1)
    x = random_state(3, dims=2, seed=19, scale=1.)
    exact = oscillator_exact(omega, 0., x, t=2.)
    errors = []
    for num_steps in (20, 40):
      flow = lb.hamiltonian_flow(target, num_steps, f64(2. / num_steps),
                                 gradient_mode='cached')
      errors.append(np.max(np.abs(np.subtract(flow.forward(x), exact))))
    self.assertBetween(errors[0] / errors[1], 3.5, 4.5)


class GradientCountTest(BijectorTestCase):

  @parameterized.parameters(1, 5, 10)
  def test_counts_inside_tf_function(self, num_steps):
    counter = lb.GradientCounter()
    flows = dict(
        langevin=(lb.langevin_flow(banana, num_steps, f64(0.1), f64(0.5),
                                   gradient_counter=counter), num_steps),
        reference=(lb.hamiltonian_flow(banana, num_steps, f64(0.1),
                                       gradient_mode='reference',
                                       gradient_counter=counter),
                   2 * num_steps),
        cached=(lb.hamiltonian_flow(banana, num_steps, f64(0.1),
                                    gradient_mode='cached',
                                    gradient_counter=counter),
                num_steps + 1))
    x, y = random_state(2, seed=20), random_state(2, seed=21)
    for name, (flow, expected) in flows.items():
      @tf.function
      def count(x, y, flow=flow):
        counter.reset()
        forward = flow.forward(x)
        after_forward = counter.count
        inverse = flow.inverse(y)
        return after_forward, counter.count - after_forward, forward, inverse
      n_forward, n_inverse, _, _ = count(x, y)
      self.assertEqual(expected, n_forward.numpy(), msg=name)
      self.assertEqual(expected, n_inverse.numpy(), msg=name)
      n_forward, _, _, _ = count(x, y)  # counts executions, not traces
      self.assertEqual(expected, n_forward.numpy(), msg=name)

  def test_counts_in_eager_mode_and_reset(self):
    counter = lb.GradientCounter()
    step = lb.QuasiSymplecticLangevin(banana, f64(0.1), f64(0.5),
                                      gradient_counter=counter)
    x = random_state(2)
    step.forward(x)
    step.forward(fresh(x))
    self.assertEqual(2, counter.count.numpy())
    counter.reset()
    self.assertEqual(0, counter.count.numpy())

  def test_value_and_gradient(self):
    z = f64([[1., 2., 3.], [0., -1., 0.5]])
    value, grad = lb.value_and_gradient(quartic, z)
    self.assertAllClose(quartic(z), value)
    self.assertAllClose(-z**3 - z, grad)
    with self.assertRaisesRegex(ValueError, 'does not depend on `z`'):
      lb.value_and_gradient(lambda z: tf.constant([1., 2.], F64), z)


class TransformedDistributionTest(BijectorTestCase):

  @parameterized.parameters('langevin', 'leapfrog')
  def test_log_prob_and_sample(self, flow_name):
    if flow_name == 'langevin':
      flow = lb.langevin_flow(banana, 3, f64(0.2), f64([0.3, 0.5, 0.1]))
    else:
      flow = lb.TemperedLeapfrog(banana, f64(0.2),
                                 lb.fixed_tempering(f64(1.5), 3))
    base = tfd.JointDistributionSequential([
        tfd.MultivariateNormalDiag(f64([0.5, -0.2, 0.1]), f64([0.8, 1.2, 1.])),
        tfd.MultivariateNormalDiag(tf.zeros(D, F64), tf.ones(D, F64)),
    ])
    dist = tfd.TransformedDistribution(base, flow)
    y = random_state(4, seed=22)
    x = flow.inverse(fresh(y))
    expected = base.log_prob(x) - flow.forward_log_det_jacobian(x)
    self.assertAllClose(expected, dist.log_prob(fresh(y)), atol=1e-10)

    sample = dist.sample(5, seed=(1, 2))
    self.assertAllClose(flow.forward(base.sample(5, seed=(1, 2))), sample)
    self.assertAllEqual([5, D], sample[0].shape)
    self.assertTrue(np.all(np.isfinite(dist.log_prob(sample))))


class AutodiffThroughFlowTest(BijectorTestCase):

  def assert_gradients_match_finite_differences(self, loss_fn, variables):
    with tf.GradientTape() as tape:
      loss = loss_fn()
    grads = tape.gradient(loss, variables)
    h = 1e-5
    for variable, grad in zip(variables, grads):
      self.assertIsNotNone(grad, msg=variable.name)
      value = variable.numpy()
      fd = np.zeros_like(value)
      for index in np.ndindex(value.shape or ()):
        delta = np.zeros_like(value)
        delta[index] = h
        variable.assign(value + delta)
        plus = loss_fn().numpy()
        variable.assign(value - delta)
        minus = loss_fn().numpy()
        variable.assign(value)
        fd[index] = (plus - minus) / (2. * h)
      self.assertAllClose(fd, grad, rtol=1e-6, atol=1e-8, msg=variable.name)

  def test_langevin_second_order(self):
    a = tf.Variable(f64(0.7), name='a')
    step_size = tf.Variable(f64([0.2, 0.1, 0.3]), name='step_size')
    damping = tf.Variable(f64(0.4), name='damping')
    target = lambda z: -a * tf.reduce_sum(z**4, -1) / 4. - tf.reduce_sum(
        z**2, -1) / 2.
    x = random_state(2, seed=23)

    def loss_fn():
      flow = lb.langevin_flow(target, 3, step_size, damping)
      self.assertIs(step_size, flow.bijectors[0].step_size)  # still a Variable
      return tf.reduce_sum(tf.concat(flow.forward(fresh(x)), -1))

    self.assert_gradients_match_finite_differences(
        loss_fn, [a, step_size, damping])

  @parameterized.parameters('reference', 'cached')
  def test_leapfrog_second_order(self, mode):
    a = tf.Variable(f64(0.7), name='a')
    step_size = tf.Variable(f64(0.2), name='step_size')
    tempering = tf.Variable(f64([0.9, 1.1, 0.95]), name='tempering')
    target = lambda z: -a * tf.reduce_sum(z**4, -1) / 4. - tf.reduce_sum(
        z**2, -1) / 2.
    x = random_state(2, seed=24)

    def loss_fn():
      flow = lb.TemperedLeapfrog(target, step_size, tempering,
                                 gradient_mode=mode)
      return tf.reduce_sum(tf.concat(flow.forward(fresh(x)), -1))

    self.assert_gradients_match_finite_differences(
        loss_fn, [a, step_size, tempering])

  def test_fixed_tempering_differentiable(self):
    t0 = tf.Variable(f64(1.5), name='t0')
    def loss_fn():
      return tf.reduce_sum(lb.fixed_tempering(t0, 4) * f64([1., 2., 3., 4.]))
    self.assert_gradients_match_finite_differences(loss_fn, [t0])


class CompiledTest(BijectorTestCase):

  @parameterized.parameters(False, True)
  def test_traced_and_xla_match_eager(self, jit_compile):
    counter = lb.GradientCounter()
    x = random_state(3, seed=25)
    flows = dict(
        step=(lb.QuasiSymplecticLangevin(
            mixture, f64(PER_DIM_PARAMS[0]), f64(PER_DIM_PARAMS[1]),
            noise_scale=0.5, seed=[5, 6], gradient_counter=counter), 1),
        langevin=(lb.langevin_flow(mixture, 2, f64(0.2), f64(0.5),
                                   gradient_counter=counter), 2),
        reference=(lb.TemperedLeapfrog(
            mixture, f64(0.2), f64([0.9, 1.1]), gradient_mode='reference',
            gradient_counter=counter), 4),
        cached=(lb.TemperedLeapfrog(
            mixture, f64(0.2), f64([0.9, 1.1]), gradient_mode='cached',
            gradient_counter=counter), 3))
    for name, (flow, count) in flows.items():
      def run(x, flow=flow):
        y = flow.forward(x)
        return (y, flow.inverse(fresh(y)), flow.forward_log_det_jacobian(x))
      eager = run(x)
      compiled = tf.function(run, jit_compile=jit_compile)
      counter.reset()
      traced = compiled(fresh(x))
      self.assertEqual(2 * count, counter.count.numpy(), msg=name)
      self.assertAllClose(eager, traced, atol=1e-12, msg=name)
      self.assertAllClose(x, traced[1], atol=1e-12, msg=name)


class ValidationTest(BijectorTestCase):

  def test_static_errors(self):
    with self.assertRaisesRegex(ValueError, 'gradient_mode'):
      lb.TemperedLeapfrog(banana, 0.1, [1., 1.], gradient_mode='fast')
    with self.assertRaisesRegex(ValueError, 'num_steps'):
      lb.langevin_flow(banana, -1, 0.1, 0.5)
    with self.assertRaisesRegex(ValueError, 'num_steps'):
      lb.hamiltonian_flow(banana, 2.5, 0.1)
    with self.assertRaisesRegex(ValueError, 'tempering.*1-D'):
      lb.TemperedLeapfrog(banana, 0.1, [[1., 1.]])
    with self.assertRaisesRegex(ValueError, 'tempering.*1-D'):
      lb.TemperedLeapfrog(banana, 0.1, 1.)
    with self.assertRaisesRegex(ValueError, '`tempering` must have'):
      lb.hamiltonian_flow(banana, 3, 0.1, tempering=[1., 1.])
    with self.assertRaisesRegex(ValueError, 'seed'):
      lb.QuasiSymplecticLangevin(banana, 0.1, 0.5, noise_scale=0.1)
    with self.assertRaisesRegex(ValueError, 'same shape'):
      lb.QuasiSymplecticLangevin(banana, 0.1, 0.5).forward(
          [tf.zeros([2, 3]), tf.zeros([2, 4])])

  def test_parameter_assertions(self):
    invalid = tf.errors.InvalidArgumentError
    with self.assertRaisesRegex(invalid, r'`step_size` \(tau\) must be pos'):
      lb.QuasiSymplecticLangevin(banana, 0., 0.5, validate_args=True)
    with self.assertRaisesRegex(invalid, r'`damping` \(nu\) must be non-neg'):
      lb.QuasiSymplecticLangevin(banana, 0.1, [0.5, -0.1, 0.],
                                 validate_args=True)
    with self.assertRaisesRegex(invalid, r'`step_size` \(eps\) must be pos'):
      lb.TemperedLeapfrog(banana, -0.1, [1.], validate_args=True)
    with self.assertRaisesRegex(invalid, r'`tempering` \(alpha_k\) must be'):
      lb.hamiltonian_flow(banana, 2, 0.1, tempering=[1., 0.],
                          validate_args=True)
    # Variables are checked when used, after they change.
    step_size = tf.Variable(0.1)
    step = lb.QuasiSymplecticLangevin(banana, step_size, 0.5,
                                      validate_args=True)
    x = [tf.ones([2, 3]), tf.ones([2, 3])]
    step.forward(x)
    step_size.assign(-0.1)
    with self.assertRaisesRegex(invalid, r'`step_size` \(tau\) must be pos'):
      step.forward(fresh(x))

  def test_input_assertions(self):
    invalid = tf.errors.InvalidArgumentError
    for flow in [lb.QuasiSymplecticLangevin(banana, 0.1, 0.5,
                                            validate_args=True),
                 lb.hamiltonian_flow(banana, 2, 0.1, validate_args=True)]:
      with self.assertRaisesRegex(invalid, r'`x\[0\]` \(position z\) must be'):
        flow.forward([tf.constant([[np.nan, 0., 0.]]), tf.zeros([1, 3])])
      with self.assertRaisesRegex(invalid, r'`y\[1\]` \(momentum rho\) must'):
        flow.inverse([tf.zeros([1, 3]), tf.constant([[0., np.inf, 0.]])])

      @tf.function(input_signature=[tf.TensorSpec([None, 3]),
                                    tf.TensorSpec([None, 3])])
      def forward(z, rho, flow=flow):
        return flow.forward([z, rho])
      with self.assertRaisesRegex(invalid, 'same shape'):
        forward(tf.zeros([2, 3]), tf.zeros([1, 3]))


if __name__ == '__main__':
  tf.test.main()
