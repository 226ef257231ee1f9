"""`train_and_evaluate(config, workdir)`: one run, from configuration to record.

One run = one config (a dataclass, written next to the results) -> one work directory holding
`config.json`, checkpoints (latest and best), TensorBoard logs and `record.json`.
`train_and_evaluate` reads as its stages: build the model, restore its checkpoint (or
warm-start a new run), fit, evaluate (in float32) and publish the record.

Training uses Keras `fit` (progress bar, History, TensorBoard, `tf.distribute`); checkpoints,
early stopping and the time budget live in one callback, `lvae_tf.callbacks.ResumableTraining`,
so a run killed at any moment and started again with the same command continues from its last
completed epoch and ends with the same weights as an uninterrupted run (the data stream and the
flow noise are stateless functions of the global step, see `lvae_tf.data.train_dataset` and
`FlowVAE.train_step`). The NLL, the NLL curve and FID/IS are in `lvae_tf.evaluation`.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import callbacks
from lvae_tf import config as config_lib
from lvae_tf import data as data_lib
from lvae_tf import evaluation
from lvae_tf import filesafety
from lvae_tf import models
from lvae_tf import progress
from lvae_tf import registry
from lvae_tf import results
from lvae_tf import schema
from lvae_tf import visualize
from lvae_tf.filesafety import interrupts
from lvae_tf.filesafety import recovery
from lvae_tf.filesafety import runlock
# Re-exported: `lvae_tf.train.<name>` is where these were first defined.
from lvae_tf.callbacks import ResumableTraining
from lvae_tf.callbacks import SafePoints
from lvae_tf.callbacks import kept_epoch_checkpoint
from lvae_tf.config import Config
from lvae_tf.config import ConfigError
from lvae_tf.config import PRESETS
from lvae_tf.config import check_writable
from lvae_tf.evaluation import evaluate_nll
from lvae_tf.evaluation import nll_curve
from lvae_tf.evaluation import nll_setting_path
from lvae_tf.evaluation import nll_subset_indices
from lvae_tf.evaluation import sample_quality
from lvae_tf.evaluation import weights_fingerprint
from lvae_tf.models import build_model
from lvae_tf.models.builder import resolve_precision

__all__ = [
    'Config',
    'ConfigError',
    'PRESETS',
    'ResumableTraining',
    'SafePoints',
    'build_model',
    'evaluate_nll',
    'kept_epoch_checkpoint',
    'load_trained_model',
    'make_strategy',
    'nll_curve',
    'nll_setting_path',
    'nll_subset_indices',
    'record_file',
    'resolve',
    'resolve_precision',
    'sample_quality',
    'train_and_evaluate',
    'weights_fingerprint',
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


def train_and_evaluate(config, workdir, mnist=None):
  """Trains (resuming if `workdir` holds a checkpoint), evaluates, writes `record.json`.

  A run holds `workdir/run.lock` (`lvae_tf.runlock`; multi-worker: the chief) and, before
  writing anything, resumes from the newest intact checkpoint, refuses a budget smaller than
  what the checkpoint trained and removes temporaries of killed writes (`lvae_tf.recovery`).

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
  run = _prepare(config, workdir, mnist)
  with _locked(run):
    _prepare_workdir(run)
    model, state = _build(run)
    initial_epoch = _restore_or_warm_start(run, model, state)
    train_steps, fit_seconds = _fit(run, model, state, initial_epoch)
    model = _evaluation_model(run, model, state)
    measured, seconds = _evaluate(run, model, state)
    return _publish(run, model, state, train_steps, measured,
                    {'train_this_invocation': fit_seconds, **seconds})


@dataclasses.dataclass(frozen=True)
class _Run:
  """What the stages of `train_and_evaluate` share: the run's settings, directory and data."""
  config: Config  # resolved and validated
  workdir: str  # a non-chief worker's is its private scratch directory
  strategy: 'tf.distribute.Strategy'
  chief: bool
  data: 'data_lib.ImageData'
  train_images: np.ndarray
  valid_images: np.ndarray
  test_images: np.ndarray

  @property
  def binarized(self):
    return getattr(self.data, 'binarized', False)


def _prepare(config, workdir, mnist):
  """Every check that needs no lock: config, cluster, data, run directory (nothing written)."""
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
  _check_workdir(workdir, config)
  run = _Run(config, workdir, strategy, chief, mnist,
             _subset(mnist.train_images, config.train_images),
             _subset(mnist.valid_images, config.valid_images),
             _subset(mnist.test_images, config.test_images))
  if len(run.train_images) < config.batch_size:
    raise ConfigError(f'batch_size {config.batch_size} exceeds the '
                      f'{len(run.train_images)} training images.')
  if config.warm_start:
    _check_warm_start(config)
  check_writable(workdir)
  return run


@contextlib.contextmanager
def _locked(run):
  """Holds the run lock (the chief's); a first attempt that fails before any checkpoint is
  forgotten (`_forget_untrained`), so the corrected command starts afresh."""
  with runlock.RunLock(run.workdir) if run.chief else contextlib.nullcontext():
    fresh = not os.path.exists(os.path.join(run.workdir, 'config.json'))
    try:
      yield
    except BaseException:
      if fresh:
        _forget_untrained(run.workdir)
      raise


def _prepare_workdir(run):
  """Under the lock: checks the run directory again, recovers it, then writes config.json."""
  new_config = _check_workdir(run.workdir, run.config)  # again: now no other run can change it
  recovery.prepare(run.workdir, run.config)  # intact checkpoint, budget, orphans
  if new_config is not None:  # every check passed: only now is anything written
    filesafety.write_json_atomic(os.path.join(run.workdir, 'config.json'), new_config)


def _build(run):
  """Build: the seeded, compiled model (weights and optimizer slots made) and its state."""
  config = run.config
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  keras.utils.set_random_seed(config.seed)
  with run.strategy.scope():
    model = build_model(
        config, output_bias=models.output_bias_from_images(run.train_images))
    model.compile(optimizer=keras.optimizers.Adamax(config.learning_rate),
                  jit_compile=config.jit_compile)
    model(tf.zeros([1, 28, 28, 1]))  # create the weights before restoring
    # Create the optimizer slots now: otherwise the first step creates them and TF traces the
    # (large, second-order) training step twice, which makes the first call much slower.
    model.optimizer.build(model.trainable_variables)
    state = ResumableTraining(run.workdir, model, config.patience,
                              budget_seconds=60. * config.train_minutes,
                              budget_clock=config.budget_clock,
                              keep_epochs=config.curve_epochs())
  return model, state


def _restore_or_warm_start(run, model, state):
  """Restores the latest checkpoint, or warm-starts a new --warm_start run; returns the epoch
  training starts from."""
  initial_epoch = state.restore()
  if run.config.warm_start and initial_epoch == 0:
    _warm_start_record(run.workdir, _warm_start(model, run.config.warm_start))
  return initial_epoch


def _fit(run, model, state, initial_epoch):
  """Fit: trains from `initial_epoch` until patience, budget or `max_epochs` stops it.

  Returns `(train_steps, seconds)`: the optimizer's step count and this call's seconds.
  """
  config = run.config
  t0 = time.time()
  if not state.done and not state.out_of_time and initial_epoch < config.max_epochs:
    if initial_epoch:
      print(f'Resuming from epoch {initial_epoch} '
            f'(step {initial_epoch * config.steps_per_epoch}).')
    train = data_lib.train_dataset(
        run.train_images, config.batch_size, seed=config.seed,
        start_step=initial_epoch * config.steps_per_epoch, binarized=run.binarized)
    with interrupts.safe_points():  # Ctrl-C / SIGTERM are raised at a batch or epoch end
      model.fit(train, epochs=config.max_epochs, initial_epoch=initial_epoch,
                steps_per_epoch=config.steps_per_epoch, validation_data=_valid_dataset(run),
                callbacks=_callbacks(run, state), verbose=0)  # TrainingProgress shows it
  return int(model.optimizer.iterations.numpy()), time.time() - t0


def _callbacks(run, state):
  """`fit`'s callbacks, in order: the state, progress (reads the state), logs, safe points."""
  config, logs = run.config, os.path.join(run.workdir, 'tensorboard')
  return [state,
          progress.TrainingProgress(state, config.max_epochs, config.steps_per_epoch,
                                    config.verbose),
          keras.callbacks.TensorBoard(logs, profile_batch=0),
          visualize.RunImages(logs, run.valid_images[:_PICTURE_IMAGES], seed=config.seed),
          SafePoints()]  # last: the other callbacks finish their batch


def _valid_dataset(run):
  """The validation set, with its fixed binarisation (the same draw every time it is built)."""
  return data_lib.eval_dataset(run.valid_images, run.config.eval_batch_size,
                               seed=(run.config.seed, 1), binarization='fixed',
                               binarized=run.binarized)


def _evaluation_model(run, model, state):
  """The best weights, in a float32 model: every reported number is computed in float32."""
  state.restore_best()
  if run.config.precision == 'float32':
    return model
  with run.strategy.scope():
    evaluated = build_model(run.config, precision='float32')
    evaluated(tf.zeros([1, 28, 28, 1]))
    evaluated.set_weights(model.get_weights())
    evaluated.compile(jit_compile=run.config.jit_compile)
  return evaluated


def _evaluate(run, model, state):
  """Evaluate: pictures, test and validation ELBO, NLL, classifier FID/IS, the NLL curve.

  Returns `(measured, seconds)`: the results by name, and the seconds of each measurement.
  """
  if run.chief:
    visualize.write_run_pngs(model, run.valid_images[:_PICTURE_IMAGES], run.workdir,
                             seed=run.config.seed)
  measured, seconds = {}, {}
  with _timed(seconds, 'test_elbo'):
    measured['test_elbo'], measured['valid_elbo'] = _elbos(run, model)
  nll_index = measured['nll_index'] = nll_subset_indices(len(run.test_images), run.config)
  with _timed(seconds, 'nll'):
    measured['nll'] = evaluation.run_nll(model, run.workdir, run.config, run.test_images,
                                         nll_index, binarized=run.binarized, chief=run.chief)
  with _timed(seconds, 'sample_quality'):
    measured['quality'] = _sample_quality(run, model)
  with _timed(seconds, 'nll_curve'):
    measured['curve'] = _curve(run, model, state, nll_index, measured['nll'])
  if not measured['curve']:
    del seconds['nll_curve']
  return measured, seconds


@contextlib.contextmanager
def _timed(seconds, name):
  """Stores the seconds the `with` body took as `seconds[name]`."""
  t0 = time.time()
  yield
  seconds[name] = time.time() - t0


def _elbos(run, model):
  """`(test ELBO, validation ELBO)`: the test set binarised afresh, validation as in training."""
  config = run.config
  test = data_lib.eval_dataset(run.test_images, config.eval_batch_size,
                               seed=(config.seed, 2), binarization='dynamic',
                               binarized=run.binarized)
  if config.verbose:
    print(f'Test and validation ELBO ({len(run.test_images)} and {len(run.valid_images)} '
          'images) ...', flush=True)
  verbose = progress.keras_verbosity(config.verbose)
  return (model.evaluate(test, verbose=verbose, return_dict=True)['elbo'],
          model.evaluate(_valid_dataset(run), verbose=verbose, return_dict=True)['elbo'])


def _sample_quality(run, model):
  """Classifier FID/IS of the model's samples; {} for datasets the MNIST classifier cannot
  judge, or `fid_samples=0`."""
  config, t0 = run.config, time.time()
  fid_samples = config.fid_samples if registry.dataset(config.dataset).classifier_metrics else 0
  if not fid_samples:
    return {}
  if config.verbose:
    print(f'Classifier FID/IS on {fid_samples} samples ...', flush=True)
  quality = evaluation.sample_quality(model, run.test_images, fid_samples, seed=config.seed)
  if config.verbose:
    print(f'Classifier FID {quality["classifier_fid"]:.2f}, IS {quality["classifier_is"]:.2f} '
          f'({time.time() - t0:.0f} s).', flush=True)
  return quality


def _curve(run, model, state, nll_index, nll):
  """The NLL curve (`evaluation.nll_curve`) ending with this run's NLL; [] if none is kept."""
  config = run.config
  if not config.nll_curve_images:
    return []
  epochs = int(state.epoch.numpy())
  curve = evaluation.nll_curve(model, run.workdir, config, run.test_images, nll_index,
                               state.history(), epochs, binarized=run.binarized,
                               chief=run.chief)
  if curve:
    curve.append({'epoch': epochs, 'best_epoch': int(state.best_epoch.numpy()) + 1,
                  'train_cpu_minutes': float(state.cpu_seconds.numpy()) / 60.,
                  'nll_test_images': len(nll_index), 'nll_samples': config.nll_samples,
                  'final': True, **{k: nll[k] for k in ('nll_mean', 'nll_sem', 'nll_per_image')}})
  return curve


def _publish(run, model, state, train_steps, measured, seconds):
  """Publish: the run's record, written atomically by the chief (`record_file`), with its
  HParams summary; returned on every worker."""
  record = {
      'kind': 'table1_run',
      'run_name': os.path.basename(os.path.normpath(run.workdir)),
      'protocol': config_lib.protocol_name(run.config),
      'config': dataclasses.asdict(run.config),
      'environment': {**results.environment(), 'replicas': run.strategy.num_replicas_in_sync,
                      'task': 'chief' if run.chief else _task_name(run.strategy),
                      'precision': run.config.precision},
      'data_source': run.data.source,
      'dataset': run.config.dataset,
      'warm_start_checkpoint': _warm_start_record(run.workdir, None),
      'metrics': _metrics(run, model, state, train_steps, measured),
      'history': state.history(),
      'wall_seconds': {'train_total': float(state.train_seconds.numpy()),
                       'train_cpu_total': float(state.cpu_seconds.numpy()), **seconds},
  }
  if run.chief:
    filesafety.write_json_atomic(record_file(run.workdir, run.config), record)
    progress.log_hparams(os.path.join(run.workdir, 'tensorboard', 'hparams'), record)
  return record


def _metrics(run, model, state, train_steps, measured):
  """The record's `metrics`: the measurements, how long it trained and why it stopped."""
  config, nll_index, curve = run.config, measured['nll_index'], measured['curve']
  epochs = int(state.epoch.numpy())
  return {
      'test_elbo': float(measured['test_elbo']),
      'valid_elbo': float(measured['valid_elbo']),
      **measured['nll'],
      'nll_test_images': len(nll_index),
      'nll_subset': {'kind': config.nll_subset, 'seed': config.nll_subset_seed,
                     'sha256_of_indices': evaluation.indices_digest(nll_index)},
      'test_images': len(run.test_images),
      'best_epoch': int(state.best_epoch.numpy()) + 1,
      'epochs_trained': epochs,
      'train_steps': train_steps,
      'stopped_by': ('patience' if state.done else 'time budget' if state.out_of_time
                     else 'max_epochs' if epochs >= config.max_epochs else 'not finished'),
      'flow_parameters': model.flow_parameters(),
      **measured['quality'],
      **({'nll_curve': curve} if curve else {}),
  }


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


def record_file(workdir, config):
  """Where the record of `config`'s evaluation goes in `workdir`.

  `record.json` for the evaluation settings the run was created with (its `config.json`);
  another evaluation of the same run (e.g. other --nll_samples) gets its own
  `record-eval-<hash of the evaluation fields>.json`, and the earlier record is kept.
  """
  fields = config.fields_with_role('evaluation')
  try:
    saved = schema.read_run_config(workdir).fields_with_role('evaluation')
  except (OSError, schema.SchemaError):
    saved = fields  # no config.json (a worker's scratch directory): the run's own
  if saved == fields:
    return os.path.join(workdir, 'record.json')
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
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
  callbacks.restore_or_refuse(checkpoint_of, checkpoint, workdir, partial=True)
  return model, config
