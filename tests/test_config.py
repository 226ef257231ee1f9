"""Configuration as data: one definition per field, identities, flags (no TensorFlow needed)."""

import dataclasses
import subprocess
import sys
import os

import pytest
from absl import flags

from lvae_tf import config as config_lib
from lvae_tf import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu(**overrides):
  return config_lib.Config.from_preset('cpu', **{'precision': 'float32', **overrides})


def test_every_field_has_role_help_and_a_flag():
  values = flags.FlagValues()
  config_flags.define_config_flags(values)
  for field in dataclasses.fields(config_lib.Config):
    assert field.metadata['role'] in config_lib.ROLES, field.name
    assert field.metadata['help'], field.name
    assert config_flags.flag_name(field) in values, field.name


def test_flags_override_the_preset_and_choices_come_from_config():
  values = flags.FlagValues()
  config_flags.define_config_flags(values, default_preset='cpu')
  values(['prog', '--flow=hvae', '--steps=5', '--learning_rate=0.002', '--damping_shape=scalar'])
  config = config_flags.config_from_flags(values)
  assert (config.flow, config.num_steps, config.learning_rate) == ('hvae', 5, 0.002)
  assert config.batch_size == config_lib.PRESETS['cpu']['batch_size']  # from the preset
  assert config.damping_shape == 'scalar'
  assert tuple(values['tempering'].parser.enum_values) == config_lib.CHOICES['tempering']
  with pytest.raises(flags.IllegalFlagValueError):
    values(['prog', '--precision=float16'])


def test_vae_defaults_to_zero_steps():
  assert config_lib.Config.from_preset('cpu', flow='vae').num_steps == 0


def test_run_name_changes_with_training_fields_not_budget_or_evaluation():
  base = _cpu(flow='langevin', num_steps=5, seed=0)
  name = config_lib.run_name(base)
  assert name.startswith('langevin-K5-cpu-seed0-')
  for change in (dict(learning_rate=2e-3), dict(batch_size=50), dict(damping=0.5),
                 dict(seed=1), dict(precision='mixed_bfloat16'), dict(damping_shape='scalar'),
                 dict(dataset='fashion_mnist'), dict(warm_start='runs/vae-a')):
    assert config_lib.run_name(dataclasses.replace(base, **change)) != name, change
  for same in (dict(max_epochs=5), dict(train_minutes=1.), dict(nll_samples=10),
               dict(verbose=0), dict(strategy='mirrored'), dict(tempering='none')):
    # tempering is an HVAE field: a Langevin run does not depend on it
    assert config_lib.run_name(dataclasses.replace(base, **same)) == name, same


def test_explicit_default_equals_implicit():
  """--step_size=0.2 and --damping=<the matched value> name the same run as leaving them out."""
  base = _cpu(flow='langevin', num_steps=5)
  explicit = dataclasses.replace(base, step_size=0.2, damping=base.initial_damping())
  assert config_lib.run_name(explicit) == config_lib.run_name(base)


def test_protocol_shared_across_columns_and_seeds_not_across_budgets():
  cells = [_cpu(flow='vae', seed=0), _cpu(flow='langevin', num_steps=1, seed=1),
           _cpu(flow='langevin', num_steps=10), _cpu(flow='hvae', num_steps=5, seed=2)]
  assert len({config_lib.protocol_name(c) for c in cells}) == 1
  other = [dataclasses.replace(cells[1], train_minutes=10.),
           dataclasses.replace(cells[1], nll_test_images=500),
           dataclasses.replace(cells[1], damping=0.1),
           dataclasses.replace(cells[1], warm_start='runs/vae')]
  for c in other:
    assert config_lib.protocol_name(c) != config_lib.protocol_name(cells[0])


def test_warm_started_cells_share_their_protocol_with_the_continued_vae():
  """The warm grid passes --step_size=0.02 to every cell: the VAE control lands in the flows'
  table, not in the from-scratch one, and its run name ignores the step size."""
  warm = dict(warm_start='runs/vae-K0-cpu-seed0-22b11a', step_size=0.02)
  cells = [_cpu(flow='vae', **warm), _cpu(flow='langevin', num_steps=5, **warm),
           _cpu(flow='hvae', num_steps=5, **warm)]
  assert len({config_lib.protocol_name(c) for c in cells}) == 1
  assert config_lib.protocol_name(cells[0]) != config_lib.protocol_name(_cpu(flow='vae'))
  assert config_lib.run_name(cells[0]) == config_lib.run_name(
      dataclasses.replace(cells[0], step_size=0.2))


def test_matched_damping_equalises_initial_log_det_with_hvae():
  """K nu0 tau0 = (1/2) ln T0 for every K (math.md section 6)."""
  import math  # pylint: disable=g-import-not-at-top
  for k in (1, 5, 10):
    nu0 = _cpu(flow='langevin', num_steps=k).initial_damping()
    assert k * nu0 * 0.2 == pytest.approx(0.5 * math.log(1.5), rel=1e-12)


@pytest.mark.parametrize('change,message', [
    (dict(seed=2**32), 'seed'), (dict(seed=-1), 'seed'), (dict(num_steps=10**6), 'steps'),
    (dict(damping=float('inf')), 'damping'), (dict(learning_rate=float('nan')), 'learning_rate'),
    (dict(train_minutes=-1.), 'train_minutes'), (dict(precision='fp8'), 'precision'),
    (dict(dataset='cifar'), 'dataset'), (dict(train_images=50, batch_size=100), 'batch_size'),
])
def test_validate_names_the_field(change, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    dataclasses.replace(_cpu(), **change).validate()


def test_from_dict_reads_legacy_records():
  legacy = dict(dataclasses.asdict(_cpu(flow='langevin', num_steps=5)), step_size=0.0)
  del legacy['nll_subset'], legacy['precision']
  config = config_lib.Config.from_dict(legacy)
  assert (config.step_size, config.nll_subset, config.precision) == (0.2, 'first', 'float32')
  with pytest.raises(config_lib.ConfigError, match='unknown'):
    config_lib.Config.from_dict({'nonsense': 1})


def test_scripts_import_together():
  """table1 and figure2 share the generated flags: no DuplicateFlagError in one process."""
  code = ('import lvae_tf.cli.table1, lvae_tf.cli.figure2; '
          'from absl import flags; print(flags.FLAGS["steps"].default)')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]


def test_run_names_of_the_published_protocol_are_stable():
  """Names and protocols of committed records must not change when code changes (a new field
  goes into LATER_FIELDS). These are the cpu protocol's names, as published."""
  vae = _cpu(flow='vae', seed=0)
  assert config_lib.run_name(vae) == 'vae-K0-cpu-seed0-22b11a'
  assert config_lib.protocol_name(vae) == 'cpu-7d1379'
  langevin = _cpu(flow='langevin', num_steps=5, seed=0)
  assert config_lib.protocol_name(langevin) == 'cpu-7d1379'


def test_later_fields_at_their_old_value_leave_hashes_unchanged(monkeypatch):
  identity = _cpu(flow='langevin', num_steps=5).training_identity()
  before = config_lib._short_hash(identity)  # pylint: disable=protected-access
  monkeypatch.setitem(config_lib.LATER_FIELDS, 'new_field', 'old behaviour')
  extended = {**identity, 'new_field': 'old behaviour'}
  assert config_lib._short_hash(extended) == before  # pylint: disable=protected-access
  changed = {**identity, 'new_field': 'new behaviour'}
  assert config_lib._short_hash(changed) != before  # pylint: disable=protected-access
