"""What a run shows while it trains and evaluates, and what it leaves for TensorBoard.

* `TrainingProgress`: a Keras callback replacing `fit`'s own progress output. Within an epoch
  a `keras.utils.Progbar` when stdout is a terminal; at the end of every epoch one line:

      epoch 12/~40 | 17.8 of 60 CPU-min (42.2 left) | elbo -95.12 val_elbo -94.80 | best
      -94.80 (epoch 12), 0 since | 85 s/epoch, ETA 39 min

  The epoch bound is the real one: `max_epochs`, or, under a time budget, the epoch at which
  the budget runs out at the measured cost per epoch, whichever comes first ("~" marks an
  estimate, "<=" the bound before the first epoch has been timed).
* `keras_verbosity`: `evaluate`'s verbosity for a run's `verbose` (a bar on a terminal, one
  line otherwise).
* `log_hparams`: the configuration and the final metrics in TensorBoard's HParams dashboard,
  so runs compare there (`tensorboard --logdir <workdir>`).
* `summary`: the closing lines of a run: its numbers, record, PNGs and TensorBoard command.
"""

import math
import os
import sys
import time

import tf_keras as keras

__all__ = ['TrainingProgress', 'epoch_bound', 'keras_verbosity', 'log_hparams', 'summary',
           'HPARAMS_METRICS']


def _is_terminal(stream=None):
  stream = stream or sys.stdout
  return hasattr(stream, 'isatty') and stream.isatty()


def keras_verbosity(verbose, stream=None):
  """`model.evaluate`'s verbosity: 0 silent, 1 (a bar) on a terminal, else 2 (one line)."""
  if not verbose:
    return 0
  return 1 if _is_terminal(stream) else 2


def epoch_bound(epochs_done, max_epochs, budget_seconds, spent_seconds, seconds_per_epoch):
  """`(bound, binding)`: the epoch at which training will stop at the latest, and why.

  `binding` is `'epochs'` (max_epochs) or `'budget'` (the time budget, checked at the end of
  each epoch: training stops after the first epoch that reaches it). Without a measured cost
  per epoch the budget cannot be converted, and `max_epochs` is returned.
  """
  if budget_seconds > 0 and seconds_per_epoch and seconds_per_epoch > 0:
    left = max(budget_seconds - spent_seconds, 0.)
    by_budget = epochs_done + math.ceil(left / seconds_per_epoch)
    if by_budget < max_epochs:
      return max(by_budget, epochs_done), 'budget'
  return max_epochs, 'epochs'


def _minutes(seconds):
  return f'{seconds / 60.:.1f}'


def _duration(seconds):
  if seconds < 120:
    return f'{seconds:.0f} s'
  if seconds < 7200:
    return f'{seconds / 60.:.0f} min'
  return f'{seconds / 3600.:.1f} h'


class TrainingProgress(keras.callbacks.Callback):
  """Per-epoch progress line (and a per-step bar on a terminal) for `fit(verbose=0)`.

  Reads the training state from a `lvae_tf.callbacks.ResumableTraining` (best value, epochs since
  the last improvement, CPU and wall seconds over all resumptions); list it after that
  callback, so its epoch-end update is seen.

  Args:
    state: the `ResumableTraining` callback of the run.
    max_epochs: the epoch budget.
    steps_per_epoch: training steps per epoch (the bar's length).
    verbose: the run's verbosity (0: nothing; 1, 2: as described in the module docstring).
    stream: where to write (default: stdout).
  """

  def __init__(self, state, max_epochs, steps_per_epoch, verbose=2, stream=None):
    super().__init__()
    self.state = state
    self.max_epochs = max_epochs
    self.steps_per_epoch = steps_per_epoch
    self.verbose = verbose
    self.stream = stream
    self._bar = None
    self._wall = []  # wall seconds of the epochs of this invocation
    self._spent = []  # budget seconds of the epochs of this invocation
    self._epoch_start = None

  def _write(self, text):
    stream = self.stream or sys.stdout
    stream.write(text + '\n')
    stream.flush()

  def _budget(self):
    state = self.state
    clock = state.cpu_seconds if state.budget_clock == 'cpu' else state.train_seconds
    return float(clock.numpy())

  def _bound(self, epochs_done):
    per_epoch = (sum(self._spent) / len(self._spent)) if self._spent else None
    return epoch_bound(epochs_done, self.max_epochs, self.state.budget_seconds,
                       self._budget(), per_epoch)

  def _bound_text(self, epochs_done):
    bound, binding = self._bound(epochs_done)
    if binding == 'budget':
      return f'~{bound}'
    if self.state.budget_seconds > 0 and not self._spent:
      return f'<={bound}'
    return str(bound)

  def on_train_begin(self, logs=None):
    if self.verbose:
      done = int(self.state.epoch.numpy())
      budget = self.state.budget_seconds
      clock = 'CPU-min' if self.state.budget_clock == 'cpu' else 'min'
      limits = [f'at most {self.max_epochs} epochs']
      if budget > 0:
        limits.append(f'{_minutes(budget)} {clock} of training ({_minutes(self._budget())} '
                      'used)')
      if self.state.patience:
        limits.append(f'patience {self.state.patience} epochs')
      start = f'from epoch {done}, ' if done else ''
      self._write(f'Training {start}{", ".join(limits)}.')

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = (time.perf_counter(), self._budget())
    if self.verbose and _is_terminal(self.stream):
      self._write(f'epoch {epoch + 1}/{self._bound_text(epoch)}')
      self._bar = keras.utils.Progbar(self.steps_per_epoch, unit_name='step')
    else:
      self._bar = None

  def on_train_batch_end(self, batch, logs=None):
    if self._bar is not None:
      values = [(k, float(v)) for k, v in (logs or {}).items() if k in ('elbo', 'loss')]
      self._bar.update(batch + 1, values=values)

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    wall_start, _ = self._epoch_start or (time.perf_counter(), 0.)
    self._wall.append(time.perf_counter() - wall_start)
    self._spent.append(self._budget() - (self._epoch_start or (0., 0.))[1])
    if not self.verbose:
      return
    if self._bar is not None:
      self._bar = None
    done = epoch + 1
    bound, binding = self._bound(done)
    state = self.state
    if binding == 'budget':
      clock = 'CPU-min' if state.budget_clock == 'cpu' else 'min'
      used = self._budget()
      budget = (f'{_minutes(used)} of {_minutes(state.budget_seconds)} {clock} '
                f'({_minutes(max(state.budget_seconds - used, 0.))} left)')
    else:
      budget = f'{done} of {self.max_epochs} epochs ({self.max_epochs - done} left)'
    metrics = ' '.join(f'{k} {v:.2f}' for k, v in logs.items() if k in ('elbo', 'val_elbo'))
    best, best_epoch = float(state.best.numpy()), int(state.best_epoch.numpy()) + 1
    wait = int(state.wait.numpy())
    per_epoch = sum(self._wall) / len(self._wall)
    eta = per_epoch * max(bound - done, 0)
    stopping = self.model.stop_training
    line = (f'epoch {done}/{"~" if binding == "budget" and not stopping else ""}'
            f'{done if stopping else bound} | {budget} | {metrics} | best val_elbo {best:.2f} '
            f'(epoch {best_epoch}), {wait} epoch{"s" if wait != 1 else ""} since | '
            f'{per_epoch:.0f} s/epoch, ETA {_duration(0 if stopping else eta)}')
    self._write(line)

  def on_train_end(self, logs=None):
    if self.verbose and self._wall:
      state = self.state
      why = ('patience' if state.done else 'time budget' if state.out_of_time else
             'max_epochs' if int(state.epoch.numpy()) >= self.max_epochs else 'stopped')
      self._write(f'Training stopped ({why}) after epoch {int(state.epoch.numpy())}; best '
                  f'val_elbo {float(state.best.numpy()):.2f} at epoch '
                  f'{int(state.best_epoch.numpy()) + 1}.')


# Final metrics of a record shown in TensorBoard's HParams dashboard (tag: record key).
HPARAMS_METRICS = ('test_elbo', 'valid_elbo', 'nll_mean', 'nll_sem', 'classifier_fid',
                   'classifier_is', 'best_epoch', 'epochs_trained')


def _hparam_value(value):
  if value is None:
    return 'unset'
  if isinstance(value, (bool, int, float, str)):
    return value
  return str(value)


def log_hparams(logdir, record):
  """Writes a record's configuration and final metrics for TensorBoard's HParams dashboard.

  One session (`trial_id` = run name) in `logdir`, the metrics as scalars at the last epoch.
  The directory is replaced, so a resumed run leaves one session.
  """
  import shutil  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
  shutil.rmtree(logdir, ignore_errors=True)
  metrics = record['metrics']
  hparams = {k: _hparam_value(v) for k, v in record['config'].items()}
  step = int(metrics.get('epochs_trained') or 0)
  with tf.summary.create_file_writer(logdir).as_default():
    hp.hparams(hparams, trial_id=record.get('run_name'))
    for name in HPARAMS_METRICS:
      value = metrics.get(name)
      if isinstance(value, (int, float)) and math.isfinite(value):
        tf.summary.scalar(name, float(value), step=step)
    tf.summary.flush()


def summary(record, run_dir, record_path=None):
  """The closing lines of a run: metrics, then where its record, PNGs and TensorBoard are.

  `record_path` is the file the record was written to (default `run_dir/record.json`; another
  evaluation of a run writes `record-eval-<hash>.json`, `lvae_tf.train.record_file`).
  """
  m = record['metrics']
  config = record['config']
  lines = [f'{record["run_name"]}: test ELBO {m["test_elbo"]:.2f}, NLL {m["nll_mean"]:.2f} '
           f'± {m["nll_sem"]:.2f} (standard error; S = {config["nll_samples"]}, '
           f'{m["nll_test_images"]} test images, {config["nll_passes"]} pass(es))']
  if 'classifier_fid' in m:
    lines.append(f'classifier FID {m["classifier_fid"]:.2f}, IS {m["classifier_is"]:.2f} '
                 f'({m["fid_samples"]} samples)')
  lines.append(f'trained {m["epochs_trained"]} epochs (best {m["best_epoch"]}, stopped by '
               f'{m["stopped_by"]})')
  lines.append(f'record: {record_path or os.path.join(run_dir, "record.json")}')
  pngs = [os.path.join(run_dir, name) for name in ('samples.png', 'reconstructions.png')]
  lines.append(f'images: {"  ".join(p for p in pngs if os.path.exists(p))}')
  lines.append(f'TensorBoard: tensorboard --logdir {os.path.join(run_dir, "tensorboard")}'
               f'   (all runs, HParams: tensorboard --logdir {os.path.dirname(run_dir) or "."})')
  return '\n'.join(lines)
