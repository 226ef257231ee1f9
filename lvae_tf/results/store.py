"""The run records of Table 1: reading them, their identity, and where a published one lives.

A record is the JSON file a run writes (`lvae_tf.train`; checked by `lvae_tf.schema`). Its
protocol (`protocol_of`) decides which table it belongs to, its configuration and machine which
run it is (`run_identity`): two records of one run count once (`unique_runs`).
Publishing, under the protocol's lock, is `lvae_tf.results.publishing`.
"""

import dataclasses
import glob
import os
import warnings

from lvae_tf.results.machine import machine_dir
from lvae_tf.results.machine import machine_of

__all__ = ['identity_name', 'load_records', 'protocol_of', 'record_path', 'record_stem',
           'run_identity', 'unique_runs']


def load_records(directory):
  """All Table 1 run records (`*.json`, recursively) under `directory`, sorted by path.

  Each is checked by `lvae_tf.schema.validate_record`. A file that is not a valid record
  (truncated, not JSON, a field missing or of the wrong type) is skipped with a warning naming
  it and the field: one bad file never fails a run or a table, and never vanishes silently.
  JSON files of another kind (no `"kind": "table1_run"`) are ignored.
  """
  from lvae_tf import schema  # pylint: disable=g-import-not-at-top
  records = []
  for path in sorted(glob.glob(os.path.join(glob.escape(directory), '**', '*.json'),
                               recursive=True)):
    try:
      record = schema.read_json(path)
    except OSError as e:
      warnings.warn(f'skipping {path}: not readable ({e}).')
      continue
    except schema.SchemaError as e:
      warnings.warn(f'skipping {path}: not a readable JSON record ({e.problem})')
      continue
    if not isinstance(record, dict) or record.get('kind') != 'table1_run':
      continue
    try:
      schema.validate_record(record, path)
    except schema.SchemaError as e:
      warnings.warn(f'skipping {path}: not a valid table1_run record: {e.field}: {e.problem}')
      continue
    records.append(record)
  return records


def protocol_of(record):
  """The record's protocol name (`lvae_tf.config.protocol_name`)."""
  if 'protocol' in record:
    return record['protocol']
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.protocol_name(config_lib.Config.from_dict(record['config']))


def identity_name(config):
  """The run name that `config` (a record's `config` dict) has by default.

  `lvae_tf.config.run_name`: flow, K, preset, seed and a hash of every training field. With the
  protocol (every training, budget and evaluation field) it is the configuration's identity.
  A config this version cannot read is named by a hash of its non-runtime fields instead.
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  try:
    return config_lib.run_name(config_lib.Config.from_dict(config))
  except (config_lib.ConfigError, TypeError, ValueError, ArithmeticError, AttributeError):
    runtime = {f.name for f in dataclasses.fields(config_lib.Config)
               if f.metadata['role'] == 'runtime'}
    return 'config-' + config_lib._short_hash(  # pylint: disable=protected-access
        {k: v for k, v in config.items() if k not in runtime})


def run_identity(record):
  """`(protocol, machine, identity name)`: two records with equal identities are one run.

  The configuration (`identity_name` and the protocol) and the machine it was measured on
  (`machine_of`): not the run name, which `--run_name` chooses freely.
  """
  return protocol_of(record), machine_of(record), identity_name(record['config'])


def record_stem(run_name, config):
  """A published record's file name without '.json': the run name, then the identity if the
  run name is not the configuration's own (`identity_name`).

  `langevin-K5-cpu-seed0-1a2b3c` (a default name, already the identity) or
  `exp--langevin-K5-cpu-seed0-1a2b3c` (`--run_name=exp`): two configurations published under
  one `--run_name` get two files, never one replacing the other.
  """
  identity = identity_name(config)
  return run_name if run_name == identity else f'{run_name}--{identity}'


def record_path(results_dir, protocol, run_name, environment, config=None):
  """Where `publish` puts a record: `<results_dir>/<protocol>/records/<machine>/<stem>.json`.

  `<stem>` is `record_stem(run_name, config)`, or `run_name` when no `config` is given.
  """
  machine = machine_dir(environment)
  stem = run_name if config is None else record_stem(run_name, config)
  return os.path.join(results_dir, protocol, 'records', *([machine] if machine else []),
                      f'{stem}.json')


def unique_runs(records):
  """`records` with each run (`run_identity`) once: the most recently measured record of it.

  The same configuration published under two run names, or copied, is one run: counted twice,
  it would weigh double in a mean over seeds. A warning names the records left out.
  """
  kept = {}
  for r in records:
    key = run_identity(r)
    other = kept.get(key)
    if other is None:
      kept[key] = r
      continue
    newer, older = sorted((r, other), key=lambda x: str(x['environment'].get('date', '')),
                          reverse=True)
    kept[key] = newer
    warnings.warn(f'{older["run_name"]} and {newer["run_name"]} are the same run (one '
                  f'configuration, {key[1]}): the table counts it once, from '
                  f'{newer["run_name"]} (measured {newer["environment"].get("date", "?")}).')
  return [r for r in records if any(r is k for k in kept.values())]

