"""Tests of lvae_tf.metrics: Frechet distance, IS formula, MNIST classifier.

Value checks: closed forms of the Frechet distance between Gaussians, an
independent computation through the eigenvalues of S1 S2, exact Inception
Scores of constructed predictions, and the shipped classifier on real MNIST.
"""

import shutil

import numpy as np
import pytest
import tf_keras as keras

from lvae_tf.cli import train_classifier
from lvae_tf import data
from lvae_tf import metrics


def _random_spd(rng, dim, cond=10.):
  """Random symmetric positive definite matrix with condition number `cond`."""
  q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  eigvals = np.geomspace(1., cond, dim) * rng.uniform(0.5, 2.)
  return (q * eigvals) @ q.T


def _fd_independent(mu1, s1, mu2, s2):
  """FD with tr sqrt(S1 S2) = sum sqrt(eig(S1 S2)) (general eigvals, numpy).

  S1 S2 is similar to S1^{1/2} S2 S1^{1/2}, so its eigenvalues are real and
  non-negative; this path shares no code with metrics.frechet_distance.
  """
  eig = np.linalg.eigvals(s1 @ s2)
  assert np.max(np.abs(eig.imag)) < 1e-8 * np.max(np.abs(eig.real))
  cross = np.sum(np.sqrt(np.clip(eig.real, 0., None)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) -
               2. * cross)


def _fd_commuting(mu1, a, mu2, b):
  """Closed form for covariances Q diag(a) Q^T and Q diag(b) Q^T."""
  return float(np.sum((mu1 - mu2) ** 2) +
               np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


class TestFrechetDistance:

  def test_one_dimensional(self):
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) = (m1 - m2)^2 + (s1 - s2)^2.
    fd = metrics.frechet_distance([1.5], [[4.]], [-0.5], [[0.25]])
    np.testing.assert_allclose(fd, 2. ** 2 + (2. - 0.5) ** 2, rtol=1e-12)

  def test_diagonal_closed_form(self):
    rng = np.random.default_rng(0)
    dim = 20
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    a, b = rng.uniform(0.1, 3., dim), rng.uniform(0.1, 3., dim)
    fd = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(fd, _fd_commuting(mu1, a, mu2, b), rtol=1e-10)

  def test_commuting_closed_form(self):
    rng = np.random.default_rng(1)
    dim = 32
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    a, b = rng.uniform(0.01, 5., dim), rng.uniform(0.01, 5., dim)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    expected = _fd_commuting(mu1, a, mu2, b)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2),
                               expected, rtol=1e-9)
    # Same covariance shape, scaled by c^2: FD = |dmu|^2 + (1 - c)^2 tr S.
    np.testing.assert_allclose(
        metrics.frechet_distance(mu1, s1, mu1, 9. * s1),
        4. * np.trace(s1), rtol=1e-9)

  def test_random_full_covariances_match_independent_computation(self):
    rng = np.random.default_rng(2)
    for dim in (2, 10, 64):
      mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
      s1, s2 = _random_spd(rng, dim, 30.), _random_spd(rng, dim, 30.)
      fd = metrics.frechet_distance(mu1, s1, mu2, s2)
      np.testing.assert_allclose(fd, _fd_independent(mu1, s1, mu2, s2),
                                 rtol=1e-8)

  def test_symmetric_in_its_arguments(self):
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    s1, s2 = _random_spd(rng, 16, 1e3), _random_spd(rng, 16, 1e3)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2),
                               metrics.frechet_distance(mu2, s2, mu1, s1),
                               rtol=1e-9)

  def test_zero_for_identical_gaussians(self):
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(500, 128)) @ rng.normal(size=(128, 128))
    mu, sigma = metrics.feature_statistics(feats)
    fd = metrics.frechet_distance(mu, sigma, mu, sigma)
    assert 0. <= fd < 1e-9 * np.trace(sigma)

  def test_rank_deficient_features(self):
    # 128-d features living in a 10-d subspace (like dead ReLU units or too
    # few samples): singular covariances must give finite, non-negative,
    # correct values.
    rng = np.random.default_rng(5)
    basis = rng.normal(size=(10, 128))
    f1 = rng.normal(size=(300, 10)) @ basis
    f2 = 1.5 * rng.normal(size=(300, 10)) @ basis + 0.1
    mu1, s1 = metrics.feature_statistics(f1)
    mu2, s2 = metrics.feature_statistics(f2)
    assert np.linalg.matrix_rank(s1) == 10
    for args in ((mu1, s1, mu2, s2), (mu2, s2, mu1, s1),
                 (mu1, s1, mu1, s1)):
      fd = metrics.frechet_distance(*args)
      assert np.isfinite(fd) and fd >= 0.
    assert metrics.frechet_distance(mu1, s1, mu1, s1) < 1e-9 * np.trace(s1)
    # S2 = 2.25 S1 exactly (same basis and draws scaled): closed form.
    f3 = 1.5 * f1 + 0.1
    mu3, s3 = metrics.feature_statistics(f3)
    np.testing.assert_allclose(
        metrics.frechet_distance(mu1, s1, mu3, s3),
        np.sum((mu1 - mu3) ** 2) + 0.25 * np.trace(s1), rtol=1e-7)

  def test_singular_and_ill_conditioned_diagonal(self):
    a = np.array([0., 0., 1e-12, 1e-6, 1., 1e3, 0.])
    b = np.array([0., 2., 0., 1e-6, 4., 1e3, 1e-14])
    mu = np.zeros(len(a))
    fd = metrics.frechet_distance(mu, np.diag(a), mu, np.diag(b))
    expected = _fd_commuting(mu, a, mu, b)
    np.testing.assert_allclose(fd, expected, rtol=1e-9)
    # Ill-conditioned full covariances (condition number 1e12), rotated.
    rng = np.random.default_rng(6)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    a = np.geomspace(1e-9, 1e3, 32)
    b = a[::-1].copy()
    fd = metrics.frechet_distance(mu[:1].repeat(32), (q * a) @ q.T,
                                  mu[:1].repeat(32), (q * b) @ q.T)
    np.testing.assert_allclose(fd, _fd_commuting(0., a, 0., b), rtol=1e-8)
    assert metrics.frechet_distance(np.zeros(32), (q * a) @ q.T,
                                    np.zeros(32), (q * a) @ q.T) >= 0.

  def test_feature_statistics_match_numpy(self):
    rng = np.random.default_rng(7)
    feats = rng.normal(size=(50, 6)).astype(np.float32)
    mu, sigma = metrics.feature_statistics(feats)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0),
                               rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64),
                                             rowvar=False), rtol=1e-12)

  @pytest.mark.parametrize('args, match', [
      (([0., 0.], np.eye(2), [0.], np.eye(1)), 'mu1 and mu2'),
      (([0., 0.], np.eye(3), [0., 0.], np.eye(2)), 'sigma1'),
      (([0., 0.], np.eye(2), [0., 0.], [[1., 2.], [0., 1.]]), 'symmetric'),
      (([np.nan, 0.], np.eye(2), [0., 0.], np.eye(2)), 'NaN'),
  ])
  def test_bad_inputs(self, args, match):
    with pytest.raises(ValueError, match=match):
      metrics.frechet_distance(*args)

  def test_feature_statistics_bad_inputs(self):
    with pytest.raises(ValueError, match='N >= 2'):
      metrics.feature_statistics(np.ones((1, 4)))
    with pytest.raises(ValueError, match=r'\[N, F\]'):
      metrics.feature_statistics(np.ones(4))


class TestInceptionScore:

  def test_confident_and_balanced_is_num_classes(self):
    probs = np.eye(10)[np.arange(1000) % 10]
    mean, std = metrics.inception_score(probs, num_splits=10)
    np.testing.assert_allclose(mean, 10., rtol=1e-12)
    np.testing.assert_allclose(std, 0., atol=1e-12)

  def test_identical_predictions_give_one(self):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10))
    for probs in (np.tile(p, (200, 1)), np.eye(10)[np.full(200, 3)]):
      mean, std = metrics.inception_score(probs, num_splits=4)
      np.testing.assert_allclose(mean, 1., rtol=1e-12)
      np.testing.assert_allclose(std, 0., atol=1e-12)

  def test_hand_computed_two_class_value(self):
    probs = np.array([[0.9, 0.1], [0.1, 0.9]])
    kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    mean, _ = metrics.inception_score(probs, num_splits=1)
    np.testing.assert_allclose(mean, np.exp(kl), rtol=1e-12)

  def test_splits_use_their_own_marginal(self):
    # Split 1: all class 0; split 2: all class 1 -> each split scores 1,
    # although the pooled set would score 2.
    probs = np.eye(2)[[0] * 50 + [1] * 50]
    assert metrics.inception_score(probs, num_splits=2)[0] == pytest.approx(1.)
    assert metrics.inception_score(probs, num_splits=1)[0] == pytest.approx(2.)

  @pytest.mark.parametrize('probs, splits, match', [
      (np.ones(10) / 10, 1, r'\[N, C\]'),
      (np.full((20, 10), 0.5), 2, 'sum to 1'),
      (np.eye(10)[:5] * 2. - 1., 1, 'non-negative'),
      (np.eye(10)[:5], 6, 'num_splits'),
      (np.eye(10)[:5], 0, 'num_splits'),
  ])
  def test_bad_inputs(self, probs, splits, match):
    with pytest.raises(ValueError, match=match):
      metrics.inception_score(probs, num_splits=splits)


class TestImageValidation:

  def test_accepted_shapes_give_one_layout(self):
    x = np.random.default_rng(0).uniform(size=(3, 784)).astype(np.float32)
    expected = x.reshape(3, 28, 28, 1)
    for y in (x, x.reshape(3, 28, 28), expected, x.astype(np.float64)):
      np.testing.assert_array_equal(metrics.validate_images(y), expected)

  @pytest.mark.parametrize('images, match', [
      (np.zeros((2, 28, 28), np.uint8), 'floating point'),
      (np.zeros((2, 28, 27), np.float32), 'shape'),
      (np.zeros((2, 28, 28, 3), np.float32), 'shape'),
      (np.zeros((0, 784), np.float32), 'empty'),
      (np.full((2, 784), 255., np.float32), r'\[0, 1\]'),
      (np.full((2, 784), -0.5, np.float32), r'\[0, 1\]'),
      (np.full((2, 784), np.nan, np.float32), 'NaN'),
  ])
  def test_bad_images(self, images, match):
    with pytest.raises(ValueError, match=match):
      metrics.validate_images(images)


class TestShippedWeights:

  def test_missing_weights(self, tmp_path):
    shutil.copy(metrics.assets_dir() / metrics.RECORD_FILENAME, tmp_path)
    with pytest.raises(metrics.ClassifierWeightsError, match='not found'):
      metrics.load_classifier(tmp_path / metrics.WEIGHTS_FILENAME,
                              tmp_path / metrics.RECORD_FILENAME)

  def test_missing_record(self, tmp_path):
    with pytest.raises(metrics.ClassifierWeightsError, match='record'):
      metrics.load_classifier(metrics.assets_dir() / metrics.WEIGHTS_FILENAME,
                              tmp_path / 'nothing.json')

  def test_corrupt_weights(self, tmp_path):
    for name in (metrics.WEIGHTS_FILENAME, metrics.RECORD_FILENAME):
      shutil.copy(metrics.assets_dir() / name, tmp_path)
    path = tmp_path / metrics.WEIGHTS_FILENAME
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(metrics.ClassifierWeightsError, match='corrupt'):
      metrics.load_classifier(path, tmp_path / metrics.RECORD_FILENAME)

  def test_shipped_sha256_matches_record(self):
    record = metrics._read_record(  # pylint: disable=protected-access
        metrics.assets_dir() / metrics.RECORD_FILENAME)
    assert record['architecture'] == metrics.ARCHITECTURE
    assert metrics.file_sha256(
        metrics.assets_dir() / metrics.WEIGHTS_FILENAME) == (
            record['weights_sha256'])
    assert record['test_accuracy_grey'] >= 0.99

  def test_model_is_cached(self):
    assert metrics.load_classifier() is metrics.load_classifier()


@pytest.fixture(scope='module')
def mnist():
  return data.load_mnist()


@pytest.fixture(scope='module')
def test_outputs(mnist):
  """Features and probabilities of the grey-level test set (computed once)."""
  images = mnist.test_images.astype(np.float32) / 255.
  return metrics.classifier_features_and_probs(images)


class TestClassifierOnMnist:

  def test_outputs(self, mnist, test_outputs):
    features, probs = test_outputs
    assert features.shape == (10000, 128) and features.dtype == np.float64
    assert probs.shape == (10000, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1., atol=1e-5)
    # The same images as [N, 784] give the same values.
    flat = mnist.test_images[:50].reshape(50, 784).astype(np.float32) / 255.
    f2, p2 = metrics.classifier_features_and_probs(flat, batch_size=7)
    np.testing.assert_allclose(f2, features[:50], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p2, probs[:50], rtol=1e-5, atol=1e-6)

  def test_shipped_classifier_accuracy(self, mnist, test_outputs):
    _, probs = test_outputs
    accuracy = np.mean(np.argmax(probs, axis=1) == mnist.test_labels)
    assert accuracy >= 0.99

  def test_real_test_set_inception_score(self, test_outputs):
    mean, std = metrics.inception_score(test_outputs[1], num_splits=10)
    assert 9.5 < mean <= 10.
    assert 0. < std < 0.3  # Split-to-split spread of 1,000-image splits.

  def test_fid_real_vs_real_far_below_noise(self, mnist, test_outputs):
    rng = np.random.default_rng(0)
    idx = rng.choice(len(mnist.train_images), 2000, replace=False)
    train = mnist.train_images[idx].astype(np.float32) / 255.
    noise = rng.uniform(size=(2000, 28, 28)).astype(np.float32)
    test_stats = metrics.feature_statistics(test_outputs[0])
    train_feats = metrics.classifier_features_and_probs(train)[0]
    noise_feats = metrics.classifier_features_and_probs(noise)[0]
    fid_train = metrics.frechet_distance(
        *metrics.feature_statistics(train_feats), *test_stats)
    fid_noise = metrics.frechet_distance(
        *metrics.feature_statistics(noise_feats), *test_stats)
    assert fid_train < fid_noise / 10.
    # The convenience wrapper agrees with the pieces.
    np.testing.assert_allclose(
        metrics.classifier_fid(train[:300], noise[:300], batch_size=128),
        metrics.frechet_distance(
            *metrics.feature_statistics(train_feats[:300]),
            *metrics.feature_statistics(noise_feats[:300])),
        rtol=1e-6)

  def test_fid_of_a_set_with_itself_is_zero(self, mnist):
    images = mnist.test_images[:1000].astype(np.float32) / 255.
    fid = metrics.classifier_fid(images, images)
    assert 0. <= fid < 1e-6

  def test_classifier_is_wrapper(self, mnist, test_outputs):
    images = mnist.test_images[:500].astype(np.float32) / 255.
    mean, _ = metrics.classifier_is(images, num_splits=2)
    expected = metrics.inception_score(test_outputs[1][:500], 2)[0]
    assert mean == pytest.approx(expected, rel=1e-6)
    assert mean > 9.

  def test_wrappers_reject_bad_images(self, mnist):
    with pytest.raises(ValueError, match='floating point'):
      metrics.classifier_is(mnist.test_images[:20])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
      metrics.classifier_fid(mnist.test_images[:20].astype(np.float32),
                             np.zeros((20, 784), np.float32))
    with pytest.raises(ValueError, match='batch_size'):
      metrics.classifier_features_and_probs(np.zeros((2, 784), np.float32),
                                            batch_size=0)


class TestTrainClassifierScript:
  """Pieces of experiments/train_classifier.py (no training here)."""

  def test_mixed_batches_are_grey_or_binarised_and_reproducible(self, mnist):
    images = mnist.train_images[:512]
    index = np.arange(512)  # As labels: tells which image each row is.

    def batches():
      ds = train_classifier.mixed_train_dataset(images, index, 128, seed=3,
                                                binarized_fraction=0.5)
      return [(x.numpy(), y.numpy()) for x, y in ds.take(4)]

    first, again = batches(), batches()
    num_binary = 0
    for (x, y), (x2, y2) in zip(first, again):
      np.testing.assert_array_equal(x, x2)
      np.testing.assert_array_equal(y, y2)
      grey = images[y].astype(np.float32)[..., None] / 255.
      is_grey = np.all(x == grey, axis=(1, 2, 3))
      is_binary = np.all((x == 0.) | (x == 1.), axis=(1, 2, 3))
      assert np.all(is_grey | is_binary)
      # A binarised image keeps the ink where the grey level is 1 and 0.
      assert np.all(x[~is_grey][grey[~is_grey] == 0.] == 0.)
      num_binary += int(np.sum(~is_grey))
    assert 0.4 < num_binary / 512 < 0.6
    assert len(np.unique(np.concatenate([y for _, y in first]))) == 512

  def test_saved_weights_have_no_optimizer_state(self, tmp_path):
    model = metrics.build_classifier()
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss='sparse_categorical_crossentropy')
    model.train_on_batch(np.zeros((2, 28, 28, 1), np.float32),
                         np.zeros(2, np.int64))
    path = tmp_path / metrics.WEIGHTS_FILENAME
    train_classifier.save_weights_atomic(model, str(path))
    assert path.stat().st_size < 2 * 1024 * 1024
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = metrics.build_classifier()
    loaded.load_weights(str(path))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
      np.testing.assert_array_equal(a, b)


def test_train_classifier_refuses_to_overwrite_the_shipped_weights(tmp_path):
  """Pointing --output_dir at the package's assets needs --overwrite_shipped: exit 2, no write."""
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  assets = os.path.join(root, 'lvae_tf', 'assets')
  before = {n: os.path.getmtime(os.path.join(assets, n)) for n in os.listdir(assets)}
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.train_classifier', f'--output_dir={assets}',
       '--epochs=1'], cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL='3'))
  assert out.returncode == 2, out.stderr[-2000:]
  assert '--overwrite_shipped' in out.stderr
  assert {n: os.path.getmtime(os.path.join(assets, n)) for n in os.listdir(assets)} == before
