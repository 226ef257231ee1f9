"""Models: ELBO assembly against math.md, IS estimator against closed forms, gradients."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lvae_tf import bijectors as lb
from lvae_tf import models
from lvae_tf.models import builder

D = 4  # small latent: fast, and enough to see every term


def _images(n, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant((rng.uniform(size=(n, 28, 28, 1)) < 0.3).astype(
      np.float32))


def _model(flow, **kwargs):
  common = dict(latent_dim=D, activation='relu', seed=3)
  if flow == 'vae':
    return models.VAE(**common, **kwargs)
  if flow == 'langevin':
    return models.LangevinVAE(num_steps=3, step_size=0.1, damping=0.3,
                              **common, **kwargs)
  return models.HVAE(num_steps=3, step_size=0.1, **common, **kwargs)


def _bernoulli_loglik(x, logits):
  x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
  return np.sum(x * logits - np.logaddexp(0., logits), axis=(1, 2, 3))


@pytest.mark.parametrize('flow', ['vae', 'langevin', 'hvae'])
def test_rb_elbo_matches_math_md_formula(flow):
  """ELBO_RB = ln p(x|zK) - |zK|^2/2 - |rhoK|^2/2 + sum ln s + D - K sum nu tau (math.md 2)."""
  model = _model(flow)
  x = _images(5)
  seed = tf.constant([1, 2], tf.int32)
  f = model.flow_sample(x, seed)
  mu, s = model.encoder(x)
  s = s.numpy().astype(np.float64)
  zk = f.zK.numpy().astype(np.float64)
  loglik = _bernoulli_loglik(x, model.decoder(f.zK))
  if flow == 'vae':
    # Textbook: ln p(x|z) + ln N(z) + H[q0], H = sum ln s + D/2 ln(2 pi e).
    expected = (loglik - 0.5 * np.sum(zk**2, -1) + np.sum(np.log(s), -1) +
                D / 2.)
  else:
    rhok = f.rhoK.numpy().astype(np.float64)
    expected = (loglik - 0.5 * np.sum(zk**2, -1) - 0.5 * np.sum(rhok**2, -1)
                + np.sum(np.log(s), -1) + D)
    if flow == 'langevin':
      volume = 3 * np.sum(model.damping.numpy() * model.step_size.numpy())
      np.testing.assert_allclose(f.log_det.numpy(), -volume, rtol=1e-5)
      expected -= volume  # the MINUS sign of math.md section 2
    else:
      # HVAE: the tempering's -(D/2) ln T0 cancels the wider momentum's entropy.
      t0 = model.initial_temperature.numpy()
      np.testing.assert_allclose(f.log_det.numpy(), -D / 2 * np.log(t0),
                                 rtol=1e-5)
  got = model.elbo(x, seed).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('flow', ['vae', 'langevin', 'hvae'])
def test_full_weight_matches_density_formula(flow):
  """ln w = ln p(x, zK) + ln N(rhoK) - ln q0(z0) - ln m(rho0) + log-det (non-RB)."""
  model = _model(flow)
  x = _images(4, seed=1)
  seed = tf.constant([5, 6], tf.int32)
  f = model.flow_sample(x, seed)
  mu, s = [t.numpy().astype(np.float64) for t in model.encoder(x)]

  def log_normal(v, scale):
    v = np.asarray(v, np.float64)
    return np.sum(-0.5 * (v / scale)**2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)

  z0 = f.z0.numpy()
  expected = (_bernoulli_loglik(x, model.decoder(f.zK)) +
              log_normal(f.zK.numpy(), 1.) - log_normal((z0 - mu), s))
  if flow != 'vae':
    t0 = 1. if flow == 'langevin' else float(model.initial_temperature.numpy())
    expected += (log_normal(f.rhoK.numpy(), 1.) -
                 log_normal(f.rho0.numpy(), np.sqrt(t0)) + f.log_det.numpy())
  got = model.log_weights(x, seed, rao_blackwell=False).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize('flow', ['vae', 'langevin'])
def test_rb_and_full_estimates_agree_in_expectation(flow):
  """Slow (many samples; fast cover: test_rb_elbo_matches_math_md_formula)."""
  model = _model(flow)
  x = _images(2, seed=2)
  tiled = tf.tile(x, [2000, 1, 1, 1])
  seed = tf.constant([7, 8], tf.int32)
  rb = model.elbo(tiled, seed, rao_blackwell=True).numpy().reshape(2000, 2)
  full = model.elbo(tiled, seed, rao_blackwell=False).numpy().reshape(2000, 2)
  diff = full - rb
  stderr = diff.std(0) / np.sqrt(len(diff))
  assert np.all(np.abs(diff.mean(0)) < 4 * stderr + 1e-3), (diff.mean(0),
                                                             stderr)
  # Note: the RB estimate need not have the lower variance. Replacing -ln q0(z0) by its
  # mean drops a term that is anti-correlated with ln N(zK) when q0 is close to the
  # prior (measured here on an untrained model: var RB 1.8 vs full 0.6).


class _LinearDecoderVAE(models.LangevinVAE):
  """1-d latent, logits = a z + b: ln p(x) is a 1-d integral, done by quadrature."""

  def __init__(self, a, b, **kwargs):
    super().__init__(latent_dim=1, activation='relu', seed=0, **kwargs)
    self.a = tf.constant(a.reshape(1, 28, 28, 1), tf.float32)
    self.b = tf.constant(b.reshape(1, 28, 28, 1), tf.float32)

  def log_likelihood(self, x, z):
    logits = z[:, :, None, None] * self.a + self.b
    return -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits),
        axis=[-3, -2, -1])


def test_importance_sampling_converges_to_closed_form():
  rng = np.random.default_rng(0)
  a = rng.normal(0., 0.05, 784)
  b = rng.normal(-1., 0.5, 784)
  model = _LinearDecoderVAE(a, b, num_steps=2, step_size=0.1, damping=0.5)
  z_true = rng.normal(size=3)
  p = 1. / (1. + np.exp(-(np.outer(z_true, a) + b)))
  x = (rng.uniform(size=p.shape) < p).astype(np.float32).reshape(3, 28, 28, 1)

  grid = np.linspace(-12., 12., 24001)
  logits = np.outer(grid, a) + b
  exact = []
  for xi in x.reshape(3, 784).astype(np.float64):
    ll = np.sum(xi * logits - np.logaddexp(0., logits), axis=1)
    lj = ll - 0.5 * grid**2 - 0.5 * np.log(2 * np.pi)
    m = lj.max()
    exact.append(m + np.log(np.trapezoid(np.exp(lj - m), grid)))
  estimate = model.log_marginal_likelihood(tf.constant(x), num_samples=4000,
                                           chunk_size=1000, seed=(1, 2))
  np.testing.assert_allclose(estimate, exact, atol=0.05)
  # And the ELBO is a lower bound (strictly, by a visible margin here).
  elbo = model.elbo(tf.tile(tf.constant(x), [500, 1, 1, 1]),
                    tf.constant([3, 4], tf.int32)).numpy().reshape(500, 3)
  assert np.all(elbo.mean(0) < np.array(exact))


@pytest.mark.parametrize('flow', ['vae', 'langevin', 'hvae'])
def test_nll_encodes_once_and_matches_per_sample_weights(flow):
  """The NLL's shared encoding gives the weights of encoding every tiled copy (cache bypassed)."""
  model = _model(flow)
  x = _images(3)
  n, seed = 4, tf.constant([5, 6], tf.int32)
  got = model._log_weights_chunk(x, n, seed).numpy()  # pylint: disable=protected-access
  direct = model.log_weights(tf.tile(x, [n, 1, 1, 1]), seed).numpy().reshape(n, 3)
  np.testing.assert_allclose(got, direct, rtol=1e-6)
  assert np.all(got[1:] != got[:1])  # the n samples really differ


@pytest.mark.parametrize('flow', ['langevin', 'hvae'])
def test_flow_parameters_are_trainable_and_get_gradients(flow):
  model = _model(flow)
  x = _images(3)
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model.elbo(x, tf.constant([1, 1], tf.int32)))
  names = {v.name.split('/')[-1].split(':')[0]: v
           for v in model.trainable_variables}
  wanted = (['step_size_logit', 'damping_raw'] if flow == 'langevin' else
            ['step_size_logit', 'temperature_raw'])
  grads = tape.gradient(loss, [names[w] for w in wanted])
  for w, g in zip(wanted, grads):
    assert g is not None, w
    assert np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0), w
  frozen = _model(flow, learn_flow=False)
  frozen(x)
  frozen_names = {v.name.split('/')[-1].split(':')[0]
                  for v in frozen.trainable_variables}
  assert not frozen_names & set(wanted)


def test_free_tempering_alphas_get_gradients():
  model = _model('hvae', tempering='free')
  x = _images(2)
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model.elbo(x, tf.constant([1, 1], tf.int32)))
  g = tape.gradient(loss, model.alpha_logit)
  assert g is not None and np.all(np.isfinite(g.numpy()))
  np.testing.assert_allclose(
      model.initial_temperature.numpy(),
      np.prod(1 / (1 + np.exp(-model.alpha_logit.numpy())))**-2, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('flow,mode,expected', [
    ('langevin', None, lambda k: k),
    ('hvae', 'reference', lambda k: 2 * k),
    ('hvae', 'cached', lambda k: k + 1),
])
def test_gradient_evaluations_per_training_step(flow, mode, expected):
  """Slow (training steps of three models; fast cover: test_bijectors.py::GradientCountTest)."""
  counter = lb.GradientCounter()
  kwargs = {} if mode is None else {'gradient_mode': mode}
  model = _model(flow, gradient_counter=counter, **kwargs)
  model.compile(optimizer=keras.optimizers.Adamax(1e-3))
  x = _images(4)
  model.train_on_batch(x)  # traces and runs one step
  counter.reset()
  model.train_on_batch(x)
  assert int(counter.count.numpy()) == expected(3)


def test_bad_images_give_clear_errors():
  model = _model('vae')
  with pytest.raises(ValueError, match=r'shape \(batch, 28, 28, 1\)'):
    model(tf.zeros([2, 28, 28]))
  with pytest.raises(ValueError, match='float'):
    model(tf.zeros([2, 28, 28, 1], tf.uint8))
  with pytest.raises(ValueError, match='num_steps'):
    models.LangevinVAE(num_steps=-1)
  with pytest.raises(ValueError, match='tempering'):
    models.HVAE(tempering='hot')


@pytest.mark.slow
def test_bf16_keeps_log_det_and_bounds_the_inverse():
  """Slow (two K = 5 models at D = 64; fast cover:
  test_figure3.py::test_step_bench_trains_in_bf16_with_float32_flow). math.md section 7: in bf16 the
  log-det is still exactly -K sum nu tau, and the inverse is exact only up to bf16 rounding.

  Measured max round-trip error, K = 5, D = 64, these seeds: float32 1.4e-6 everywhere; bf16
  5.0e-3 on an AVX2-only AMD EPYC (Zen 3, bf16 emulated) but 1.4e-6 on an AVX512-BF16 one
  (Zen 4, native): whether a float32 round-off in the reconstructed `z` flips a bf16 rounding
  depends on the kernels, so only the upper bound is a property (the lower bound this test
  once asserted, 1e-4, failed on Zen 4 and was dropped, not loosened)."""
  x = tf.cast(tf.random.stateless_uniform([50, 28, 28, 1], (1, 2)) < 0.3, tf.float32)
  z = tf.random.stateless_normal([50, 64], (3, 4))
  rho = tf.random.stateless_normal([50, 64], (5, 6))
  errors = {}
  for precision in ('float32', 'mixed_bfloat16'):
    model = models.LangevinVAE(num_steps=5, latent_dim=64, precision=precision, seed=1)
    model(x)
    flow = model.flow(model.target_log_prob_fn(x))
    z_k, rho_k = flow.forward([z, rho])
    assert z_k.dtype == tf.float32 and rho_k.dtype == tf.float32
    z_0, rho_0 = flow.inverse([tf.identity(z_k), tf.identity(rho_k)])  # bypass the cache
    errors[precision] = max(float(tf.reduce_max(tf.abs(z_0 - z))),
                            float(tf.reduce_max(tf.abs(rho_0 - rho))))
    log_det = flow.forward_log_det_jacobian([z, rho]).numpy()
    expected = -5 * float(tf.reduce_sum(model.step_size * model.damping))
    np.testing.assert_allclose(log_det, expected, rtol=1e-6)
    assert model.elbo(x, tf.constant([0, 1])).dtype == tf.float32
  assert errors['float32'] < 1e-4
  assert errors['mixed_bfloat16'] < 0.05, errors


@pytest.mark.parametrize('capability, expected', [
    (None, 'float32'),           # any CPU: bf16 measured no faster, AMX included
    ((7, 5), 'float32'),         # a GPU without fast bf16
    ((8, 0), 'mixed_bfloat16'),  # Ampere and later
])
def test_auto_precision_picks_bf16_only_on_recent_gpus(monkeypatch, capability, expected):
  """builder.resolve_precision, with the devices TensorFlow reports faked."""
  gpus = [] if capability is None else ['GPU:0']
  monkeypatch.setattr(tf.config, 'list_physical_devices',
                      lambda kind=None: gpus if kind == 'GPU' else [])
  monkeypatch.setattr(tf.config.experimental, 'get_device_details',
                      lambda device: {'compute_capability': capability})
  assert builder.resolve_precision('auto') == expected
  assert builder.resolve_precision('float32') == 'float32'
  assert builder.resolve_precision('mixed_bfloat16') == 'mixed_bfloat16'


def test_step_size_floor_bounds_the_learned_step_and_is_exact_without_floor():
  """tau = floor + (0.5 - floor) sigmoid(theta): starts at step_size, never below the floor;
  without a floor the initial logit and tau are bit-identical to 0.5 sigmoid(logit(2 step))."""
  floored = models.LangevinVAE(num_steps=1, step_size=0.2, min_step_size=0.1, latent_dim=4)
  np.testing.assert_allclose(floored.step_size.numpy(), 0.2, rtol=1e-6)
  floored.step_size_logit.assign(tf.fill([4], -50.))  # as far down as training could push it
  np.testing.assert_allclose(floored.step_size.numpy(), 0.1, rtol=1e-6)
  plain = models.LangevinVAE(num_steps=1, step_size=0.2, latent_dim=4)
  expected = 0.5 * tf.sigmoid(tf.constant(np.log(0.4 / 0.6), tf.float32))
  np.testing.assert_array_equal(plain.step_size.numpy(), np.full(4, expected.numpy()))
  with pytest.raises(ValueError, match='min_step_size'):
    models.LangevinVAE(num_steps=1, step_size=0.2, min_step_size=0.3, latent_dim=4)
