"""Classifier-based sample-quality metrics for MNIST: classifier FID and IS.

The Frechet Inception Distance (FID) [1] and the Inception Score (IS) [2] are
defined with an ImageNet Inception-v3 network. No Inception weights can be
obtained offline here, and Inception is a poor judge of 28x28 digits anyway, so
this module computes the same two formulas with a small MNIST digit classifier
trained by this project (`experiments/train_classifier.py`, weights shipped in
`lvae_tf/assets/`):

* **classifier IS**: `exp(E_x KL(p(y|x) || p(y)))` with `p(y|x)` the
  classifier's softmax over the 10 digit classes. It lies in `[1, 10]`.
* **classifier FID**: the Frechet distance between Gaussians fitted to the
  classifier's penultimate-layer features (128-d, layer `'features'`) of two
  image sets.

These numbers are NOT comparable with Inception-based FID/IS values reported in
papers (including Table 1 of the Quasi-symplectic Langevin VAE paper): the
feature extractor, its dimension and the class set differ. Place them against
the real-data reference values in `results/metric_reference.md` (IS of the real
test set, FID of train vs test digits, FID of noise).

This module knows images, not models or data sets: inputs are float arrays in
`[0, 1]` of shape `[N, 28, 28, 1]`, `[N, 28, 28]` or `[N, 784]` (grey levels or
binary samples; the classifier was trained on both).

#### Examples

```python
from lvae_tf import metrics

is_mean, is_std = metrics.classifier_is(samples)          # samples in [0, 1]
fid = metrics.classifier_fid(samples, real_test_images)
```

#### References

[1]: Martin Heusel, Hubert Ramsauer, Thomas Unterthiner, Bernhard Nessler,
     Sepp Hochreiter. GANs Trained by a Two Time-Scale Update Rule Converge to
     a Local Nash Equilibrium. In _NeurIPS_, 2017.
     https://arxiv.org/abs/1706.08500
[2]: Tim Salimans, Ian Goodfellow, Wojciech Zaremba, Vicki Cheung, Alec
     Radford, Xi Chen. Improved Techniques for Training GANs. In _NeurIPS_,
     2016. https://arxiv.org/abs/1606.03498
"""

import functools
import hashlib
import json
import pathlib

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import data

__all__ = [
    'ARCHITECTURE',
    'FEATURE_LAYER',
    'NUM_CLASSES',
    'WEIGHTS_FILENAME',
    'RECORD_FILENAME',
    'ClassifierWeightsError',
    'assets_dir',
    'build_classifier',
    'classifier_features_and_probs',
    'classifier_fid',
    'classifier_is',
    'feature_statistics',
    'file_sha256',
    'frechet_distance',
    'inception_score',
    'load_classifier',
    'validate_images',
]

# Name of the network built by `build_classifier`; stored in the training
# record so that weights trained for another architecture are refused.
ARCHITECTURE = 'mnist_cnn_v1'
FEATURE_LAYER = 'features'
NUM_CLASSES = 10
WEIGHTS_FILENAME = 'mnist_classifier.weights.h5'
RECORD_FILENAME = 'mnist_classifier.json'

# Pixel values may exceed [0, 1] by this much (rounding) before we complain.
_RANGE_TOL = 1e-6


class ClassifierWeightsError(RuntimeError):
  """The shipped classifier weights are missing, corrupt or mismatched."""


def assets_dir():
  """Returns the directory holding the shipped classifier weights and record."""
  return pathlib.Path(__file__).resolve().parent / 'assets'


def file_sha256(path):
  """Returns the hex sha256 digest of the file at `path`."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def build_classifier(dropout_rate=0.3):
  """Builds the (untrained) MNIST digit classifier used by the metrics.

  ```none
  x [28, 28, 1] in [0, 1]
  -> Conv 3x3x32 + ReLU -> MaxPool 2  -> [14, 14, 32]
  -> Conv 3x3x64 + ReLU -> MaxPool 2  -> [7, 7, 64]
  -> Conv 3x3x64 (valid) + ReLU       -> [5, 5, 64]
  -> Flatten -> Dense 128 + ReLU      (layer 'features': FID features)
  -> Dropout -> Dense 10 + softmax    (layer 'probs': IS class probabilities)
  ```

  Args:
    dropout_rate: Dropout rate before the output layer (active in training
      only).

  Returns:
    An uncompiled `tf_keras.Model` mapping `[N, 28, 28, 1]` float images to
    `[N, 10]` class probabilities.
  """
  inputs = keras.Input(shape=(28, 28, 1), name='images')
  h = keras.layers.Conv2D(32, 3, padding='same', activation='relu',
                          name='conv1')(inputs)
  h = keras.layers.MaxPooling2D(2, name='pool1')(h)
  h = keras.layers.Conv2D(64, 3, padding='same', activation='relu',
                          name='conv2')(h)
  h = keras.layers.MaxPooling2D(2, name='pool2')(h)
  h = keras.layers.Conv2D(64, 3, padding='valid', activation='relu',
                          name='conv3')(h)
  h = keras.layers.Flatten(name='flatten')(h)
  features = keras.layers.Dense(128, activation='relu', name=FEATURE_LAYER)(h)
  h = keras.layers.Dropout(dropout_rate, name='dropout')(features)
  probs = keras.layers.Dense(NUM_CLASSES, activation='softmax',
                             name='probs')(h)
  return keras.Model(inputs, probs, name=ARCHITECTURE)


def _read_record(record_path):
  try:
    with open(record_path, 'r', encoding='utf-8') as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise ClassifierWeightsError(
        f'Classifier training record not found: {record_path}. Run '
        '`python -m experiments.train_classifier` to create it.') from e
  except json.JSONDecodeError as e:
    raise ClassifierWeightsError(
        f'Classifier training record {record_path} is not valid JSON: '
        f'{e}') from e


def _load_classifier_uncached(weights_path, record_path):
  """Builds the classifier and loads verified weights into it."""
  weights_path = pathlib.Path(weights_path)
  record = _read_record(record_path)
  expected = record.get('weights_sha256')
  if not expected:
    raise ClassifierWeightsError(
        f'Classifier record {record_path} has no "weights_sha256" entry.')
  if record.get('architecture', ARCHITECTURE) != ARCHITECTURE:
    raise ClassifierWeightsError(
        f'Classifier record {record_path} is for architecture '
        f'{record.get("architecture")!r}, but build_classifier() builds '
        f'{ARCHITECTURE!r}. Retrain with experiments/train_classifier.py.')
  if not weights_path.is_file():
    raise ClassifierWeightsError(
        f'Classifier weights not found: {weights_path}. They ship with the '
        'package (lvae_tf/assets); reinstall it, or recreate them with '
        '`python -m experiments.train_classifier`.')
  actual = file_sha256(weights_path)
  if actual != expected:
    raise ClassifierWeightsError(
        f'Classifier weights {weights_path} are corrupt or do not match '
        f'their record {record_path}: sha256 {actual}, expected {expected}.')
  model = build_classifier()
  model.load_weights(str(weights_path))
  model.trainable = False
  return model


@functools.lru_cache(maxsize=None)
def _load_classifier_cached(weights_path, record_path):
  return _load_classifier_uncached(weights_path, record_path)


def load_classifier(weights_path=None, record_path=None):
  """Returns the MNIST classifier with the shipped, checksum-verified weights.

  The weights file's sha256 is checked against the training record
  (`mnist_classifier.json`) before loading. Loaded models are cached per
  (weights, record) path pair, so repeated calls are cheap.

  Args:
    weights_path: Path of the weights file. Default:
      `lvae_tf/assets/mnist_classifier.weights.h5`.
    record_path: Path of the JSON training record holding `weights_sha256`.
      Default: `lvae_tf/assets/mnist_classifier.json`.

  Returns:
    A `tf_keras.Model` (not trainable) mapping images `[N, 28, 28, 1]` in
    `[0, 1]` to class probabilities `[N, 10]`.

  Raises:
    ClassifierWeightsError: If the weights or the record are missing, the
      record is unreadable, or the weights' sha256 does not match it.
  """
  weights_path = pathlib.Path(
      weights_path or assets_dir() / WEIGHTS_FILENAME).resolve()
  record_path = pathlib.Path(
      record_path or assets_dir() / RECORD_FILENAME).resolve()
  return _load_classifier_cached(str(weights_path), str(record_path))


def validate_images(images, name='images'):
  """Checks and reshapes images to a float32 `[N, 28, 28, 1]` numpy array.

  Args:
    images: Array-like of floats in `[0, 1]`, shape `[N, 28, 28, 1]`,
      `[N, 28, 28]` or `[N, 784]`, with `N >= 1`.
    name: Name used in error messages.

  Returns:
    A float32 numpy array of shape `[N, 28, 28, 1]`.

  Raises:
    ValueError: If the dtype is not floating point, the shape is not one of
      the above, the set is empty, or a value is non-finite or outside
      `[0, 1]`.
  """
  x = np.asarray(images)
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(
        f'{name} must be floating point in [0, 1], got dtype {x.dtype}. '
        'Convert bytes first (for example `images / 255.`).')
  if x.ndim == 2 and x.shape[1] == 784:
    x = x.reshape(-1, 28, 28, 1)
  elif x.ndim == 3 and x.shape[1:] == (28, 28):
    x = x[..., np.newaxis]
  elif not (x.ndim == 4 and x.shape[1:] == (28, 28, 1)):
    raise ValueError(
        f'{name} must have shape [N, 28, 28, 1], [N, 28, 28] or [N, 784], '
        f'got {x.shape}.')
  if x.shape[0] == 0:
    raise ValueError(f'{name} is empty.')
  data.check_images(x, name=name, tolerance=_RANGE_TOL)
  return np.clip(x, 0., 1.).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _features_and_probs_fn(model):
  """A traced function returning (features, probs) of `model`, cached."""
  extractor = keras.Model(
      model.inputs,
      [model.get_layer(FEATURE_LAYER).output, model.output])

  @tf.function(input_signature=[
      tf.TensorSpec([None, 28, 28, 1], tf.float32)])
  def fn(x):
    return extractor(x, training=False)

  return fn


def classifier_features_and_probs(images, batch_size=500, model=None):
  """Runs the MNIST classifier: penultimate features and class probabilities.

  Args:
    images: Floats in `[0, 1]`, shape `[N, 28, 28, 1]`, `[N, 28, 28]` or
      `[N, 784]`.
    batch_size: Number of images per forward pass.
    model: Classifier to use. Default: `load_classifier()`.

  Returns:
    features: float64 numpy array `[N, 128]` (layer `'features'`).
    probs: float64 numpy array `[N, 10]`, rows summing to 1.

  Raises:
    ValueError: If `images` is malformed (see `validate_images`) or
      `batch_size < 1`.
  """
  if int(batch_size) < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
  x = validate_images(images)
  fn = _features_and_probs_fn(model or load_classifier())
  features, probs = [], []
  for start in range(0, x.shape[0], int(batch_size)):
    f, p = fn(tf.constant(x[start:start + int(batch_size)]))
    features.append(f.numpy())
    probs.append(p.numpy())
  return (np.concatenate(features).astype(np.float64),
          np.concatenate(probs).astype(np.float64))


def inception_score(probs, num_splits=10):
  """Inception Score formula applied to given class probabilities.

  ```none
  IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)
  ```

  computed separately on `num_splits` near-equal consecutive splits of the
  rows (as in [2]); `p(y)` is the marginal of each split. `IS` lies in
  `[1, num_classes]`: 1 when every prediction is the same, `num_classes` when
  predictions are confident (one-hot) and the classes are balanced.

  Args:
    probs: Array `[N, C]` of class probabilities (rows are renormalised in
      float64; they must be non-negative and sum to 1 within 1e-3).
    num_splits: Number of splits, `1 <= num_splits <= N`.

  Returns:
    (mean, std) of the per-split scores, Python floats.

  Raises:
    ValueError: If `probs` is not a 2-D array of probabilities or
      `num_splits` is out of range.
  """
  p = np.asarray(probs, dtype=np.float64)
  if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
    raise ValueError(f'probs must have shape [N, C] with N, C >= 1, got '
                     f'{p.shape}.')
  if not np.all(np.isfinite(p)) or np.any(p < 0.):
    raise ValueError('probs must be finite and non-negative.')
  row_sums = p.sum(axis=1)
  if np.any(np.abs(row_sums - 1.) > 1e-3):
    raise ValueError('Each row of probs must sum to 1 (got sums in '
                     f'[{row_sums.min()}, {row_sums.max()}]); pass '
                     'probabilities, not logits.')
  num_splits = int(num_splits)
  if not 1 <= num_splits <= p.shape[0]:
    raise ValueError(f'num_splits must be in [1, N={p.shape[0]}], got '
                     f'{num_splits}.')
  p = p / row_sums[:, np.newaxis]
  scores = []
  for part in np.array_split(p, num_splits):
    marginal = part.mean(axis=0, keepdims=True)
    # 0 log 0 = 0; part > 0 implies marginal > 0.
    with np.errstate(divide='ignore', invalid='ignore'):
      terms = np.where(part > 0., part * (np.log(part) - np.log(marginal)),
                       0.)
    kl = terms.sum(axis=1)
    scores.append(np.exp(np.mean(kl)))
  return float(np.mean(scores)), float(np.std(scores))


def feature_statistics(features):
  """Mean and (unbiased) covariance of features, in float64.

  Args:
    features: Array `[N, F]` with `N >= 2`.

  Returns:
    mu: float64 `[F]`.
    sigma: float64 `[F, F]` (denominator `N - 1`).

  Raises:
    ValueError: If `features` is not 2-D with at least two finite rows.
  """
  f = np.asarray(features, dtype=np.float64)
  if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 1:
    raise ValueError(f'features must have shape [N, F] with N >= 2, got '
                     f'{f.shape}.')
  if not np.all(np.isfinite(f)):
    raise ValueError('features contain NaN or infinite values.')
  mu = f.mean(axis=0)
  centred = f - mu
  sigma = centred.T @ centred / (f.shape[0] - 1)
  return mu, sigma


def _psd_sqrt(sigma):
  """Symmetric PSD square root `V diag(sqrt(l)) V^T` of a covariance (eigh).

  A symmetric `[F, F]` matrix computed in float64 carries absolute errors of
  about `F * eps * l_max`, and so do its `eigh` eigenvalues: the zero
  eigenvalues of a singular covariance come out as +-that noise, and their
  square roots (~ sqrt(F * eps * l_max) each) would add up. Eigenvalues below
  `F * eps * l_max`, which cannot be told from 0, and negative ones are set
  to 0.
  """
  eigvals, eigvecs = np.linalg.eigh(sigma)
  tol = sigma.shape[0] * np.finfo(np.float64).eps * max(eigvals.max(), 0.)
  eigvals = np.where(eigvals > tol, eigvals, 0.)
  return (eigvecs * np.sqrt(eigvals)) @ eigvecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
  """Frechet (2-Wasserstein squared) distance between two Gaussians.

  ```none
  FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^{1/2} S2 S1^{1/2})^{1/2} )
  ```

  The cross term is computed in float64 through PSD square roots taken by
  `eigh`, in the symmetric form

  ```none
  tr (S1^{1/2} S2 S1^{1/2})^{1/2} = sum_i sigma_i(S1^{1/2} S2^{1/2})
  ```

  (the nuclear norm, singular values by SVD), which needs neither the complex
  parts nor the diagonal offsets of a general `sqrtm(S1 S2)`, and does not
  amplify round-off by square roots of tiny eigenvalues. Eigenvalues of `S1`,
  `S2` below `F * eps * l_max` (round-off level) or negative are set to 0, so
  singular (rank-deficient) covariances give accurate values. The result is
  clipped at 0 (it is >= 0 mathematically; only round-off can make it
  slightly negative).

  Args:
    mu1: Mean `[F]` of the first Gaussian.
    sigma1: Covariance `[F, F]` of the first Gaussian (symmetric PSD).
    mu2: Mean `[F]` of the second Gaussian.
    sigma2: Covariance `[F, F]` of the second Gaussian (symmetric PSD).

  Returns:
    The distance, a Python float >= 0.

  Raises:
    ValueError: On shape mismatches, non-finite values or non-symmetric
      covariances.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  if mu1.ndim != 1 or mu1.shape != mu2.shape:
    raise ValueError(f'mu1 and mu2 must be vectors of one shape, got '
                     f'{mu1.shape} and {mu2.shape}.')
  dim = mu1.shape[0]
  for name, s in (('sigma1', sigma1), ('sigma2', sigma2)):
    if s.shape != (dim, dim):
      raise ValueError(f'{name} must have shape {(dim, dim)}, got {s.shape}.')
  for name, a in (('mu1', mu1), ('mu2', mu2), ('sigma1', sigma1),
                  ('sigma2', sigma2)):
    if not np.all(np.isfinite(a)):
      raise ValueError(f'{name} contains NaN or infinite values.')
  for name, s in (('sigma1', sigma1), ('sigma2', sigma2)):
    scale = max(np.max(np.abs(s)), np.finfo(np.float64).tiny)
    if np.max(np.abs(s - s.T)) > 1e-8 * scale:
      raise ValueError(f'{name} must be symmetric.')
  sigma1 = 0.5 * (sigma1 + sigma1.T)
  sigma2 = 0.5 * (sigma2 + sigma2.T)

  # tr sqrt(S1^{1/2} S2 S1^{1/2}) = sum of singular values of S1^{1/2} S2^{1/2}
  # (S1^{1/2} S2 S1^{1/2} = A A^T with A = S1^{1/2} S2^{1/2}); the SVD gives
  # them with absolute error ~ eps |A|, whereas square roots of eigenvalues
  # of S1^{1/2} S2 S1^{1/2} would amplify its round-off to ~ sqrt(eps |A|^2).
  cross = np.sum(np.linalg.svd(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2),
                               compute_uv=False))
  diff = mu1 - mu2
  fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2. * cross
  return float(max(fd, 0.))


def classifier_fid(images_a, images_b, batch_size=500, model=None):
  """Classifier FID: Frechet distance of MNIST-classifier features.

  This is the FID formula [1] with the penultimate (128-d) features of the
  project's MNIST classifier instead of Inception-v3 pool features: a
  "classifier FID". It is NOT comparable with Inception-based FID values in
  papers (including the paper's Table 1); compare it with the real-data
  references in `results/metric_reference.md` (e.g. train vs test digits).
  Like FID it is biased upwards for small sets: compare values computed with
  the same numbers of images.

  Args:
    images_a: First image set, floats in `[0, 1]`, shape `[N, 28, 28, 1]`,
      `[N, 28, 28]` or `[N, 784]`, `N >= 2`.
    images_b: Second image set, same conventions.
    batch_size: Images per classifier forward pass.
    model: Classifier to use. Default: `load_classifier()`.

  Returns:
    The classifier FID, a Python float >= 0.
  """
  feats_a, _ = classifier_features_and_probs(images_a, batch_size, model)
  feats_b, _ = classifier_features_and_probs(images_b, batch_size, model)
  return frechet_distance(*feature_statistics(feats_a),
                          *feature_statistics(feats_b))


def classifier_is(images, num_splits=10, batch_size=500, model=None):
  """Classifier IS: the Inception Score formula with our MNIST classifier.

  This is the Inception Score formula [2] with the class probabilities of the
  project's 10-class MNIST classifier instead of the 1000-class Inception-v3:
  a "classifier IS" in `[1, 10]`. It is NOT comparable with Inception-based IS
  values in papers (including the paper's Table 1); compare it with the real
  test set's classifier IS in `results/metric_reference.md`.

  Args:
    images: Floats in `[0, 1]`, shape `[N, 28, 28, 1]`, `[N, 28, 28]` or
      `[N, 784]`, `N >= num_splits`.
    num_splits: Number of splits for the mean/std (see `inception_score`).
    batch_size: Images per classifier forward pass.
    model: Classifier to use. Default: `load_classifier()`.

  Returns:
    (mean, std) of the classifier IS over the splits.
  """
  _, probs = classifier_features_and_probs(images, batch_size, model)
  return inception_score(probs, num_splits)
