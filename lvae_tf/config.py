"""Run configuration as data: `Config`, its allowed values, presets, and a run's identity.

Plain data with no TensorFlow import, so a command line can reject a bad configuration in a
fraction of a second, before TensorFlow loads.

Every field of `Config` is declared once, with its help text, its allowed values (`CHOICES`)
and its *role*, which decides what a change of the field means:

* `column`: which cell of Table 1 the run fills (flow, K, HVAE gradient mode).
* `seed`: the seed; runs that differ only by seed are averaged in a table cell.
* `training`: what the checkpoint depends on. Resuming a run with another value is refused.
* `budget`: how long training may go on (epochs, patience, minutes). A finished run can be
  continued with a larger budget; the record says what was actually trained. A budget under
  which training would have stopped before the epochs already trained is refused
  (`lvae_tf.filesafety.recovery.check_budget`): a record never states a budget that did not
  produce it.
* `evaluation`: how the trained model is measured (NLL samples, test images, FID samples).
* `runtime`: how the run is executed, not what it computes (devices, logging, paths).

From the roles follow the two identities (`run_name`, `protocol_name`): the run directory is
named by the column, the seed and the training fields; a table groups records by protocol (the
preset and every training, budget and evaluation field), so records of different protocols are
never averaged while seeds of one protocol are.

`lvae_tf.config_flags.define_config_flags` turns every field into a command-line flag.
"""

import collections.abc
import dataclasses
import hashlib
import json
import math
import os
import re
from typing import Optional

from lvae_tf import registry

__all__ = [
    'CHOICES',
    'Config',
    'ConfigError',
    'FLOWS',
    'FLOW_FIELDS',
    'PRESETS',
    'check_output_file',
    'check_run_name',
    'check_tf_config',
    'check_writable',
    'fields_read_by',
    'matched_damping',
    'protocol_name',
    'run_name',
]


class ConfigError(ValueError):
  """A configuration that cannot run (bad value, or a checkpoint from another config)."""


# Every set of allowed values, written once: config checks, flags, models and bijectors use these.
_CHOICES = {
    'hvae_gradient': ('reference', 'cached'),
    'tempering': ('fixed', 'free', 'none'),
    'damping_shape': ('per_dimension', 'scalar'),
    'activation': ('softplus', 'relu', 'elu', 'tanh'),
    'init': ('he', 'reference', 'glorot'),
    'precision': ('auto', 'float32', 'mixed_bfloat16'),
    'nll_subset': ('random', 'first'),
    'budget_clock': ('wall', 'cpu'),
    'strategy': ('default', 'mirrored', 'multiworker'),
}
# The flows and data sets are those registered (`lvae_tf.registry`), read at each lookup.
_REGISTERED = {'flow': registry.flow_names, 'dataset': registry.dataset_names}


class _Choices(collections.abc.Mapping):
  """`CHOICES[field]`: the allowed values of a field; flows and data sets as registered now."""

  def __getitem__(self, name):
    if name in _REGISTERED:
      return _REGISTERED[name]()
    return _CHOICES[name]

  def __iter__(self):
    return iter(('flow', *_CHOICES, 'dataset'))

  def __len__(self):
    return len(_CHOICES) + len(_REGISTERED)


CHOICES = _Choices()


def __getattr__(name):
  if name == 'FLOWS':  # the registered flow names, `CHOICES['flow']`
    return registry.flow_names()
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


# Upper bound on K: 10 is the paper's largest; 1000 leaves room for experiments while catching
# typos such as --steps=100000 (hours per training step on a CPU).
MAX_STEPS = 1000

# Upper bounds of the size fields, checked by `Config.validate` before anything is written: far
# above any protocol here (the largest preset value is 5 to 20 times smaller), low enough that a
# typo (an extra zero or three) is refused at once rather than after hours of training, an
# out-of-memory crash after training, or an epoch that never ends (--train_minutes is checked
# at the end of an epoch).
MAX_SIZES = {
    'batch_size': 100_000,
    'eval_batch_size': 100_000,
    'steps_per_epoch': 100_000,
    'max_epochs': 100_000,
    'patience': 100_000,
    'latent_dim': 4096,
    'nll_samples': 100_000,
    'nll_passes': 100,
    'nll_chunk': 10_000,
    'nll_batch_size': 10_000,
    'fid_samples': 1_000_000,
    'nll_test_images': 10_000_000,
    'test_images': 10_000_000,
    'train_images': 10_000_000,
    'valid_images': 10_000_000,
    'nll_curve_images': 10_000_000,
}
# Samples evaluated at once by the NLL (`nll_batch_size` images x `nll_chunk` samples): each
# holds a decoded image, so this bounds the NLL's memory (10**6: a few GB at 784 pixels).
MAX_NLL_BATCH_SAMPLES = 1_000_000
MAX_TRAIN_MINUTES = 10**6  # about two years
MAX_CLUSTER_TIMEOUT = 86400.

# `--run_name` is one path component of this length at most: the published record's file name
# adds the configuration's own run name (`run_name`, under 70 characters), '.json' and a
# temporary's prefix, and must stay within NAME_MAX (255 bytes on every common file system).
MAX_RUN_NAME = 100
_RUN_NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*$')

ROLES = ('column', 'seed', 'training', 'budget', 'evaluation', 'runtime')


def _field(default, role, help_text, flag=None):
  assert role in ROLES, role
  return dataclasses.field(default=default,
                           metadata={'role': role, 'help': help_text, 'flag': flag})


@dataclasses.dataclass
class Config:
  """Everything that defines a run. Defaults are the paper's protocol (math.md section 5)."""
  flow: str = _field('langevin', 'column', 'Model: vae (no flow, K = 0), hvae or langevin.')
  num_steps: int = _field(10, 'column', 'Flow steps K (0 for vae).', flag='steps')
  hvae_gradient: str = _field(
      'reference', 'column',
      'HVAE leapfrog gradients: reference (2K per pass, as the paper) or cached (K + 1).')
  tempering: str = _field('fixed', 'training', 'HVAE tempering scheme (math.md section 3).')
  step_size: float = _field(0.2, 'training', 'Initial flow step size tau / eps, in (0, 0.5).')
  damping: Optional[float] = _field(
      None, 'training',
      'Initial Langevin damping nu0 > 0. Unset: matched to HVAE, K nu0 tau0 = (1/2) ln T0 '
      '(math.md section 6).')
  min_step_size: float = _field(
      0., 'training',
      'Langevin: floor of the learned step size, tau = floor + (0.5 - floor) sigmoid(theta), '
      'in [0, step_size]; 0 = no floor (the paper). Keeps a K = 1 flow from switching itself '
      'off by shrinking its step.')
  damping_shape: str = _field(
      'per_dimension', 'training',
      'Langevin damping: one nu per latent dimension, or one scalar nu (the paper).')
  initial_temperature: float = _field(
      1.5, 'training', 'HVAE initial temperature T0 > 1 (also sets the matched damping).')
  learn_flow: bool = _field(True, 'training', 'Learn step sizes, damping and temperature.')
  latent_dim: int = _field(64, 'training', 'Latent dimension D.')
  activation: str = _field('softplus', 'training', 'Hidden activation of encoder/decoder.')
  init: str = _field('he', 'training',
                     'Weight init: he (default), reference or glorot (models/networks.py).')
  precision: str = _field(
      'auto', 'training',
      'Training compute precision. auto: mixed_bfloat16 on a GPU of compute capability '
      '>= 8, else float32 (on CPUs bf16 was measured no faster, with AMX-BF16 too). '
      'Reported metrics are always computed in float32.')
  dataset: str = _field('mnist', 'training', 'Dataset name (lvae_tf.data.load_dataset).')
  batch_size: int = _field(1000, 'training', 'Training batch size.')
  learning_rate: float = _field(5e-4, 'training', 'Adamax learning rate.')
  steps_per_epoch: int = _field(50, 'training', 'Training steps between validation checks.')
  train_images: int = _field(0, 'training', 'Training images (0 = all; a subset for tests).')
  valid_images: int = _field(0, 'training', 'Validation images (0 = all).')
  eval_batch_size: int = _field(1000, 'training', 'Batch size of validation and test ELBO.')
  warm_start: str = _field(
      '', 'training',
      'Run directory of a trained VAE whose encoder/decoder initialise this model.')
  seed: int = _field(85547, 'seed', 'Random seed, in [0, 2**32).')
  max_epochs: int = _field(2000, 'budget', 'Epoch budget.')
  patience: int = _field(100, 'budget',
                         'Epochs without validation improvement before stopping (0 = never).')
  train_minutes: float = _field(
      0., 'budget', 'Training budget in minutes of --budget_clock, over all resumptions '
      '(0 = none).')
  budget_clock: str = _field(
      'wall', 'budget',
      'Clock of --train_minutes: wall (elapsed time) or cpu (CPU time of the training '
      'process, all threads: the same compute whatever else loads the machine).')
  nll_samples: int = _field(1000, 'evaluation', 'Importance samples S per test image.')
  nll_passes: int = _field(3, 'evaluation', 'Passes over the NLL images (fresh noise each).')
  nll_chunk: int = _field(100, 'evaluation', 'Importance samples evaluated together.')
  nll_batch_size: int = _field(100, 'evaluation', 'Test images per NLL batch.')
  nll_test_images: int = _field(0, 'evaluation', 'Test images used for NLL (0 = all).')
  nll_subset: str = _field(
      'random', 'evaluation',
      'Which test images the NLL uses: a fixed random subset (seeded by nll_subset_seed, the '
      'same for every model) or the first ones.')
  nll_subset_seed: int = _field(0, 'evaluation', 'Seed of the random NLL subset.')
  test_images: int = _field(0, 'evaluation',
                            'Test images for the test ELBO and FID reference (0 = all 10k).')
  fid_samples: int = _field(10000, 'evaluation',
                            'Generated images for classifier FID/IS (0 = skip).')
  jit_compile: bool = _field(False, 'runtime', 'Compile train/test steps with XLA.')
  deterministic: bool = _field(False, 'runtime', 'Enable TF op determinism.')
  strategy: str = _field('default', 'runtime',
                         'tf.distribute strategy (multiworker reads TF_CONFIG).')
  cluster_timeout: float = _field(
      300., 'runtime',
      'Seconds a multi-worker run waits at start-up for every other worker of TF_CONFIG to '
      'answer before it stops naming those that did not.')
  data_dir: str = _field('', 'runtime', 'TFDS data directory (for TFDS datasets).')
  preset: str = _field('custom', 'runtime', 'Preset the defaults came from.')
  verbose: int = _field(
      2, 'runtime',
      'Console output: 0 silent; 1 or 2 progress (a bar on a terminal, one line per epoch '
      "otherwise); 3 as 2, plus TensorFlow's start-up log.")
  # The NLL curve adds metrics; it changes no other number of the record, so it is not part
  # of the protocol (records with and without a curve share their table).
  checkpoint_epochs: str = _field(
      '5,10,20,30,40,80,160,320,640,1280', 'runtime',
      'Comma-separated epochs at which the best-so-far weights are kept '
      '(checkpoints/epochs/epoch-NNNN), for the NLL curve.')
  nll_curve_images: int = _field(
      0, 'runtime',
      'Test images of the NLL at each kept epoch (metrics.nll_curve; drawn inside the NLL '
      'subset, the same for every model of a protocol, one pass); 0 = no curve.')

  @classmethod
  def from_preset(cls, preset='paper', **overrides):
    """The preset's values, then `overrides` (field names), as a `Config`."""
    if preset not in PRESETS:
      raise ConfigError(f'unknown preset {preset!r}; expected one of {tuple(PRESETS)}.')
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ConfigError(f'unknown config fields {sorted(unknown)}.')
    values = {**PRESETS[preset], **overrides}
    if ('num_steps' not in overrides and values.get('flow') in registry.flow_names() and
        not registry.flow(values['flow']).has_steps):
      values['num_steps'] = 0
    return cls(preset=preset, **values)

  @classmethod
  def from_dict(cls, values):
    """A `Config` from a saved `config` dict, including those of earlier versions.

    Fields missing from an older record get the value that version used (not today's
    default): `nll_subset='first'`, `precision='float32'`; `step_size=None` meant 0.2.
    Unknown fields raise `ConfigError`.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
      raise ConfigError(f'unknown config fields {sorted(unknown)}.')
    values = {**_LEGACY, **values}
    if not values.get('step_size'):
      values['step_size'] = 0.2
    return cls(**values)

  def validate(self):
    """Raises `ConfigError` naming the bad field, its value and what was expected."""
    def need(cond, msg):
      if not cond:
        raise ConfigError(msg)
    for name, allowed in CHOICES.items():
      value = getattr(self, name)
      need(value in allowed, f'{name} must be one of {allowed}, got {value!r}.')
    need(0 <= self.num_steps <= MAX_STEPS,
         f'steps (K) must be in [0, {MAX_STEPS}], got {self.num_steps}.')
    has_steps = registry.flow(self.flow).has_steps
    need(has_steps or self.num_steps == 0,
         f"flow {self.flow!r} has no flow steps: steps must be 0, got {self.num_steps}.")
    need(not has_steps or self.num_steps >= 1,
         f'flow {self.flow!r} needs steps >= 1, got {self.num_steps} '
         '(use --flow=vae for K = 0).')
    need(_finite(self.step_size) and 0 < self.step_size < 0.5,
         f'step_size must be in (0, 0.5), got {self.step_size}.')
    need(_finite(self.min_step_size) and 0 <= self.min_step_size <= self.step_size,
         f'min_step_size must be in [0, step_size = {self.step_size}], got '
         f'{self.min_step_size}.')
    need(self.damping is None or (_finite(self.damping) and self.damping > 0),
         f'damping must be a finite number > 0 (or unset for the matched default), got '
         f'{self.damping}.')
    need(_finite(self.initial_temperature) and self.initial_temperature > 1,
         f'initial_temperature must be a finite number > 1, got {self.initial_temperature}.')
    for name in ('batch_size', 'eval_batch_size', 'steps_per_epoch', 'max_epochs',
                 'nll_samples', 'nll_passes', 'nll_chunk', 'nll_batch_size', 'latent_dim'):
      need(isinstance(getattr(self, name), int) and getattr(self, name) > 0,
           f'{name} must be a positive integer, got {getattr(self, name)!r}.')
    for name, bound in MAX_SIZES.items():
      value = getattr(self, name)
      need(isinstance(value, int) and value <= bound,
           f'{name} must be an integer of at most {bound:,}, got {value!r}.')
    need(self.nll_batch_size * self.nll_chunk <= MAX_NLL_BATCH_SAMPLES,
         f'nll_batch_size x nll_chunk (samples decoded at once by the NLL) must be at most '
         f'{MAX_NLL_BATCH_SAMPLES:,}, got {self.nll_batch_size} x {self.nll_chunk}.')
    need(_finite(self.cluster_timeout) and 0 < self.cluster_timeout <= MAX_CLUSTER_TIMEOUT,
         f'cluster_timeout must be in (0, {MAX_CLUSTER_TIMEOUT:g}] seconds, got '
         f'{self.cluster_timeout}.')
    need(self.patience >= 0, f'patience must be >= 0, got {self.patience}.')
    need(_finite(self.learning_rate) and self.learning_rate > 0,
         f'learning_rate must be a finite number > 0, got {self.learning_rate}.')
    need(_finite(self.train_minutes) and 0 <= self.train_minutes <= MAX_TRAIN_MINUTES,
         f'train_minutes must be in [0, {MAX_TRAIN_MINUTES:,}] (0 = no limit), got '
         f'{self.train_minutes}.')
    need(self.fid_samples == 0 or self.fid_samples >= 10,
         f'fid_samples must be 0 (skip) or >= 10, got {self.fid_samples}.')
    for name in ('nll_test_images', 'test_images', 'train_images', 'valid_images'):
      need(getattr(self, name) >= 0,
           f'{name} must be >= 0 (0 = all), got {getattr(self, name)}.')
    for name in ('seed', 'nll_subset_seed'):
      need(0 <= getattr(self, name) < 2**32,
           f'{name} must be in [0, 2**32), got {getattr(self, name)}.')
    need(self.verbose in (0, 1, 2, 3), f'verbose must be 0, 1, 2 or 3, got {self.verbose}.')
    try:
      if any(e > MAX_SIZES['max_epochs'] for e in self.curve_epochs()):
        raise ValueError(self.checkpoint_epochs)
    except ValueError:
      raise ConfigError(f'checkpoint_epochs must be comma-separated positive integers (at '
                        f'most {MAX_SIZES["max_epochs"]:,}), got '
                        f'{self.checkpoint_epochs!r}.') from None
    need(self.nll_curve_images >= 0,
         f'nll_curve_images must be >= 0 (0 = no curve), got {self.nll_curve_images}.')
    need(self.preset in PRESETS or self.preset == 'custom',
         f'preset must be one of {tuple(PRESETS)}, got {self.preset!r}.')
    need(self.train_images == 0 or self.train_images >= self.batch_size,
         f'batch_size {self.batch_size} exceeds the {self.train_images} training images '
         '(--train_images).')

  def curve_epochs(self):
    """The sorted epochs of `checkpoint_epochs` (ValueError if it is not a list of them)."""
    text = self.checkpoint_epochs
    if not isinstance(text, str):
      raise ValueError(text)
    epochs = sorted({int(e) for e in text.split(',') if e.strip()})
    if any(e <= 0 for e in epochs):
      raise ValueError(text)
    return epochs

  # -- Identity. ---------------------------------------------------------------

  def fields_with_role(self, *roles):
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.metadata['role'] in roles}

  def initial_damping(self):
    """The Langevin damping nu0 the model starts from (`damping`, or the matched default)."""
    if self.damping is not None:
      return float(self.damping)
    return matched_damping(max(self.num_steps, 1), self.step_size, self.initial_temperature)

  def training_identity(self):
    """What a checkpoint depends on: resuming with other values is refused."""
    identity = self.fields_with_role('column', 'seed', 'training')
    identity['damping'] = (self.initial_damping() if 'damping' in fields_read_by(self.flow)
                           else None)
    identity['warm_start'] = os.path.basename(os.path.normpath(self.warm_start)) \
        if self.warm_start else ''
    return _normalise_for_flow(identity, self.flow)


# What runs recorded before these fields existed actually did.
_LEGACY = {'nll_subset': 'first', 'precision': 'float32'}


def _finite(x):
  return isinstance(x, (int, float)) and math.isfinite(x)


def matched_damping(num_steps, step_size, initial_temperature):
  """nu0 with `K nu0 tau0 = (1/2) ln T0`: Langevin starts with HVAE's volume contraction.

  The Langevin flow's log-det is `-K sum_d nu_d tau_d`, the tempered leapfrog's
  `-(D/2) ln T0`; with this nu0 both flows start with the same momentum contraction per latent
  dimension, whatever K (math.md section 6).
  """
  return 0.5 * math.log(initial_temperature) / (num_steps * step_size)


# The flow-specific fields: each flow reads those its spec lists (`FlowSpec.reads`). A record
# of another flow carries the field's default, so that, e.g., a VAE run and a Langevin run of
# one protocol share the protocol name.
FLOW_FIELDS = ('hvae_gradient', 'tempering', 'initial_temperature', 'damping', 'damping_shape',
               'min_step_size', 'step_size', 'learn_flow')


def fields_read_by(flow):
  """The fields `flow`'s `FlowSpec.reads` lists; none for a flow that is not registered."""
  return registry.flow(flow).reads if flow in registry.flow_names() else ()


def _normalise_for_flow(values, flow):
  defaults = {f.name: f.default for f in dataclasses.fields(Config)}
  reads = fields_read_by(flow)
  return {name: (defaults[name] if name in FLOW_FIELDS and name not in reads else value)
          for name, value in values.items()}


# Fields added after the first published records, with the value that reproduces what those
# records did. At that value a field is left out of the hashes, so existing run names and
# protocols keep their hash (and their checkpoints and tables) when a field is added; a saved
# identity without the field reads as that value. Add every new Config field here.
LATER_FIELDS = {'min_step_size': 0.}


def _short_hash(values, n=6):
  values = {k: v for k, v in values.items()
            if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
  text = json.dumps(values, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:n]


def _flow_label(config):
  return registry.flow_label(config)


def run_name(config):
  """The run's directory name: readable column, preset and seed, and a hash of the rest.

  `langevin-K5-cpu-seed0-1a2b3c`: two runs share a name exactly when they share every
  column, seed and training field, i.e. when one can resume the other's checkpoint.
  """
  return (f'{_flow_label(config)}-K{config.num_steps}-{config.preset}-seed{config.seed}-'
          f'{_short_hash(config.training_identity())}')


def protocol_identity(config):
  """The fields a table cell must share: training, budget and evaluation, not column or seed."""
  values = config.fields_with_role('training', 'budget', 'evaluation')
  values['damping'] = config.damping  # the rule (None = matched), not the per-K value
  values['warm_start'] = bool(config.warm_start)
  values['preset'] = config.preset
  values = _normalise_for_flow(values, config.flow)
  # The flows' initial step size labels the whole table, the VAE's cell included: a VAE run
  # with --step_size=0.02 belongs to the table whose flows start at 0.02 (the warm-started
  # grid). Its checkpoint does not depend on it (`training_identity` normalises it away).
  values['step_size'] = config.step_size
  return values


def protocol_name(config):
  """`cpu-9f8e7d`: the preset and a hash of `protocol_identity`."""
  return f'{config.preset}-{_short_hash(protocol_identity(config))}'


# Presets are data: field values over the defaults (the paper's protocol).
PRESETS = {
    # The paper's budget reads "steps" as epochs (math.md section 5): 50 steps of batch 1000.
    'paper': dict(batch_size=1000, steps_per_epoch=50, max_epochs=2000, patience=100,
                  nll_samples=1000, nll_passes=3, nll_curve_images=1000),
    # The CPU protocol (docs/results/table1.md): batch 100, Adamax 1e-3, validation on all 10k
    # every epoch of 500 steps, early stopping after 10 epochs without improvement, a budget
    # of 60 CPU-minutes of training per model (about 35 wall-clock minutes on an idle 2-core
    # machine; CPU time so that runs sharing the machine get the same compute); NLL with
    # S = 1000 on a fixed random 2,000 test images. HVAE
    # with cached gradients (K + 1 per pass; the same map as the reference's 2K, math.md
    # section 3): under a time budget the honest baseline. float32 on every device, so the
    # committed protocol (and its hash) does not depend on the machine; --precision=
    # mixed_bfloat16 is then a different protocol.
    'cpu': dict(hvae_gradient='cached', precision='float32', batch_size=100, learning_rate=1e-3,
                steps_per_epoch=500, max_epochs=1000,
                patience=10, train_minutes=60., budget_clock='cpu', nll_samples=1000, nll_passes=1,
                nll_test_images=2000, nll_subset='random', nll_curve_images=500),
    # Smoke runs, minutes on a 2-core CPU: batch 100, lr 1e-3, 1,200 steps,
    # validation on 2,000 images, NLL with S = 100 on 500 test images, one pass.
    'quick': dict(batch_size=100, learning_rate=1e-3, steps_per_epoch=200, max_epochs=6,
                  patience=6, eval_batch_size=500, valid_images=2000, nll_samples=100,
                  nll_passes=1, nll_chunk=50, nll_test_images=500),
    # Seconds: for tests and smoke runs only; its numbers mean nothing.
    'tiny': dict(batch_size=20, steps_per_epoch=3, max_epochs=2, patience=2, latent_dim=8,
                 eval_batch_size=50, nll_samples=6, nll_passes=2, nll_chunk=3,
                 nll_batch_size=25, nll_test_images=50, train_images=200, valid_images=50,
                 test_images=200, fid_samples=100),
}


def check_run_name(name):
  """Refuses a `--run_name` that is not one plain path component of bounded length.

  A run name becomes a directory under `--workdir` and a published record's file name: '/',
  '..' or an absolute path would put them elsewhere, and a name past `MAX_RUN_NAME` characters
  would fail to publish (ENAMETOOLONG) after the whole run. Called before anything is written.

  Raises:
    ConfigError: naming what is wrong and what is expected.
  """
  expected = (f'one path component of at most {MAX_RUN_NAME} characters: letters, digits and '
              "'_.+=@,-', not starting with '.' or '-' (e.g. langevin-K5-seed0)")
  if not isinstance(name, str) or not name:
    raise ConfigError(f'--run_name must be {expected}; got {name!r}.')
  if len(name) > MAX_RUN_NAME:
    raise ConfigError(f'--run_name is {len(name)} characters long; it must be {expected}.')
  if os.path.isabs(name) or '/' in name or os.sep in name:
    raise ConfigError(f'--run_name={name!r} is a path; it must be {expected}. Choose the '
                      'parent directory with --workdir.')
  if not _RUN_NAME.match(name):
    raise ConfigError(f'--run_name={name!r} is not allowed; it must be {expected}.')


def check_output_file(path):
  """Refuses an output file path that is a directory or lies in a directory that cannot be
  written, before any work is done (creates no directory)."""
  if not path:
    raise ConfigError('an output file path must not be empty.')
  if os.path.isdir(path):
    raise ConfigError(f'{path!r} is a directory; give the path of the file to write (e.g. '
                      f'{os.path.join(path, "figure.png")!r}).')
  check_writable(os.path.dirname(path) or '.', keep=False)


def check_writable(directory, keep=True):
  """Creates `directory` if needed and proves it writable, or raises `ConfigError`.

  Args:
    directory: path of an output directory.
    keep: keep the directories created for the check; `False` removes those it created (so a
      command that fails later has written nothing).
  """
  if not directory:
    raise ConfigError('an output directory must not be empty.')
  created = []
  path = os.path.abspath(directory)
  while not os.path.exists(path):
    created.append(path)
    path = os.path.dirname(path)
  probe = os.path.join(directory, f'.write-test-{os.getpid()}')
  try:
    os.makedirs(directory, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('ok')
  except OSError as e:
    raise ConfigError(f'output directory {directory!r} is not writable: {e}.') from e
  finally:
    if os.path.exists(probe):
      os.remove(probe)
    if not keep:
      for d in created:  # innermost first: leave no empty directories behind
        if os.path.isdir(d) and not os.listdir(d):
          os.rmdir(d)


def check_tf_config(strategy, environ=None):
  """Refuses a `TF_CONFIG` that is set but not a cluster description, with a clear message.

  `--strategy=multiworker` reads the cluster from `TF_CONFIG`; a malformed one would fail deep
  inside TensorFlow with a traceback. It is checked whatever the strategy: a `TF_CONFIG` left
  set by mistake is refused rather than silently ignored. Unset or empty: nothing to check.

  Raises:
    ConfigError: not JSON, not an object, or (multiworker) a bad `cluster` or `task`.
  """
  text = (os.environ if environ is None else environ).get('TF_CONFIG', '')
  if not text.strip():
    return
  example = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
             '"task": {"type": "worker", "index": 0}}')
  try:
    spec = json.loads(text)
  except ValueError as e:
    raise ConfigError(f'TF_CONFIG is not valid JSON ({e}): {text[:200]!r}. Set it to the '
                      f'cluster description ({example}) or unset it.') from None
  if not isinstance(spec, dict):
    raise ConfigError(f'TF_CONFIG must be a JSON object ({example}), got {text[:200]!r}.')
  if strategy != 'multiworker':
    return
  cluster, task = spec.get('cluster'), spec.get('task')
  if not (isinstance(cluster, dict) and cluster and all(
      isinstance(v, list) and v and all(isinstance(a, str) for a in v)
      for v in cluster.values())):
    raise ConfigError(f'TF_CONFIG["cluster"] must map task types to lists of "host:port" '
                      f'addresses ({example}), got {cluster!r}.')
  if isinstance(task, dict) and task.get('type') == 'evaluator':
    return  # an evaluator task is not part of the cluster
  if not (isinstance(task, dict) and task.get('type') in cluster and
          isinstance(task.get('index'), int) and
          0 <= task['index'] < len(cluster[task['type']])):
    raise ConfigError(f'TF_CONFIG["task"] must name a type of the cluster '
                      f'({sorted(cluster)}) and an index within it, got {task!r}.')
