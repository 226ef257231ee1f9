r"""Trains the MNIST digit classifier behind classifier FID / IS.

The classifier (`lvae_tf.metrics.build_classifier`) is trained on the 50,000
training images, validated on the 10,000 validation images, and tested on the
10,000 test images. Generated VAE samples may be binary or grey-level Bernoulli
means, so every training batch mixes both: each image is dynamically binarised
(a fresh Bernoulli draw, `lvae_tf.data.binarize`) with probability
`--binarized_fraction`, and otherwise kept as grey levels (byte / 255).

Deterministic: `keras.utils.set_random_seed(seed)`,
`tf.config.experimental.enable_op_determinism()` and stateless data draws.

Writes (atomically: temp file + os.replace), into `--output_dir`:

* `mnist_classifier.weights.h5`: the weights (tf_keras HDF5);
* `mnist_classifier.json`: the training record (seed, epochs, accuracies on
  grey-level and binarised test images, data source, package versions,
  hardware, date, sha256 of the weights file), which `load_classifier` checks.

Refuses to write if the grey-level test accuracy is below
`--min_test_accuracy` (default 0.99).

Usage:

  python -m experiments.train_classifier --seed=0 --epochs=6
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from lvae_tf import cli  # pylint: disable=g-import-not-at-top,g-bad-import-order
from lvae_tf import errors  # pylint: disable=g-import-not-at-top
from lvae_tf import filesafety  # pylint: disable=g-import-not-at-top
from lvae_tf import data  # pylint: disable=g-import-not-at-top
from lvae_tf import metrics  # pylint: disable=g-import-not-at-top
from lvae_tf import results  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags; called only when run as a script.

  Not at import time, so that tests and other scripts can import this module
  without clashing absl flag names (e.g. `--seed` of `experiments.table1`).
  """
  flags.DEFINE_integer('seed', 0, 'Seed of weights, order, draws.')
  flags.DEFINE_integer('epochs', 6, 'Training epochs.', lower_bound=1, upper_bound=1000)
  flags.DEFINE_integer('batch_size', 128, 'Batch size.', lower_bound=1, upper_bound=50000)
  flags.DEFINE_float('learning_rate', 1e-3,
                     'Initial Adam learning rate (cosine decay to 0).')
  flags.DEFINE_float(
      'binarized_fraction', 0.5,
      'Probability that a training image is dynamically binarised.')
  flags.DEFINE_float('min_test_accuracy', 0.99,
                     'Grey-level test accuracy below which nothing is '
                     'written.')
  flags.DEFINE_string('output_dir', os.path.join('runs', 'classifier'),
                      'Directory for the weights and the JSON record.')
  flags.DEFINE_bool('overwrite_shipped', False,
                    'Allow --output_dir to be the package\'s assets directory, replacing the '
                    'classifier weights that lvae_tf ships (and every FID/IS reference value).')


# Salts for seeds derived from --seed (fold_in), so the streams are distinct.
_SALT_MIX = 3
_SALT_EVAL = 4


def mixed_train_dataset(images, labels, batch_size, seed, binarized_fraction):
  """Infinite (image, label) stream, a random part of each batch binarised.

  ```none
  grey  = labeled_dataset(images, labels, b, seed, 'none', repeat=True)[k]
  s_k   = fold_in(fold_in(seed, 3), k)
  m_i   ~ Bernoulli(binarized_fraction)        (stateless, seed s_k)
  x_i   = binarize(grey, fold_in(s_k, 1))_i  if m_i  else  grey_i
  ```

  Args:
    images: uint8 (N, 28, 28) training images.
    labels: int64 (N,) labels.
    batch_size: Batch size.
    seed: Python int seed.
    binarized_fraction: Probability that an image is binarised.

  Returns:
    A `tf.data.Dataset` of (float32 (b, 28, 28, 1), int64 (b,)).
  """
  grey = data.labeled_dataset(images, labels, batch_size, seed=seed,
                              binarization='none', repeat=True)
  mix_seed = tf.random.experimental.stateless_fold_in(
      tf.constant([seed, 0], tf.int64), _SALT_MIX)

  def mix(k, batch):
    x, y = batch
    step_seed = tf.random.experimental.stateless_fold_in(mix_seed, k)
    u = tf.random.stateless_uniform(
        tf.shape(x)[:1], seed=tf.random.experimental.stateless_fold_in(
            step_seed, 0))
    binary = data.binarize(x, tf.random.experimental.stateless_fold_in(
        step_seed, 1))
    use_binary = (u < binarized_fraction)[:, tf.newaxis, tf.newaxis,
                                          tf.newaxis]
    return tf.where(use_binary, binary, x), y

  return grey.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True).prefetch(tf.data.AUTOTUNE)


def accuracy(model, images, labels):
  """Fraction of `images` (floats in [0, 1]) classified as `labels`."""
  _, probs = metrics.classifier_features_and_probs(images, model=model)
  return float(np.mean(np.argmax(probs, axis=1) == labels))


def save_weights_atomic(model, path):
  """Saves weights as HDF5 to a temporary file, then renames it to `path`."""
  # An uncompiled copy, so that the optimizer's slots are not saved with it.
  export = metrics.build_classifier()
  export.set_weights(model.get_weights())
  # tf_keras picks the file format from the name: keep the '.weights.h5'
  # suffix (Keras v3 weights-only HDF5), which `load_weights` expects for
  # the final name too.
  with filesafety.atomic_path(path, suffix='.weights.h5') as tmp:
    export.save_weights(tmp)


def train_classifier(seed, epochs, batch_size, learning_rate,
                     binarized_fraction, min_test_accuracy, output_dir):
  """Trains, evaluates and (if accurate enough) saves the classifier.

  Returns:
    The training record (a dict), also written to `output_dir`.
  """
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  mnist = data.load_mnist()
  logging.info('MNIST: %s', mnist.source)

  steps = data.steps_per_epoch(len(mnist.train_images), batch_size)
  train = mixed_train_dataset(mnist.train_images, mnist.train_labels,
                              batch_size, seed, binarized_fraction)
  valid = data.labeled_dataset(mnist.valid_images, mnist.valid_labels, 1000)

  model = metrics.build_classifier()
  schedule = keras.optimizers.schedules.CosineDecay(
      learning_rate, decay_steps=epochs * steps)
  model.compile(optimizer=keras.optimizers.Adam(schedule),
                loss=keras.losses.SparseCategoricalCrossentropy(),
                metrics=['accuracy'])
  start = time.time()
  history = model.fit(train, epochs=epochs, steps_per_epoch=steps,
                      validation_data=valid,
                      callbacks=[keras.callbacks.TerminateOnNaN()],
                      verbose=1 if sys.stdout.isatty() else 2)
  train_seconds = time.time() - start

  eval_seed = tf.random.experimental.stateless_fold_in(
      tf.constant([seed, 0], tf.int64), _SALT_EVAL)
  grey = lambda x: x.astype(np.float32) / 255.
  binary = lambda x, i: data.binarize(
      x, tf.random.experimental.stateless_fold_in(eval_seed, i)).numpy()
  acc = {
      'test_accuracy_grey': accuracy(model, grey(mnist.test_images),
                                     mnist.test_labels),
      'test_accuracy_binarized': accuracy(model, binary(mnist.test_images, 0),
                                          mnist.test_labels),
      'valid_accuracy_grey': accuracy(model, grey(mnist.valid_images),
                                      mnist.valid_labels),
      'valid_accuracy_binarized': accuracy(
          model, binary(mnist.valid_images, 1), mnist.valid_labels),
  }
  for key, value in acc.items():
    logging.info('%s = %.4f', key, value)
    print(f'{key} = {value:.4f}')
  if acc['test_accuracy_grey'] < min_test_accuracy:
    raise RuntimeError(
        f'Grey-level test accuracy {acc["test_accuracy_grey"]:.4f} < '
        f'{min_test_accuracy}: nothing written. Train longer or change the '
        'architecture.')

  weights_path = os.path.join(output_dir, metrics.WEIGHTS_FILENAME)
  save_weights_atomic(model, weights_path)
  record = {
      'architecture': metrics.ARCHITECTURE,
      'feature_layer': metrics.FEATURE_LAYER,
      'num_parameters': int(model.count_params()),
      'weights_file': metrics.WEIGHTS_FILENAME,
      'weights_sha256': metrics.file_sha256(weights_path),
      'weights_bytes': os.path.getsize(weights_path),
      'seed': seed,
      'epochs': epochs,
      'batch_size': batch_size,
      'steps_per_epoch': steps,
      'optimizer': f'Adam, lr {learning_rate} with cosine decay to 0',
      'binarized_fraction': binarized_fraction,
      'deterministic': ('keras.utils.set_random_seed + '
                        'tf.config.experimental.enable_op_determinism'),
      **acc,
      'eval_binarization': ('binarize(images, fold_in((seed, 0), 4) folded '
                            'with 0 for test, 1 for valid)'),
      'history': {k: [float(v) for v in vs]
                  for k, vs in history.history.items()},
      'train_seconds': round(train_seconds, 1),
      'data_source': mnist.source,
      'data_split': ('train: first 50,000 canonical training images; '
                     'validation: last 10,000; test: canonical t10k. Grey '
                     'level = byte / 255.'),
      'command': ' '.join(['python -m experiments.train_classifier'] +
                          sys.argv[1:]),
      'environment': results.environment(),
  }
  filesafety.write_json_atomic(os.path.join(output_dir, metrics.RECORD_FILENAME),
                               record)
  return record


def _is_shipped_assets(directory):
  shipped = os.path.dirname(metrics.__file__)
  return os.path.realpath(directory) == os.path.realpath(os.path.join(shipped, 'assets'))


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  if _is_shipped_assets(FLAGS.output_dir) and not FLAGS.overwrite_shipped:
    sys.stderr.write(
        f'error: --output_dir={FLAGS.output_dir} holds the classifier weights lvae_tf ships; '
        'replacing them changes every classifier FID/IS. Pass --overwrite_shipped to do it '
        'on purpose, or choose another --output_dir.\n')
    sys.exit(2)
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config_lib.check_writable(FLAGS.output_dir, keep=False)  # before minutes of training
  record = train_classifier(
      seed=FLAGS.seed, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate,
      binarized_fraction=FLAGS.binarized_fraction,
      min_test_accuracy=FLAGS.min_test_accuracy,
      output_dir=FLAGS.output_dir)
  print(f'Wrote {record["weights_file"]} (sha256 {record["weights_sha256"]}, '
        f'{record["weights_bytes"]:,} bytes) to {FLAGS.output_dir}; '
        f'train time {record["train_seconds"]} s.')


def run():
  """Entry point of `lvae-train-classifier` (same as `python -m experiments.train_classifier`)."""
  cli.use_module_doc(__doc__)
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
