"""One schema for every file the program reads back: records, config.json and the JSONL files.

What a run leaves behind is read again by later commands: `record.json` and the published
records (tables, convergence, ablation, figure 2), `config.json` (resuming, figure 2),
`history.jsonl` (resuming, budgets, records) and the partial NLL files (resuming an NLL). Each
reader validates what it reads here, down to the fields it uses and their types, so that a
damaged or hand-edited file ends as one `SchemaError` naming the file and the field, never as
a `KeyError` or `TypeError` deep inside a table.

    record = schema.validate_record(json_value, path)     # a table1_run record
    config = schema.read_run_config(run_dir)              # config.json -> lvae_tf.config.Config
    rows = schema.read_jsonl(path, schema.validate_history_row)

JSONL files are appended one line at a time (`lvae_tf.filesafety.append_text`); a kill can cut the
last line. `read_jsonl` drops such a line (one without its final newline that does not parse):
what it held is computed again. Any other bad line is an error.

No TensorFlow import.
"""

import json
import math
import os

from lvae_tf.config import ConfigError

__all__ = [
    'SchemaError',
    'read_json',
    'read_jsonl',
    'read_run_config',
    'validate_history_row',
    'validate_nll_entry',
    'validate_record',
]


class SchemaError(ConfigError):
  """A file read back is not what the program wrote: names the file and the field.

  A `ConfigError` (exit status 2): the input is bad, nothing is written because of it.

  Attributes:
    path: the file.
    field: the dotted field (`metrics.nll_mean`, `line 3: val_elbo`), or None for the whole file.
  """

  def __init__(self, path, field, problem):
    self.path, self.field, self.problem = path, field, problem
    where = f'{path}' + (f': {field}' if field else '')
    super().__init__(f'{where}: {problem}')


def _kind(value):
  if value is None:
    return 'null'
  if isinstance(value, bool):
    return 'a boolean'
  if isinstance(value, (int, float)):
    return f'the number {value!r}'
  if isinstance(value, str):
    return f'the string {value[:40]!r}'
  return {list: 'a list', dict: 'an object'}.get(type(value), type(value).__name__)


def _is_number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
  """Checks fields of one JSON value of `path`, raising `SchemaError` at the first bad one."""

  def __init__(self, path, prefix=''):
    self.path, self.prefix = path, prefix

  def fail(self, field, expected, value):
    raise SchemaError(self.path, self.prefix + field, f'expected {expected}, got {_kind(value)}.')

  def get(self, obj, field, kind, required=True):
    """`obj[field]` checked to be of `kind` ('object', 'list', 'string', 'int', 'number',
    'finite', 'bool'); a missing optional field is None."""
    if field not in obj:
      if required:
        raise SchemaError(self.path, self.prefix + field, 'missing.')
      return None
    value = obj[field]
    ok = {'object': isinstance(value, dict), 'list': isinstance(value, list),
          'string': isinstance(value, str), 'int': _is_int(value),
          'number': _is_number(value),
          'finite': _is_number(value) and math.isfinite(value),
          'bool': isinstance(value, bool)}[kind]
    if not ok:
      names = {'object': 'an object', 'list': 'a list', 'string': 'a string',
               'int': 'an integer', 'number': 'a number', 'finite': 'a finite number',
               'bool': 'true or false'}
      self.fail(field, names[kind], value)
    return value


def read_json(path):
  """The JSON value of `path`.

  Raises:
    SchemaError: not readable as JSON (the file named; a missing file is `FileNotFoundError`).
  """
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise SchemaError(path, None, f'not readable as JSON ({e}).') from None


_CONFIG_STRINGS = ('flow',)
_CONFIG_INTS = ('num_steps', 'seed')


def _check_config(check, config):
  for name in _CONFIG_STRINGS:
    check.get(config, name, 'string')
  for name in _CONFIG_INTS:
    check.get(config, name, 'int')
  if config['flow'] == 'hvae':
    check.get(config, 'hvae_gradient', 'string')
  for name in ('preset', 'precision', 'nll_subset', 'dataset', 'budget_clock'):
    check.get(config, name, 'string', required=False)
  for name in ('nll_samples', 'nll_test_images', 'max_epochs', 'patience', 'latent_dim'):
    check.get(config, name, 'int', required=False)
  for name in ('step_size', 'damping', 'initial_temperature', 'train_minutes'):
    if config.get(name) is not None:
      check.get(config, name, 'finite')


def validate_history_row(row, check):
  """One `history.jsonl` row (or one of a record's `history`): epoch, clocks, validation ELBO."""
  if not isinstance(row, dict):
    check.fail('', 'an object', row)
  epoch = check.get(row, 'epoch', 'int')
  if epoch < 1:
    check.fail('epoch', 'an integer >= 1', epoch)
  check.get(row, 'val_elbo', 'number')
  for name in ('train_seconds', 'cpu_seconds'):
    check.get(row, name, 'finite')
  check.get(row, 'elbo', 'number', required=False)
  check.get(row, 'step', 'int', required=False)
  return row


def validate_record(record, path):
  """Checks a `table1_run` record down to the fields that tables and figures read.

  Returns:
    `record`.

  Raises:
    SchemaError: naming `path` and the first bad field.
  """
  check = _Checker(path)
  if not isinstance(record, dict):
    check.fail('(the record)', 'an object', record)
  if record.get('kind') != 'table1_run':
    check.fail('kind', "'table1_run'", record.get('kind'))
  check.get(record, 'run_name', 'string')
  protocol = check.get(record, 'protocol', 'string', required=False)
  config = check.get(record, 'config', 'object')
  _check_config(_Checker(path, 'config.'), config)
  if protocol is None:  # records before the protocol was kept: derived from the config
    from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
    try:
      config_lib.protocol_name(config_lib.Config.from_dict(config))
    except (ConfigError, TypeError, ValueError, ArithmeticError) as e:
      raise SchemaError(path, 'protocol', f'missing, and the config does not give one ({e}).'
                        ) from None
  metrics = check.get(record, 'metrics', 'object')
  m = _Checker(path, 'metrics.')
  for name in ('nll_mean', 'nll_sem', 'nll_std', 'test_elbo', 'valid_elbo', 'classifier_fid',
               'classifier_is', 'classifier_is_std'):
    m.get(metrics, name, 'number', required=False)
  for name in ('epochs_trained', 'best_epoch', 'nll_test_images', 'train_steps'):
    m.get(metrics, name, 'int', required=False)
  m.get(metrics, 'flow_parameters', 'object', required=False)
  for name in ('nll_per_image', 'nll_per_pass'):
    values = m.get(metrics, name, 'list', required=False)
    if values is not None and not all(_is_number(v) for v in values):
      m.fail(name, 'a list of numbers', next(v for v in values if not _is_number(v)))
  environment = check.get(record, 'environment', 'object')
  e = _Checker(path, 'environment.')
  e.get(environment, 'device', 'string')
  e.get(environment, 'cpu', 'string', required=False)
  e.get(environment, 'date', 'string', required=False)
  gpus = e.get(environment, 'gpus', 'list', required=False)
  if gpus is not None and not all(isinstance(g, str) for g in gpus):
    e.fail('gpus', 'a list of strings', gpus)
  details = e.get(environment, 'cpu_details', 'object', required=False)
  if details is not None:
    isa = _Checker(path, 'environment.cpu_details.').get(details, 'isa', 'list', required=False)
    if isa is not None and not all(isinstance(f, str) for f in isa):
      e.fail('cpu_details.isa', 'a list of strings', isa)
  seconds = check.get(record, 'wall_seconds', 'object', required=False)
  if seconds is not None:
    s = _Checker(path, 'wall_seconds.')
    for name in seconds:
      if seconds[name] is not None:
        s.get(seconds, name, 'number')
  history = check.get(record, 'history', 'list', required=False)
  for i, row in enumerate(history or ()):
    validate_history_row(row, _Checker(path, f'history[{i}].'))
  return record


def validate_nll_entry(entry, check):
  """One batch of a partial NLL file: `{pass, batch, log_px: [numbers]}`."""
  if not isinstance(entry, dict):
    check.fail('', 'an object', entry)
  check.get(entry, 'pass', 'int')
  check.get(entry, 'batch', 'int')
  values = check.get(entry, 'log_px', 'list')
  if not all(_is_number(v) and math.isfinite(v) for v in values):
    check.fail('log_px', 'a list of finite numbers', values)
  return entry


def read_jsonl(path, validate_row, first=None):
  """The rows of a JSONL file, each checked by `validate_row(row, checker)`.

  A last line cut by a kill (no final newline, not valid JSON) is dropped. Blank lines are
  skipped.

  Args:
    path: the file (missing: `[]`).
    validate_row: `fn(row, checker)` raising through `checker` (see `validate_history_row`).
    first: optional validator of the first line instead (a header).

  Returns:
    `(rows, cut)`: the rows in file order, and whether a cut last line was dropped.

  Raises:
    SchemaError: a line that is not JSON (other than a cut last line), or a bad row; names the
      file, the line number and the field.
  """
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except FileNotFoundError:
    return [], False
  lines = data.split(b'\n')
  cut = False
  if lines and lines[-1].strip():  # no final newline: the last append may have been cut
    try:
      json.loads(lines[-1])
    except ValueError:
      lines, cut = lines[:-1], True
  rows = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    check = _Checker(path, f'line {number}: ')
    try:
      row = json.loads(line)
    except ValueError as e:
      raise SchemaError(path, f'line {number}', f'not valid JSON ({e}).') from None
    (first if first is not None and not rows else validate_row)(row, check)
    rows.append(row)
  return rows, cut


def read_run_config(run_dir):
  """The `Config` of a run directory's `config.json`.

  Raises:
    FileNotFoundError: no `config.json`.
    SchemaError: not JSON, without a `config` object, or a `config` that is not a valid
      configuration of this version (named field).
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(run_dir, 'config.json')
  saved = read_json(path)
  check = _Checker(path)
  if not isinstance(saved, dict):
    check.fail('(the file)', 'an object with "config" and "training_identity"', saved)
  values = check.get(saved, 'config', 'object')
  check.get(saved, 'training_identity', 'object')
  try:
    config = config_lib.Config.from_dict(values)
    config.validate()
  except (ConfigError, TypeError) as e:
    raise SchemaError(path, 'config', f'not a valid configuration: {e}') from None
  return config
