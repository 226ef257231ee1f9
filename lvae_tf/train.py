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

import contextlib
import dataclasses
import glob
import hashlib
import json
import math
import os
import shutil
import time
import warnings

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import config as config_lib
from lvae_tf import data as data_lib
from lvae_tf import filesafety
from lvae_tf import models
from lvae_tf import progress
from lvae_tf import registry
from lvae_tf import results
from lvae_tf import schema
from lvae_tf import visualize
from lvae_tf.config import Config
from lvae_tf.config import ConfigError
from lvae_tf.config import PRESETS
from lvae_tf.config import check_writable
from lvae_tf.filesafety import interrupts
from lvae_tf.filesafety import recovery
from lvae_tf.filesafety import runlock
from lvae_tf.models import build_model
from lvae_tf.models.builder import resolve_precision

__all__ = [
    'Config',
    'ConfigError',
    'PRESETS',
    'ResumableTraining',
    'build_model',
    'load_trained_model',
    'evaluate_nll',
    'weights_fingerprint',
    'make_strategy',
    'resolve',
    'resolve_precision',
    'train_and_evaluate',
]


def resolve(config):
  """`config` with its device-dependent fields made concrete (`precision='auto'`)."""
  return dataclasses.replace(config, precision=resolve_precision(config.precision))

def make_strategy(name, cluster_timeout=None):
  """`tf.distribute` strategy by name; 'multiworker' reads the cluster from `TF_CONFIG`.

  'multiworker' first waits, at most `cluster_timeout` seconds (`lvae_tf.cluster`), for every
  other task of `TF_CONFIG` to answer; one that does not is named in a `ConfigError`.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multiworker':
    from lvae_tf import cluster  # pylint: disable=g-import-not-at-top
    cluster.wait_for_peers(timeout=cluster_timeout)
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
      _restore_or_refuse(self.latest.checkpoint, self.latest.latest_checkpoint, self.workdir)
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
      _restore_or_refuse(self.best_weights.checkpoint, self.best_weights.latest_checkpoint,
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


def _restore_or_refuse(checkpoint, prefix, workdir, partial=False):
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


def _check_workdir(workdir, config):
  """Refuses a run directory whose checkpoint belongs to another configuration.

  Returns the `config.json` content to write once every check has passed (None if the
  directory already has it).
  """
  path = os.path.join(workdir, 'config.json')
  identity = config.training_identity()
  if os.path.exists(path):
    try:
      with open(path) as f:
        saved = json.load(f)
      saved = saved['training_identity']
      if not isinstance(saved, dict):
        raise TypeError('training_identity is not an object')
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise ConfigError(
          f'{path} is unreadable ({e}): the checkpoints in {workdir!r} cannot be matched to '
          'a configuration. Move that directory away (or delete it) to start over.') from e
    saved = {**config_lib.LATER_FIELDS, **saved}
    diff = {k: (saved.get(k), v) for k, v in identity.items() if saved.get(k) != v}
    if diff:
      raise ConfigError(
          f'{workdir!r} holds a checkpoint of a different configuration '
          f'(field: (checkpoint, requested)) {diff}. Use another --run_name or --workdir, '
          'or delete that directory to start over.')
    return None
  if os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise ConfigError(
        f'{workdir!r} holds checkpoints but no config.json: they cannot be matched to a '
        'configuration and are not resumed. Move that directory away (or delete it) to start '
        'over.')
  return {'config': dataclasses.asdict(config), 'training_identity': identity}


# Validation images shown (with their reconstructions) in a run's pictures.
_PICTURE_IMAGES = 16


def _subset(images, n):
  return images[:n] if n else images


def nll_subset_indices(num_test, config):
  """Indices of the test images the NLL uses: a fixed random subset (or the first ones).

  The random subset depends only on `nll_subset_seed` and the size of the test set, so every
  model of a protocol is measured on the same images.
  """
  n = min(config.nll_test_images or num_test, num_test)
  if config.nll_subset == 'first':
    return np.arange(n)
  rng = np.random.default_rng(config.nll_subset_seed)
  return np.sort(rng.permutation(num_test)[:n])


def weights_fingerprint(model):
  """sha256 (16 hex digits) of the model's weights: which trained model a partial NLL is of."""
  digest = hashlib.sha256()
  for w in model.get_weights():
    digest.update(np.ascontiguousarray(w).tobytes())
  return digest.hexdigest()[:16]


def _read_partial_nll(path, identity):
  """Batches `{(pass, batch): ln p(x)}` already in `path`, if it was written for `identity`.

  A partial file of another model or setting (other header) is ignored; a last line cut by a
  kill is dropped; an entry that does not fit the setting (a pass or batch out of range, a
  batch of the wrong size, a value that is not a finite number) is recomputed, with a warning
  naming the file and line: it is never averaged in.
  """
  if not path or not os.path.exists(path):
    return {}
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  try:
    if json.loads(lines[0]) != {'identity': identity}:
      return {}
  except ValueError:
    return {}
  size, images = identity['batch_size'], identity['images']
  done = {}
  for number, line in enumerate(lines[1:], 2):
    if not line.strip():
      continue
    try:
      entry = schema.validate_nll_entry(json.loads(line), schema._Checker(path))  # pylint: disable=protected-access
      p, i, values = entry['pass'], entry['batch'], entry['log_px']
      if not (0 <= p < identity['passes'] and 0 <= i * size < images):
        raise schema.SchemaError(path, 'pass/batch', f'({p}, {i}) is not a batch of this NLL.')
      if len(values) != min(size, images - i * size):
        raise schema.SchemaError(path, 'log_px', f'{len(values)} values for batch {i} of '
                                 f'{min(size, images - i * size)} images.')
    except (ValueError, schema.SchemaError) as e:
      if number < len(lines) or not isinstance(e, json.JSONDecodeError):
        warnings.warn(f'{path} line {number} does not fit its NLL setting ({e}): that batch is '
                      'computed again.')
      continue  # a last line cut by a kill: computed again, silently
    done[(p, i)] = np.asarray(values, np.float64)
  return done


def nll_setting_path(directory, stem, config, images, seed, identity=None):
  """The partial-NLL file of one NLL setting: `<directory>/<stem>-<hash of the setting>.jsonl`.

  The setting is everything `evaluate_nll` puts into its identity except the weights (images,
  seed, samples, passes, batch size, chunk, and the `identity` given, e.g. which images): each
  setting keeps its own progress, and a re-evaluation with other settings never replaces it.
  """
  setting = _nll_identity(identity, images, seed, config)
  setting.pop('weights', None)
  digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:12]
  return os.path.join(directory, f'{stem}-{digest}.jsonl')


def _nll_identity(identity, images, seed, config):
  return dict(identity or {}, images=images, seed=list(np.atleast_1d(seed).tolist()),
              samples=config.nll_samples, passes=config.nll_passes,
              batch_size=config.nll_batch_size, chunk=config.nll_chunk)


def _adopt_legacy_partial(legacy, path, identity):
  """Renames a partial file of the single-file layout (`nll_partial.jsonl`) to `path` if it
  holds this very NLL (its header is `identity`), so an interrupted NLL keeps its progress."""
  if os.path.exists(path) or not os.path.exists(legacy):
    return
  try:
    with open(legacy) as f:
      header = json.loads(f.readline())
  except (OSError, ValueError):
    return
  if header == {'identity': identity}:
    os.replace(legacy, path)


def evaluate_nll(model, images, config, seed, progress=True, binarized=False,
                 partial_path=None, identity=None):
  """Importance-sampled NLL (math.md section 4) of each image, averaged over passes.

  With `partial_path`, every finished batch is appended to that file (JSON lines under a
  header holding `identity`), and a new call with the same `identity` skips the batches it
  holds: an interrupted NLL resumes where it stopped and gives exactly the numbers of an
  uninterrupted one (each batch's binarisation and noise are seeded by its pass and index).

  Returns:
    dict: `nll_mean` (mean over images), `nll_sem` (its standard error over images, from
    the per-image NLLs averaged over passes), `nll_std` (spread of the per-pass means, 0 for
    one pass), `nll_per_pass`, `nll_batches_resumed` (batches read from `partial_path`, whose
    time an earlier call spent), `nll_per_image` (averaged over passes, in the order of
    `images`, rounded to 1e-4 nats).
  """
  identity = _nll_identity(identity, len(images), seed, config)
  done = _read_partial_nll(partial_path, identity)
  if partial_path:
    # Rewritten whole (header and the intact batches): a line cut by a kill must not prefix
    # the next appended one.
    filesafety.write_text_atomic(partial_path, ''.join(
        json.dumps(entry) + '\n' for entry in [{'identity': identity}] + [
            {'pass': p, 'batch': i, 'log_px': [float(v) for v in values]}
            for (p, i), values in done.items()]))
  if progress and done:
    print(f'NLL: resuming, {len(done)} batches already in {partial_path}.', flush=True)
  per_image = []
  batches = math.ceil(len(images) / config.nll_batch_size)
  t0 = time.time()
  computed = 0
  for p in range(config.nll_passes):
    dataset = data_lib.eval_dataset(images, config.nll_batch_size,
                                    seed=(seed, 1000 + p),
                                    binarization='dynamic', binarized=binarized)
    values = []
    for i, x in enumerate(dataset):
      if (p, i) in done:
        values.append(done[(p, i)])
        continue
      values.append(model.log_marginal_likelihood(
          x, num_samples=config.nll_samples, chunk_size=config.nll_chunk,
          seed=(seed, 100000 * (p + 1) + i)))
      computed += 1
      if partial_path:
        filesafety.append_text(partial_path, json.dumps(
            {'pass': p, 'batch': i, 'log_px': [float(v) for v in values[-1]]}) + '\n')
      finished = p * batches + i + 1
      if progress and (finished % max(1, batches // 10) == 0 or finished == batches):
        elapsed = time.time() - t0
        eta = elapsed / computed * (config.nll_passes * batches - finished)
        print(f'NLL: pass {p + 1}/{config.nll_passes}, batch {i + 1}/{batches}, '
              f'running mean {-np.mean(np.concatenate(values)):.2f}, '
              f'{elapsed:.0f} s elapsed, ETA {eta:.0f} s', flush=True)
    per_image.append(-np.concatenate(values))
  per_image = np.stack(per_image)  # (passes, n)
  per_pass = [float(v) for v in per_image.mean(axis=1)]
  image_means = per_image.mean(axis=0)
  sem = float(np.std(image_means, ddof=1) / np.sqrt(len(image_means))) \
      if len(image_means) > 1 else 0.
  std = float(np.std(per_pass, ddof=1)) if len(per_pass) > 1 else 0.
  return {'nll_mean': float(np.mean(per_pass)), 'nll_sem': sem, 'nll_std': std,
          'nll_per_pass': per_pass, 'nll_batches_resumed': len(done),
          # For paired comparisons of models on the same images (`results.paired_nll`).
          'nll_per_image': [round(float(v), 4) for v in image_means]}


def nll_curve(model, workdir, config, test_images, nll_index, history, epochs, binarized=False,
              chief=True):
  """NLL of the weights kept at each of `config.curve_epochs()` up to `epochs` (the curve).

  Each point restores the best weights as of that epoch (`checkpoints/epochs/epoch-NNNN`) into
  `model` and measures the NLL, as `evaluate_nll` does, on the first `nll_curve_images` images
  of the NLL subset (the same images for every model of a protocol, so points pair across
  models). Each point resumes from its own partial file (`nll_curve/epoch-NNNN.jsonl`).
  `model`'s weights are changed: call it last.

  Returns:
    A list of `{epoch, best_epoch, train_cpu_minutes, nll_mean, nll_sem, nll_test_images,
    nll_samples, nll_per_image}`, one per kept epoch found, in epoch order.
  """
  cpu_minutes = {row['epoch']: row['cpu_seconds'] / 60. for row in history
                 if isinstance(row.get('cpu_seconds'), (int, float))}
  n = min(config.nll_curve_images, len(nll_index))
  index = nll_subset_indices(len(test_images), dataclasses.replace(config, nll_test_images=n))
  images = test_images[index]
  indices_sha = hashlib.sha256(np.asarray(index, np.int64).tobytes()).hexdigest()[:16]
  curve = []
  for epoch in config.curve_epochs():
    if epoch > epochs:
      break
    prefix, best_epoch = kept_epoch_checkpoint(workdir, epoch)
    if prefix is None:
      continue  # trained before checkpoints were kept (or not the chief's directory)
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    if config.verbose:
      print(f'NLL curve: epoch {epoch} (best weights of epoch {best_epoch}), {n} images.',
            flush=True)
    point_config = dataclasses.replace(config, nll_passes=1)
    identity = {'weights': weights_fingerprint(model), 'indices': indices_sha}
    partial = nll_setting_path(os.path.join(workdir, 'nll_curve'), f'epoch-{epoch:04d}',
                               point_config, len(images), config.seed,
                               {'indices': indices_sha}) if chief else None
    if partial:
      os.makedirs(os.path.dirname(partial), exist_ok=True)
      _adopt_legacy_partial(os.path.join(workdir, 'nll_curve', f'epoch-{epoch:04d}.jsonl'),
                            partial, _nll_identity(identity, len(images), config.seed,
                                                   point_config))
    point = evaluate_nll(model, images, point_config, config.seed,
                         progress=config.verbose > 0, binarized=binarized, partial_path=partial,
                         identity=identity)
    curve.append({'epoch': epoch, 'best_epoch': best_epoch,
                  'train_cpu_minutes': cpu_minutes.get(epoch),
                  'nll_mean': point['nll_mean'], 'nll_sem': point['nll_sem'],
                  'nll_test_images': n, 'nll_samples': config.nll_samples,
                  'nll_per_image': point['nll_per_image']})
  return curve


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


def _warm_start(model, run_dir):
  """Initialises encoder and decoder from the best checkpoint of a trained run (a VAE)."""
  checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, 'checkpoints', 'best'))
  if checkpoint is None:
    raise ConfigError(f'--warm_start={run_dir!r}: no best checkpoint under '
                      f'{os.path.join(run_dir, "checkpoints", "best")!r}; train that run '
                      'first.')
  source = tf.train.Checkpoint(
      model=tf.train.Checkpoint(encoder=model.encoder, decoder=model.decoder))
  try:
    source.restore(checkpoint).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise ConfigError(f'--warm_start={run_dir!r}: its checkpoint {checkpoint} does not fit this '
                      f'model ({first}).') from None
  return checkpoint


def train_and_evaluate(config, workdir, mnist=None):
  """Trains (resuming if `workdir` holds a checkpoint), evaluates, writes `record.json`.

  A run holds `workdir/run.lock` (`lvae_tf.filesafety.runlock`; multi-worker: the chief) and,
  before writing anything, resumes from the newest intact checkpoint, refuses a budget smaller
  than what the checkpoint trained and removes temporaries of killed writes
  (`lvae_tf.filesafety.recovery`).

  Args:
    config: `Config` (`precision='auto'` is resolved for this device).
    workdir: directory for config, checkpoints, history, TensorBoard logs and the record.
    mnist: optional `lvae_tf.data.ImageData` (default:
      `data.load_dataset(config.dataset, config.data_dir)`).

  Returns:
    The record (a dict), also written atomically to `workdir/record.json`.

  Raises:
    ConfigError: bad configuration or `TF_CONFIG`, unwritable `workdir`, a checkpoint from
      another configuration, no intact checkpoint, a budget below the epochs trained, or
      `workdir` in use by another run (`runlock.RunLockedError`). Nothing is written then.
    lvae_tf.data.DataError: data missing or corrupt.
    lvae_tf.models.NonFiniteLossError: training diverged (no record written).
    lvae_tf.filesafety.WriteError: a checkpoint, history line or record could not be written
      (e.g. disk full); the previous checkpoint and record are intact.
  """
  config = resolve(config)
  config.validate()
  config_lib.check_tf_config(config.strategy)
  # First: MultiWorkerMirroredStrategy must exist before other TF work in the process.
  strategy = make_strategy(config.strategy, config.cluster_timeout)
  mnist = mnist or data_lib.load_dataset(config.dataset, config.data_dir or None)
  chief = _is_chief(strategy)
  if not chief:
    # Every worker takes part in saving (collectives); only the chief writes the real run
    # directory, the others a private scratch copy (the tf.distribute convention).
    workdir = os.path.join(workdir, '.workers', _task_name(strategy))
  new_config = _check_workdir(workdir, config)
  train_images = _subset(mnist.train_images, config.train_images)
  valid_images = _subset(mnist.valid_images, config.valid_images)
  test_images = _subset(mnist.test_images, config.test_images)
  if len(train_images) < config.batch_size:
    raise ConfigError(f'batch_size {config.batch_size} exceeds the '
                      f'{len(train_images)} training images.')
  if config.warm_start:
    _check_warm_start(config)
  check_writable(workdir)
  with runlock.RunLock(workdir) if chief else contextlib.nullcontext():
    fresh = not os.path.exists(os.path.join(workdir, 'config.json'))
    try:
      return _train_and_evaluate(config, workdir, strategy, mnist, chief, train_images,
                                 valid_images, test_images)
    except BaseException:
      if fresh:
        _forget_untrained(workdir)
      raise


def _forget_untrained(workdir):
  """After a failure before any checkpoint: removes what this run wrote that would make its
  corrected command a "different configuration" (config.json) or a resumed run."""
  if os.path.exists(os.path.join(workdir, 'checkpoints')):
    return  # something was trained: kept, the same command resumes it
  for name in ('config.json', 'history.jsonl', 'warm_start.json'):
    try:
      os.remove(os.path.join(workdir, name))
    except FileNotFoundError:
      pass


# The fields that shape the encoder and decoder: a warm start needs them equal.
_WARM_START_FIELDS = ('latent_dim', 'activation', 'init', 'dataset')


def _check_warm_start(config):
  """Refuses a --warm_start run directory that cannot initialise this model (nothing written).

  Raises:
    ConfigError: not a directory, no best checkpoint, an unreadable config.json, or an
      encoder/decoder of another shape (`_WARM_START_FIELDS`).
  """
  run_dir = config.warm_start
  if not os.path.isdir(run_dir):
    raise ConfigError(f'--warm_start={run_dir!r} is not a directory.')
  best = os.path.join(run_dir, 'checkpoints', 'best')
  if tf.train.latest_checkpoint(best) is None:
    raise ConfigError(f'--warm_start={run_dir!r}: no best checkpoint under {best!r}; train '
                      'that run first.')
  try:
    source = schema.read_run_config(run_dir)
  except FileNotFoundError:
    raise ConfigError(f'--warm_start={run_dir!r} has no config.json: not a run directory of '
                      'lvae_tf.train.') from None
  differ = {name: (getattr(source, name), getattr(config, name))
            for name in _WARM_START_FIELDS if getattr(source, name) != getattr(config, name)}
  if differ:
    raise ConfigError(
        f'--warm_start={run_dir!r} trained another encoder/decoder (field: (warm start, this '
        f'run)) {differ}: its weights cannot initialise this model. Warm-start from a run '
        'with the same values, or set them to match.')


def _train_and_evaluate(config, workdir, strategy, mnist, chief, train_images, valid_images,
                        test_images):
  """`train_and_evaluate` once the run directory is checked, writable and locked."""
  binarized = getattr(mnist, 'binarized', False)
  new_config = _check_workdir(workdir, config)  # again: now no other run can change it
  recovery.prepare(workdir, config)  # intact checkpoint, budget, orphans (filesafety.recovery)
  if new_config is not None:  # every check passed: only now is anything written
    filesafety.write_json_atomic(os.path.join(workdir, 'config.json'), new_config)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  keras.utils.set_random_seed(config.seed)

  with strategy.scope():
    model = build_model(
        config, output_bias=models.output_bias_from_images(train_images))
    model.compile(optimizer=keras.optimizers.Adamax(config.learning_rate),
                  jit_compile=config.jit_compile)
    model(tf.zeros([1, 28, 28, 1]))  # create the weights before restoring
    # Create the optimizer slots now: otherwise the first step creates them and TF traces the
    # (large, second-order) training step twice, which makes the first call much slower.
    model.optimizer.build(model.trainable_variables)
    state = ResumableTraining(workdir, model, config.patience,
                              budget_seconds=60. * config.train_minutes,
                              budget_clock=config.budget_clock,
                              keep_epochs=config.curve_epochs())
  initial_epoch = state.restore()
  warm_checkpoint = None
  if config.warm_start and initial_epoch == 0:
    warm_checkpoint = _warm_start(model, config.warm_start)
    _warm_start_record(workdir, warm_checkpoint)

  valid = data_lib.eval_dataset(valid_images, config.eval_batch_size,
                                seed=(config.seed, 1), binarization='fixed',
                                binarized=binarized)
  t0 = time.time()
  if not state.done and not state.out_of_time and initial_epoch < config.max_epochs:
    if initial_epoch:
      print(f'Resuming from epoch {initial_epoch} '
            f'(step {initial_epoch * config.steps_per_epoch}).')
    train = data_lib.train_dataset(
        train_images, config.batch_size, seed=config.seed,
        start_step=initial_epoch * config.steps_per_epoch, binarized=binarized)
    with interrupts.safe_points():  # Ctrl-C / SIGTERM are raised at a batch or epoch end
      model.fit(train, epochs=config.max_epochs, initial_epoch=initial_epoch,
                steps_per_epoch=config.steps_per_epoch, validation_data=valid,
                callbacks=[state,  # progress reads its epoch-end state: after it
                           progress.TrainingProgress(state, config.max_epochs,
                                                     config.steps_per_epoch, config.verbose),
                           keras.callbacks.TensorBoard(
                    os.path.join(workdir, 'tensorboard'), profile_batch=0),
                           visualize.RunImages(os.path.join(workdir, 'tensorboard'),
                                               valid_images[:_PICTURE_IMAGES],
                                               seed=config.seed),
                           SafePoints()],  # last: the other callbacks finish their batch
                verbose=0)  # progress.TrainingProgress shows it
  train_seconds = time.time() - t0
  train_steps = int(model.optimizer.iterations.numpy())
  state.restore_best()
  if config.precision != 'float32':
    # Every reported number is computed in float32, whatever the training precision.
    trained = model
    with strategy.scope():
      model = build_model(config, precision='float32')
      model(tf.zeros([1, 28, 28, 1]))
      model.set_weights(trained.get_weights())
      model.compile(jit_compile=config.jit_compile)

  if chief:
    visualize.write_run_pngs(model, valid_images[:_PICTURE_IMAGES], workdir, seed=config.seed)
  t0 = time.time()
  test = data_lib.eval_dataset(test_images, config.eval_batch_size,
                               seed=(config.seed, 2), binarization='dynamic',
                               binarized=binarized)
  if config.verbose:
    print(f'Test and validation ELBO ({len(test_images)} and {len(valid_images)} images) ...',
          flush=True)
  test_elbo = model.evaluate(test, verbose=progress.keras_verbosity(config.verbose),
                             return_dict=True)['elbo']
  valid_elbo = model.evaluate(valid, verbose=progress.keras_verbosity(config.verbose),
                              return_dict=True)['elbo']
  elbo_seconds = time.time() - t0
  t0 = time.time()
  nll_index = nll_subset_indices(len(test_images), config)
  indices_sha = hashlib.sha256(np.asarray(nll_index, np.int64).tobytes()).hexdigest()[:16]
  # Resumable: a 40-minute NLL killed at batch 15 of 20 restarts at batch 15 (chief only;
  # workers compute the same numbers and keep nothing).
  identity = {'weights': weights_fingerprint(model), 'indices': indices_sha}
  partial = nll_setting_path(workdir, 'nll_partial', config, len(nll_index), config.seed,
                             {'indices': indices_sha}) if chief else None
  if partial:  # progress of the one-file layout of earlier versions, if it is this NLL's
    _adopt_legacy_partial(os.path.join(workdir, 'nll_partial.jsonl'), partial,
                          _nll_identity(identity, len(nll_index), config.seed, config))
  if config.verbose:
    print(f'NLL ({len(nll_index)} test images, S = {config.nll_samples}, '
          f'{config.nll_passes} pass(es)) ...', flush=True)
  nll = evaluate_nll(model, test_images[nll_index], config, config.seed,
                     progress=config.verbose > 0, binarized=binarized, partial_path=partial,
                     identity=identity)
  nll_seconds = time.time() - t0
  t0 = time.time()
  # The classifier behind FID/IS knows MNIST digits only: other datasets skip it.
  fid_samples = config.fid_samples if registry.dataset(config.dataset).classifier_metrics else 0
  if fid_samples and config.verbose:
    print(f'Classifier FID/IS on {fid_samples} samples ...', flush=True)
  quality = sample_quality(model, test_images, fid_samples,
                           seed=config.seed) if fid_samples else {}
  quality_seconds = time.time() - t0
  if quality and config.verbose:
    print(f'Classifier FID {quality["classifier_fid"]:.2f}, IS {quality["classifier_is"]:.2f} '
          f'({quality_seconds:.0f} s).', flush=True)
  t0 = time.time()
  epochs = int(state.epoch.numpy())
  curve = nll_curve(model, workdir, config, test_images, nll_index, state.history(), epochs,
                    binarized=binarized, chief=chief) if config.nll_curve_images else []
  if curve:
    final = {k: nll[k] for k in ('nll_mean', 'nll_sem', 'nll_per_image')}
    curve.append({'epoch': epochs, 'best_epoch': int(state.best_epoch.numpy()) + 1,
                  'train_cpu_minutes': float(state.cpu_seconds.numpy()) / 60.,
                  'nll_test_images': len(nll_index), 'nll_samples': config.nll_samples,
                  'final': True, **final})
  curve_seconds = time.time() - t0

  record = {
      'kind': 'table1_run',
      'run_name': os.path.basename(os.path.normpath(workdir)),
      'protocol': config_lib.protocol_name(config),
      'config': dataclasses.asdict(config),
      'environment': results.environment(),
      'data_source': mnist.source,
      'dataset': config.dataset,
      'warm_start_checkpoint': _warm_start_record(workdir, None),
      'metrics': {
          'test_elbo': float(test_elbo),
          'valid_elbo': float(valid_elbo),
          **nll,
          'nll_test_images': len(nll_index),
          'nll_subset': {'kind': config.nll_subset, 'seed': config.nll_subset_seed,
                         'sha256_of_indices': indices_sha},
          'test_images': len(test_images),
          'best_epoch': int(state.best_epoch.numpy()) + 1,
          'epochs_trained': epochs,
          'train_steps': train_steps,
          'stopped_by': ('patience' if state.done else 'time budget' if state.out_of_time
                         else 'max_epochs' if epochs >= config.max_epochs else 'not finished'),
          'flow_parameters': model.flow_parameters(),
          **quality,
          **({'nll_curve': curve} if curve else {}),
      },
      'history': state.history(),
      'wall_seconds': {'train_total': float(state.train_seconds.numpy()),
                       'train_cpu_total': float(state.cpu_seconds.numpy()),
                       'train_this_invocation': train_seconds,
                       'test_elbo': elbo_seconds, 'nll': nll_seconds,
                       'sample_quality': quality_seconds,
                       **({'nll_curve': curve_seconds} if curve else {})},
  }
  record['environment']['replicas'] = strategy.num_replicas_in_sync
  record['environment']['task'] = ('chief' if chief else _task_name(strategy))
  record['environment']['precision'] = config.precision
  if chief:
    filesafety.write_json_atomic(record_file(workdir, config), record)
    progress.log_hparams(os.path.join(workdir, 'tensorboard', 'hparams'), record)
  return record


def record_file(workdir, config):
  """Where the record of `config`'s evaluation goes in `workdir`.

  `record.json` for the evaluation settings the run was created with (its `config.json`);
  another evaluation of the same run (e.g. other --nll_samples) gets its own
  `record-eval-<hash of the evaluation fields>.json`, and the earlier record is kept.
  """
  evaluation = config.fields_with_role('evaluation')
  try:
    saved = schema.read_run_config(workdir).fields_with_role('evaluation')
  except (OSError, schema.SchemaError):
    saved = evaluation  # no config.json (a worker's scratch directory): the run's own
  if saved == evaluation:
    return os.path.join(workdir, 'record.json')
  digest = hashlib.sha256(json.dumps(evaluation, sort_keys=True).encode()).hexdigest()[:8]
  return os.path.join(workdir, f'record-eval-{digest}.json')


def _warm_start_record(workdir, checkpoint):
  """The warm-start checkpoint used by this run (written when used, read on resume)."""
  path = os.path.join(workdir, 'warm_start.json')
  if checkpoint:
    filesafety.write_json_atomic(path, {'checkpoint': checkpoint})
    return checkpoint
  try:
    with open(path) as f:
      return json.load(f)['checkpoint']
  except (OSError, ValueError, KeyError):
    return None


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
    lvae_tf.schema.SchemaError: a damaged config.json (names the file and field).
    ConfigError: a damaged checkpoint, or one of another model (names the file).
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a run '
                            'directory of lvae_tf.train.train_and_evaluate.')
  config = schema.read_run_config(workdir)
  checkpoint = tf.train.latest_checkpoint(
      os.path.join(workdir, 'checkpoints', which))
  if checkpoint is None:
    raise FileNotFoundError(f'no {which!r} checkpoint under {workdir!r}.')
  problem = recovery.verify_checkpoint(checkpoint)
  if problem:
    raise ConfigError(f'the {which!r} checkpoint of {workdir!r} is unreadable: {problem[0]} '
                      f'({problem[1]}). Retrain the run (move {workdir!r} away first).')
  model = build_model(config, precision='float32')
  model(tf.zeros([1, 28, 28, 1]))
  checkpoint_of = tf.train.Checkpoint(model=model)
  _restore_or_refuse(checkpoint_of, checkpoint, workdir, partial=True)
  return model, config
