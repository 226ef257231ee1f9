r"""Reference values of classifier FID / IS, to place model numbers against.

Computes, with the shipped MNIST classifier (`lvae_tf.metrics`):

* classifier IS of real digits (test set grey level and binarised, a train
  subset), of Gaussian-blurred test digits and of uniform noise;
* classifier FID against the grey-level test set of: training subsets of
  several sizes (the sampling floor and its small-sample bias), binarised
  images, blurred test digits, uniform noise, and the test set itself (~0);
* FID of two random disjoint halves of the test set, and of its first vs
  last 5000 digits (different writer populations).

Writes `results/metric_reference.json` and `results/metric_reference.md`
(atomically), with the hardware and package versions.

These are classifier FID / IS values: NOT comparable with Inception-based
FID / IS in papers (including Table 1 of the Langevin VAE paper).

Usage:

  python -m experiments.metric_reference
"""

import json
import os
import platform
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top

from lvae_tf import cli  # pylint: disable=g-import-not-at-top,g-bad-import-order
from lvae_tf import data  # pylint: disable=g-import-not-at-top
from lvae_tf import errors  # pylint: disable=g-import-not-at-top
from lvae_tf import filesafety  # pylint: disable=g-import-not-at-top
from lvae_tf import metrics  # pylint: disable=g-import-not-at-top
from lvae_tf import results  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags; called only when run as a script (not on import)."""
  flags.DEFINE_integer('seed', 0, 'Seed of subsets, noise, draws.')
  flags.DEFINE_string('output_dir', 'results',
                      'Directory for the JSON and markdown.')
  flags.DEFINE_integer('num_splits', 10, 'Splits of the IS.')


def gaussian_blur(images, sigma):
  """Blurs [N, 28, 28] images with a Gaussian of std `sigma` pixels.

  Separable convolution with zero padding (the MNIST background is 0),
  written as `K x K^T` with the 28 x 28 convolution matrix `K`.

  Args:
    images: float [N, 28, 28] in [0, 1].
    sigma: Standard deviation in pixels (> 0).

  Returns:
    float32 [N, 28, 28] in [0, 1].
  """
  idx = np.arange(28)
  kernel = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
  radius = int(np.ceil(3 * sigma))
  kernel[np.abs(idx[:, None] - idx[None, :]) > radius] = 0.
  # Normalise by the full (untruncated-by-border) kernel mass, so that the
  # border behaves as zero padding.
  offsets = np.arange(-radius, radius + 1)
  kernel /= np.exp(-0.5 * (offsets / sigma) ** 2).sum()
  out = np.einsum('ij,njk,lk->nil', kernel, images.astype(np.float64), kernel)
  return np.clip(out, 0., 1.).astype(np.float32)


def compute_references(mnist, seed, num_splits):
  """Returns a list of reference rows (dicts) and the elapsed seconds."""
  start = time.time()
  rng = np.random.default_rng(seed)
  grey = lambda x: x.astype(np.float32) / 255.
  binary = lambda x, salt: data.binarize(x, (seed, salt)).numpy()

  test = grey(mnist.test_images)
  train_idx = rng.permutation(len(mnist.train_images))[:10000]
  train10k = grey(mnist.train_images[train_idx])
  images = {
      'test (grey)': test,
      'test (binarised)': binary(mnist.test_images, 1),
      'train 10k (grey)': train10k,
      'train 10k (binarised)': binary(mnist.train_images[train_idx], 2),
      'test blurred sigma=1 px': gaussian_blur(test, 1.),
      'test blurred sigma=2 px': gaussian_blur(test, 2.),
      'uniform noise U[0,1]': rng.uniform(
          size=test.shape).astype(np.float32),
  }
  feats, probs = {}, {}
  for name, x in images.items():
    feats[name], probs[name] = metrics.classifier_features_and_probs(x)
  stats = {name: metrics.feature_statistics(f) for name, f in feats.items()}

  def fid(a, b):
    return metrics.frechet_distance(*stats[a], *stats[b])

  def fid_features(fa, fb):  # Features of subsets.
    return metrics.frechet_distance(*metrics.feature_statistics(fa),
                                    *metrics.feature_statistics(fb))

  rows = []

  def add(name, n, fid_value, is_name=None, note='',
          reference='test (grey), n=10000'):
    row = {'images': name, 'n': n, 'reference': reference,
           'classifier_fid': fid_value, 'classifier_is_mean': None,
           'classifier_is_std': None, 'note': note}
    if is_name is not None:
      row['classifier_is_mean'], row['classifier_is_std'] = (
          metrics.inception_score(probs[is_name], num_splits))
    rows.append(row)

  add('test (grey)', 10000, fid('test (grey)', 'test (grey)'), 'test (grey)',
      'same set: FID is 0 up to round-off')
  add('test (binarised)', 10000, fid('test (binarised)', 'test (grey)'),
      'test (binarised)', 'one fixed Bernoulli draw of the test set')
  half = len(test) // 2
  test_feats = feats['test (grey)']
  perm = rng.permutation(len(test))
  add('test random half A (grey)', half,
      fid_features(test_feats[perm[:half]], test_feats[perm[half:]]),
      note='random disjoint halves of the test set',
      reference='test random half B (grey), n=5000')
  add('test first 5000 (grey)', half,
      fid_features(test_feats[:half], test_feats[half:]),
      note=('not one distribution: MNIST documents the first 5000 test '
            'digits (NIST training writers) as cleaner and easier than the '
            'last 5000 (NIST test writers)'),
      reference='test last 5000 (grey), n=5000')
  for n in (1000, 2000, 5000):
    add(f'train {n} (grey)', n,
        fid_features(feats['train 10k (grey)'][:n], feats['test (grey)']),
        note='random train subset; FID is biased upwards for small n')
  add('train 10k (grey)', 10000, fid('train 10k (grey)', 'test (grey)'),
      'train 10k (grey)', 'random train subset: the real-data floor')
  add('train 10k (binarised)', 10000,
      fid('train 10k (binarised)', 'test (grey)'), 'train 10k (binarised)',
      'binary real digits against grey real digits')
  add('train 10k (binarised)', 10000,
      fid('train 10k (binarised)', 'test (binarised)'),
      note='binary against binary', reference='test (binarised), n=10000')
  for name in ('test blurred sigma=1 px', 'test blurred sigma=2 px',
               'uniform noise U[0,1]'):
    add(name, 10000, fid(name, 'test (grey)'), name)
  accuracy = {
      name: float(np.mean(np.argmax(probs[name], axis=1) ==
                          mnist.test_labels))
      for name in ('test (grey)', 'test (binarised)',
                   'test blurred sigma=1 px', 'test blurred sigma=2 px')}
  return rows, accuracy, time.time() - start


def _fmt(value, digits):
  return '' if value is None else f'{value:.{digits}f}'


def to_markdown(record):
  """Renders the reference record as a markdown page."""
  env = record['environment']
  clf = record['classifier']
  lines = [
      '# Classifier FID / IS: reference values on real MNIST',
      '',
      'Computed by `python -m experiments.metric_reference` with '
      '`lvae_tf.metrics` and the shipped MNIST classifier '
      f'(`{clf["weights_file"]}`, sha256 `{clf["weights_sha256"][:16]}...`, '
      f'test accuracy {100 * clf["test_accuracy_grey"]:.2f}% grey level, '
      f'{100 * clf["test_accuracy_binarized"]:.2f}% binarised).',
      '',
      '**These are classifier FID / IS values** (features and probabilities '
      'of our 10-class MNIST CNN, not of Inception-v3): they are NOT '
      'comparable with Inception-based FID / IS in papers, including Table 1 '
      'of the Quasi-symplectic Langevin VAE paper. Binarisation is a dynamic '
      '(seeded) Bernoulli draw of the grey levels, not the fixed binarisation '
      'of Larochelle & Murray. FID is biased upwards for small sets: compare '
      'values computed with the same number of images.',
      '',
      f'IS: mean +- std over {record["num_splits"]} consecutive splits. The '
      'test set is in its canonical order, whose two halves differ (row '
      '"test first 5000"), which widens its IS spread compared with the '
      'shuffled train subset. FID reference set: as in the column.',
      '',
      '| images | n | FID reference | classifier FID | classifier IS | note |',
      '| --- | ---: | --- | ---: | ---: | --- |',
  ]
  for row in record['rows']:
    is_text = ''
    if row['classifier_is_mean'] is not None:
      is_text = (f'{row["classifier_is_mean"]:.3f} +- '
                 f'{row["classifier_is_std"]:.3f}')
    lines.append(
        f'| {row["images"]} | {row["n"]} | {row["reference"] or ""} | '
        f'{_fmt(row["classifier_fid"], 3)} | {is_text} | {row["note"]} |')
  lines += [
      '',
      'Classifier accuracy on test-set variants: ' + ', '.join(
          f'{name} {100 * acc:.2f}%'
          for name, acc in record['test_accuracy'].items()) + '.',
      '',
      f'Data: {record["data_source"]}.',
      '',
      f'Hardware: {env["device"]}; platform {record["platform"]}. '
      f'Run time {record["seconds"]:.0f} s. Date {env["date"]}.',
      '',
      f'Packages: Python {env["python"]}, TensorFlow {env["tensorflow"]}, '
      f'tf_keras {env["tf_keras"]}, TFP {env["tensorflow_probability"]}, '
      f'NumPy {env["numpy"]}.',
      '',
  ]
  return '\n'.join(lines)


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  mnist = data.load_mnist()
  rows, accuracy, seconds = compute_references(mnist, FLAGS.seed,
                                               FLAGS.num_splits)
  with open(metrics.assets_dir() / metrics.RECORD_FILENAME,
            encoding='utf-8') as f:
    clf = json.load(f)
  record = {
      'metric': 'classifier FID / classifier IS (lvae_tf.metrics); not '
                'Inception-based',
      'seed': FLAGS.seed,
      'num_splits': FLAGS.num_splits,
      'rows': rows,
      'test_accuracy': accuracy,
      'classifier': {k: clf[k] for k in (
          'architecture', 'weights_file', 'weights_sha256', 'seed', 'epochs',
          'test_accuracy_grey', 'test_accuracy_binarized')},
      'data_source': mnist.source,
      'seconds': round(seconds, 1),
      'platform': f'{platform.platform()}, processor '
                  f'{platform.processor() or platform.machine()}',
      'environment': results.environment(),
  }
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  filesafety.write_json_atomic(
      os.path.join(FLAGS.output_dir, 'metric_reference.json'), record)
  markdown = to_markdown(record)
  filesafety.write_text_atomic(
      os.path.join(FLAGS.output_dir, 'metric_reference.md'), markdown)
  print(markdown)


def run():
  """Entry point of `lvae-metric-reference` (same as `python -m experiments.metric_reference`)."""
  cli.use_module_doc(__doc__)
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
