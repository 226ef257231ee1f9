"""Configs, `train_and_evaluate(config, workdir)`, resumable training and evaluation.

One run = one config (a dataclass, written next to the results) -> one work directory holding
`config.json`, checkpoints (latest and best), TensorBoard logs and `record.json`.

Training uses Keras `fit` (progress bar, History, TensorBoard, `tf.distribute`). Early stopping
and checkpointing live in one callback, `ResumableTraining`, because Keras' own EarlyStopping
keeps its state (best value, patience counter, best weights) in memory only: a killed run would
restart its patience from scratch. Here that state is a `tf.train.Checkpoint` next to the
model and optimizer, so a run killed at any moment and started again with the same command
continues from its last completed epoch and ends with the same weights as an uninterrupted run
(the data stream and the flow noise are stateless functions of the global step, see
`lvae_tf.data.train_dataset` and `FlowVAE.train_step`).
"""

import dataclasses
import json
import math
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import data as data_lib
from lvae_tf import models
from lvae_tf import results
from lvae_tf.config import Config
from lvae_tf.config import ConfigError
from lvae_tf.config import FLOWS  # pylint: disable=unused-import
from lvae_tf.config import PRESETS
from lvae_tf.config import check_writable
from lvae_tf.models import build_model

__all__ = [
    'Config',
    'ConfigError',
    'PRESETS',
    'ResumableTraining',
    'build_model',
    'load_trained_model',
    'evaluate_nll',
    'make_strategy',
    'train_and_evaluate',
]

def make_strategy(name):
  """`tf.distribute` strategy by name; 'multiworker' reads the cluster from `TF_CONFIG`."""
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multiworker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ConfigError(f'unknown strategy {name!r}.')


def _cluster(strategy):
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return None
  return resolver


def _is_chief(strategy):
  """True unless this process is a non-chief worker of a multi-worker cluster."""
  resolver = _cluster(strategy)
  if resolver is None:
    return True
  if resolver.task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return resolver.task_type == 'worker' and resolver.task_id == 0 and not has_chief


def _task_name(strategy):
  resolver = _cluster(strategy)
  return f'{resolver.task_type}-{resolver.task_id}'


class ResumableTraining(keras.callbacks.Callback):
  """Checkpoint every epoch, keep the best weights, stop early; all of it resumable.

  State (`epoch`, `best`, `wait`, `stopped`) is a set of variables saved with the model and
  optimizer in the latest checkpoint; the best weights go to a second checkpoint whenever the
  monitored validation value improves. A non-finite training loss stops the run with
  `NonFiniteLossError` naming the step, and leaves the last good checkpoint untouched.
  """

  def __init__(self, workdir, model, patience, monitor='val_elbo'):
    super().__init__()
    self.monitor = monitor
    self.patience = patience
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
    self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
    self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.stopped = tf.Variable(False, trainable=False)
    state = tf.train.Checkpoint(epoch=self.epoch, best=self.best,
                                best_epoch=self.best_epoch, wait=self.wait,
                                stopped=self.stopped)
    self.latest = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                            state=state),
        os.path.join(workdir, 'checkpoints', 'latest'), max_to_keep=2)
    self.best_weights = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        os.path.join(workdir, 'checkpoints', 'best'), max_to_keep=1)

  def restore(self):
    """Restores the latest checkpoint if there is one; returns the epoch to start from."""
    if self.latest.latest_checkpoint:
      self.latest.checkpoint.restore(
          self.latest.latest_checkpoint).assert_existing_objects_matched()
    return int(self.epoch.numpy())

  @property
  def done(self):
    return bool(self.stopped.numpy())

  def restore_best(self):
    if self.best_weights.latest_checkpoint:
      self.best_weights.checkpoint.restore(
          self.best_weights.latest_checkpoint).assert_existing_objects_matched()

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get('loss')
    if loss is not None and not math.isfinite(float(loss)):
      step = int(self.model.optimizer.iterations.numpy())
      raise models.NonFiniteLossError(
          f'Training loss became {loss} at step {step} (epoch '
          f'{int(self.epoch.numpy()) + 1}, batch {batch + 1}). Likely cause: a '
          f'flow step size or learning rate too large for this model (the '
          f'dynamics diverged). The last good checkpoint (end of epoch '
          f'{int(self.epoch.numpy())}) is kept; no result record was written.')

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      raise KeyError(f'{self.monitor!r} missing from the epoch logs; pass '
                     'validation_data to fit.')
    if not math.isfinite(value):
      raise models.NonFiniteLossError(
          f'Validation {self.monitor} is {value} after epoch {epoch + 1}. '
          'Likely cause: step size too large. The last good checkpoint is kept.')
    if value > self.best.numpy():
      self.best.assign(value)
      self.best_epoch.assign(epoch)
      self.wait.assign(0)
      self.best_weights.save(checkpoint_number=epoch + 1)
    else:
      self.wait.assign_add(1)
    self.epoch.assign(epoch + 1)
    if self.wait.numpy() >= self.patience > 0:
      self.stopped.assign(True)
      self.model.stop_training = True
    self.latest.save(checkpoint_number=epoch + 1)


def _check_workdir(workdir, config):
  """Creates `workdir`, refuses a checkpoint made by a different configuration."""
  check_writable(workdir)
  path = os.path.join(workdir, 'config.json')
  identity = config.training_identity()
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f).get('training_identity', {})
    diff = {k: (saved.get(k), v) for k, v in identity.items()
            if saved.get(k) != v}
    if diff:
      raise ConfigError(
          f'{workdir!r} holds a checkpoint of a different configuration '
          f'(field: (checkpoint, requested)) {diff}. Use another --output_dir '
          'or delete that directory to start over.')
  else:
    results.write_json_atomic(path, {'config': dataclasses.asdict(config),
                                     'training_identity': identity})


def _subset(images, n):
  return images[:n] if n else images


def evaluate_nll(model, images, config, seed):
  """Importance-sampled NLL (math.md section 4): mean over images, per pass; mean +- std."""
  per_pass = []
  for p in range(config.nll_passes):
    dataset = data_lib.eval_dataset(images, config.nll_batch_size,
                                    seed=(seed, 1000 + p),
                                    binarization='dynamic')
    values = []
    for i, x in enumerate(dataset):
      values.append(model.log_marginal_likelihood(
          x, num_samples=config.nll_samples, chunk_size=config.nll_chunk,
          seed=(seed, 100000 * (p + 1) + i)))
    per_pass.append(-float(np.mean(np.concatenate(values))))
  std = float(np.std(per_pass, ddof=1)) if len(per_pass) > 1 else 0.
  return float(np.mean(per_pass)), std, per_pass


def sample_quality(model, test_images, num_samples, seed):
  """Classifier FID (vs the grey-level test set) and classifier IS of model samples.

  Samples are Bernoulli means `sigmoid(decoder(z))`, `z ~ N(0, I)`. These are our MNIST
  classifier's FID/IS (`lvae_tf.metrics`), not Inception's: compare them with
  `results/metric_reference.md`, not with the paper's numbers.
  """
  from lvae_tf import metrics  # pylint: disable=g-import-not-at-top
  samples = model.sample_images(num_samples, seed=(seed, 3)).numpy()
  reference = test_images.astype(np.float32) / 255.
  is_mean, is_std = metrics.classifier_is(samples)
  return {'classifier_fid': metrics.classifier_fid(samples, reference),
          'classifier_is': is_mean, 'classifier_is_std': is_std,
          'fid_samples': num_samples}


def train_and_evaluate(config, workdir, mnist=None):
  """Trains (resuming if `workdir` holds a checkpoint), evaluates, writes `record.json`.

  Args:
    config: `Config`.
    workdir: directory for config, checkpoints, TensorBoard logs and the record.
    mnist: optional `lvae_tf.data.Mnist` (default: `data.load_mnist()`).

  Returns:
    The record (a dict), also written atomically to `workdir/record.json`.

  Raises:
    ConfigError: bad configuration, unwritable `workdir`, or a checkpoint from another
      configuration. Nothing is written in that case.
    lvae_tf.data.DataError: data missing or corrupt.
    lvae_tf.models.NonFiniteLossError: training diverged (no record written).
  """
  config.validate()
  # First: MultiWorkerMirroredStrategy must exist before other TF work in the process.
  strategy = make_strategy(config.strategy)
  mnist = mnist or data_lib.load_mnist()
  chief = _is_chief(strategy)
  if not chief:
    # Every worker takes part in saving (collectives); only the chief writes the real run
    # directory, the others a private scratch copy (the tf.distribute convention).
    workdir = os.path.join(workdir, '.workers', _task_name(strategy))
  _check_workdir(workdir, config)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  keras.utils.set_random_seed(config.seed)
  train_images = _subset(mnist.train_images, config.train_images)
  valid_images = _subset(mnist.valid_images, config.valid_images)
  test_images = _subset(mnist.test_images, config.test_images)
  if len(train_images) < config.batch_size:
    raise ConfigError(f'batch_size {config.batch_size} exceeds the '
                      f'{len(train_images)} training images.')

  with strategy.scope():
    model = build_model(
        config, output_bias=models.output_bias_from_images(train_images))
    model.compile(optimizer=keras.optimizers.Adamax(config.learning_rate),
                  jit_compile=config.jit_compile)
    model(tf.zeros([1, 28, 28, 1]))  # create the weights before restoring
    # Create the optimizer slots now: otherwise the first step creates them and TF traces the
    # (large, second-order) training step twice (measured: first call 4.3 s -> 1.6 s, K = 1).
    model.optimizer.build(model.trainable_variables)
    state = ResumableTraining(workdir, model, config.patience)
  initial_epoch = state.restore()

  valid = data_lib.eval_dataset(valid_images, config.eval_batch_size,
                                seed=(config.seed, 1), binarization='fixed')
  t0 = time.time()
  if not state.done and initial_epoch < config.max_epochs:
    if initial_epoch:
      print(f'Resuming from epoch {initial_epoch} '
            f'(step {initial_epoch * config.steps_per_epoch}).')
    train = data_lib.train_dataset(
        train_images, config.batch_size, seed=config.seed,
        start_step=initial_epoch * config.steps_per_epoch)
    model.fit(train, epochs=config.max_epochs, initial_epoch=initial_epoch,
              steps_per_epoch=config.steps_per_epoch, validation_data=valid,
              callbacks=[state, keras.callbacks.TensorBoard(
                  os.path.join(workdir, 'tensorboard'), profile_batch=0)],
              verbose=config.verbose)
  train_seconds = time.time() - t0
  state.restore_best()

  t0 = time.time()
  test = data_lib.eval_dataset(test_images, config.eval_batch_size,
                               seed=(config.seed, 2), binarization='dynamic')
  test_elbo = model.evaluate(test, verbose=0, return_dict=True)['elbo']
  valid_elbo = model.evaluate(valid, verbose=0, return_dict=True)['elbo']
  elbo_seconds = time.time() - t0
  t0 = time.time()
  nll_images = _subset(test_images, config.nll_test_images)
  nll_mean, nll_std, nll_passes = evaluate_nll(model, nll_images, config,
                                               config.seed)
  nll_seconds = time.time() - t0
  t0 = time.time()
  quality = sample_quality(model, test_images, config.fid_samples,
                           seed=config.seed) if config.fid_samples else {}
  quality_seconds = time.time() - t0

  record = {
      'kind': 'table1_run',
      'config': dataclasses.asdict(config),
      'environment': results.environment(),
      'data_source': mnist.source,
      'metrics': {
          'test_elbo': float(test_elbo),
          'valid_elbo': float(valid_elbo),
          'nll_mean': nll_mean,
          'nll_std': nll_std,
          'nll_per_pass': nll_passes,
          'nll_test_images': len(nll_images),
          'test_images': len(test_images),
          'best_epoch': int(state.best_epoch.numpy()) + 1,
          'epochs_trained': int(state.epoch.numpy()),
          'train_steps': int(model.optimizer.iterations.numpy()),
          'flow_parameters': model.flow_parameters(),
          **quality,
      },
      'wall_seconds': {'train_this_invocation': train_seconds,
                       'test_elbo': elbo_seconds, 'nll': nll_seconds,
                       'sample_quality': quality_seconds},
  }
  record['environment']['replicas'] = strategy.num_replicas_in_sync
  record['environment']['task'] = ('chief' if chief else _task_name(strategy))
  if chief:
    results.write_json_atomic(os.path.join(workdir, 'record.json'), record)
  return record


def load_trained_model(workdir, which='best'):
  """Rebuilds the model of a run directory and restores its weights.

  Args:
    workdir: a directory written by `train_and_evaluate` (holds `config.json` and
      `checkpoints/`).
    which: `'best'` (best validation ELBO) or `'latest'`.

  Returns:
    `(model, config)`.

  Raises:
    FileNotFoundError: no config or no checkpoint in `workdir`.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a run '
                            'directory of lvae_tf.train.train_and_evaluate.')
  with open(path) as f:
    config = Config(**json.load(f)['config'])
  checkpoint = tf.train.latest_checkpoint(
      os.path.join(workdir, 'checkpoints', which))
  if checkpoint is None:
    raise FileNotFoundError(f'no {which!r} checkpoint under {workdir!r}.')
  model = build_model(config)
  model(tf.zeros([1, 28, 28, 1]))
  tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
  return model, config
