"""The Keras callbacks of a training run and the checkpoints they keep.

`ResumableTraining` checkpoints every epoch, keeps the best weights and stops early or on a time
budget. Keras' own EarlyStopping keeps its state (best value, patience counter, best weights) in
memory only, so a killed run would restart its patience from scratch; here that state is a
`tf.train.Checkpoint` next to the model and optimizer, and a run killed at any moment and started
again continues from its last completed epoch. `SafePoints` lets Ctrl-C and SIGTERM stop `fit`
at the end of a batch (`lvae_tf.interrupts`).
"""

import glob
import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import filesafety
from lvae_tf import models
from lvae_tf import schema
from lvae_tf.filesafety import interrupts
from lvae_tf.filesafety import recovery
from lvae_tf.config import ConfigError

__all__ = ['ResumableTraining', 'SafePoints', 'kept_epoch_checkpoint', 'restore_or_refuse']


class ResumableTraining(keras.callbacks.Callback):
  """Checkpoint every epoch, keep the best weights, stop early or on a time budget; resumable.

  State (`epoch`, `best`, `wait`, `stopped`, `train_seconds`) is a set of variables saved with
  the model and optimizer in the latest checkpoint; the best weights go to a second checkpoint
  whenever the monitored validation value improves. Every epoch also appends one line to
  `history.jsonl` (epoch, step, cumulative training seconds, training and validation ELBO);
  lines of epochs after the restored checkpoint are dropped on resume, so the history always
  matches the checkpoint. A non-finite training loss stops the run with `NonFiniteLossError`
  naming the step, and leaves the last good checkpoint untouched.

  Args:
    workdir: the run directory.
    model: the compiled model.
    patience: epochs without improvement before stopping (0 = never).
    budget_seconds: training budget over all resumptions (0 = none), checked at the end of
      each epoch.
    budget_clock: 'wall' (elapsed seconds) or 'cpu' (CPU seconds of this process).
    monitor: the epoch log to maximise.
    keep_epochs: epochs at whose end the best weights so far are kept as
      `checkpoints/epochs/epoch-NNNN` (`kept_epoch_checkpoint`), for the NLL curve.
  """

  def __init__(self, workdir, model, patience, budget_seconds=0., budget_clock='wall',
               monitor='val_elbo', keep_epochs=()):
    super().__init__()
    self.workdir = workdir
    self.keep_epochs = frozenset(keep_epochs)
    self.budget_clock = budget_clock
    self.monitor = monitor
    self.patience = patience
    self.budget_seconds = budget_seconds
    self.history_path = os.path.join(workdir, 'history.jsonl')
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
    self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
    self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.stopped = tf.Variable(False, trainable=False)
    self.train_seconds = tf.Variable(0., dtype=tf.float64, trainable=False)
    self.cpu_seconds = tf.Variable(0., dtype=tf.float64, trainable=False)
    state = tf.train.Checkpoint(epoch=self.epoch, best=self.best,
                                best_epoch=self.best_epoch, wait=self.wait,
                                stopped=self.stopped, train_seconds=self.train_seconds,
                                cpu_seconds=self.cpu_seconds)
    self.latest = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                            state=state),
        os.path.join(workdir, 'checkpoints', 'latest'), max_to_keep=2)
    self.best_weights = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        os.path.join(workdir, 'checkpoints', 'best'), max_to_keep=1)
    self._epoch_start = None

  def restore(self):
    """Restores the latest checkpoint if there is one; returns the epoch to start from."""
    if self.latest.latest_checkpoint:
      restore_or_refuse(self.latest.checkpoint, self.latest.latest_checkpoint, self.workdir)
    # The stopping rule is the one asked for now: a run stopped by --patience=2 and run again
    # with --patience=5 trains on (`recovery.check_budget` has refused a rule under which it
    # would have stopped earlier).
    self.stopped.assign(0 < self.patience <= int(self.wait.numpy()))
    epoch = int(self.epoch.numpy())
    self._truncate_history(epoch)
    for staging in glob.glob(_kept_dir(self.workdir, 0)[:-len('0000')] + '*.tmp-*'):
      shutil.rmtree(staging, ignore_errors=True)  # a copy cut by a kill (`_keep_best`)
    return epoch

  @property
  def out_of_time(self):
    spent = self.cpu_seconds if self.budget_clock == 'cpu' else self.train_seconds
    return 0 < self.budget_seconds <= float(spent.numpy())

  @property
  def done(self):
    """Stopped early (patience); a run stopped by its time budget may continue with more."""
    return bool(self.stopped.numpy())

  def restore_best(self):
    if self.best_weights.latest_checkpoint:
      restore_or_refuse(self.best_weights.checkpoint, self.best_weights.latest_checkpoint,
                         self.workdir)

  def history(self):
    """The per-epoch history of this run (list of dicts), as far as the checkpoint goes."""
    return schema.read_jsonl(self.history_path, schema.validate_history_row)[0]

  def _truncate_history(self, epoch):
    """Keeps the rows up to `epoch` (and drops a line cut by a kill); creates no file."""
    if not os.path.exists(self.history_path):
      return
    rows = [r for r in self.history() if r['epoch'] <= epoch]
    filesafety.write_text_atomic(self.history_path,
                              ''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows))

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = (time.perf_counter(), time.process_time())

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

  @interrupts.deferred()  # a signal waits until the history line and checkpoint are written
  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    value = logs.get(self.monitor)
    if value is None:
      raise KeyError(f'{self.monitor!r} missing from the epoch logs; pass '
                     'validation_data to fit.')
    if not math.isfinite(value):
      raise models.NonFiniteLossError(
          f'Validation {self.monitor} is {value} after epoch {epoch + 1}. '
          'Likely cause: step size too large. The last good checkpoint is kept.')
    wall, cpu = self._epoch_start or (time.perf_counter(), time.process_time())
    self.train_seconds.assign_add(time.perf_counter() - wall)
    self.cpu_seconds.assign_add(time.process_time() - cpu)
    if value > self.best.numpy():
      self.best.assign(value)
      self.best_epoch.assign(epoch)
      self.wait.assign(0)
      recovery.save_checkpoint(self.best_weights, epoch + 1)
    else:
      self.wait.assign_add(1)
    if epoch + 1 in self.keep_epochs:
      _keep_best(self.workdir, self.best_weights.latest_checkpoint, epoch + 1,
                 int(self.best_epoch.numpy()) + 1)
    self.epoch.assign(epoch + 1)
    if self.wait.numpy() >= self.patience > 0:
      self.stopped.assign(True)
      self.model.stop_training = True
    if self.out_of_time:
      self.model.stop_training = True
    row = {'epoch': epoch + 1, 'step': int(self.model.optimizer.iterations.numpy()),
           'train_seconds': float(self.train_seconds.numpy()),
           'cpu_seconds': float(self.cpu_seconds.numpy()),
           'elbo': float(logs.get('elbo', float('nan'))), self.monitor: float(value)}
    # History first: a line without its checkpoint is cut on resume; the reverse would be lost.
    filesafety.append_text(self.history_path, json.dumps(row, sort_keys=True) + '\n')
    recovery.save_checkpoint(self.latest, epoch + 1)


def restore_or_refuse(checkpoint, prefix, workdir, partial=False):
  """Restores `prefix` into `checkpoint`; a checkpoint of another model raises `ConfigError`.

  `partial`: the checkpoint may hold more than `checkpoint` (e.g. the optimizer).
  """
  try:
    status = checkpoint.restore(prefix)
    if partial:
      status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise ConfigError(
        f'the checkpoint {prefix} does not fit the model of {workdir}/config.json ({first}): '
        f'config.json and checkpoints are of different runs. Move {workdir!r} away (or '
        'delete it) to start over.') from None


def _kept_dir(workdir, epoch):
  return os.path.join(workdir, 'checkpoints', 'epochs', f'epoch-{epoch:04d}')


def _keep_best(workdir, best_prefix, epoch, best_epoch):
  """Copies the best checkpoint (`best_prefix`) to `checkpoints/epochs/epoch-NNNN`, whole or not.

  The copy goes to a temporary directory renamed into place, so a kill leaves either the
  previous copy (a resumed run makes it again: training is deterministic in the step) or none.
  """
  target = _kept_dir(workdir, epoch)
  staging = f'{target}.tmp-{os.getpid()}'
  shutil.rmtree(staging, ignore_errors=True)
  try:
    os.makedirs(staging)
    for path in glob.glob(best_prefix + '.*'):
      shutil.copy2(path, os.path.join(staging, 'ckpt' + path[len(best_prefix):]))
    filesafety.write_json_atomic(os.path.join(staging, 'kept.json'),
                              {'epoch': epoch, 'best_epoch': best_epoch})
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
  except OSError as e:
    shutil.rmtree(staging, ignore_errors=True)
    raise filesafety.WriteError(f'could not keep the epoch-{epoch} checkpoint in {target!r}: '
                             f'{e}') from e


def kept_epoch_checkpoint(workdir, epoch):
  """`(prefix, best_epoch)` of the weights kept at the end of `epoch`, or `(None, None)`."""
  directory = _kept_dir(workdir, epoch)
  try:
    with open(os.path.join(directory, 'kept.json')) as f:
      best_epoch = int(json.load(f)['best_epoch'])
  except (OSError, ValueError, KeyError, TypeError):
    return None, None
  prefix = os.path.join(directory, 'ckpt')
  if not os.path.exists(prefix + '.index'):
    return None, None
  return prefix, best_epoch


class SafePoints(keras.callbacks.Callback):
  """Raises a signal held back by `interrupts.safe_points` at every batch and epoch end."""

  def on_train_batch_end(self, batch, logs=None):
    interrupts.raise_pending()

  def on_test_batch_end(self, batch, logs=None):
    interrupts.raise_pending()

  def on_epoch_end(self, epoch, logs=None):
    interrupts.raise_pending()
