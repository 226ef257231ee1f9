"""Result records: atomic JSON writes, environment description, and the Table 1 layout."""

import contextlib
import dataclasses
import datetime
import fcntl
import glob
import math
import os
import platform
import re
import warnings

from lvae_tf import registry
# The atomic writes moved to lvae_tf.filesafety; their old names here keep working.
from lvae_tf.filesafety import WriteError
from lvae_tf.filesafety import append_text
from lvae_tf.filesafety import as_write_error
from lvae_tf.filesafety import atomic_path
from lvae_tf.filesafety import remove_orphan_temporaries
from lvae_tf.filesafety import write_json_atomic
from lvae_tf.filesafety import write_text_atomic

__all__ = [
    'WriteError',
    'append_text',
    'as_write_error',
    'atomic_path',
    'environment',
    'find_published',
    'load_records',
    'machine_dir',
    'machine_labels',
    'machine_of',
    'markdown_table',
    'protocol_of',
    'record_path',
    'record_stem',
    'run_identity',
    'publish',
    'refresh_embedded_tables',
    'remove_orphan_temporaries',
    'table1_markdown',
    'unique_runs',
    'write_json_atomic',
    'write_tables',
    'write_text_atomic',
]


def cpuinfo():
  """The first processor's `/proc/cpuinfo` fields (`{'model name': ..., 'flags': ...}`); {} off Linux."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if not line.strip():
          break
        key, _, value = line.partition(':')
        fields[key.strip()] = value.strip()
  except OSError:
    pass
  return fields


# The instruction sets that decide training speed here (bf16 above all: math.md section 7).
_ISA_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16')


def _cpu_name():
  return cpuinfo().get('model name') or platform.processor() or platform.machine()


def _cpu_details():
  """`{'family', 'model', 'isa'}`: the CPU beyond its often generic name ('AMD EPYC')."""
  info = cpuinfo()
  flags = set(info.get('flags', '').split())
  return {'family': info.get('cpu family'), 'model': info.get('model'),
          'isa': [f for f in _ISA_FLAGS if f in flags]}


def environment():
  """Package versions and devices, for every record."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  gpus = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    gpus.append(details.get('device_name', gpu.name))
  return {
      'python': platform.python_version(),
      'tensorflow': tf.__version__,
      'tensorflow_probability': tfp.__version__,
      'tf_keras': tf_keras.__version__,
      'numpy': np.__version__,
      'cpu': _cpu_name(),
      'cpu_details': _cpu_details(),
      'cpu_count': os.cpu_count(),
      'gpus': gpus,
      'device': gpus[0] if gpus else f'CPU ({_cpu_name()}, {os.cpu_count()} cores)',
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
  }


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


def machine_dir(environment):
  """The records subdirectory of a machine: 'amd-epyc-2c-f25m17', 'nvidia-a100-sxm4-40gb'.

  None for an environment without `cpu_details` (records written before it was kept, which
  live directly in `records/`). One run measured on two machines is two records: a CPU-time
  budget buys different compute on each (`machine_of`).
  """
  if environment.get('gpus'):
    name = environment['gpus'][0]
  elif environment.get('cpu_details'):
    details = environment['cpu_details']
    name = (f"{environment.get('cpu', 'cpu')} {environment.get('cpu_count')}c "
            f"f{details.get('family')}m{details.get('model')}")
  else:
    return None
  return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


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


@contextlib.contextmanager
def locked(directory):
  """Holds an exclusive `flock` on `directory` itself (no lock file) while the block runs.

  Every writer of a protocol's records and table takes it, so that concurrent publishers
  rebuild the table one after the other, each from every record written so far: the last
  table lists them all. Works on a read-only directory too (the lock is on an open file
  descriptor of it).
  """
  fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


def find_published(results_dir, record_or_config, environment):
  """The path of a published record of the same configuration on this machine, or None.

  `--skip_if_published` asks this: configurations are compared (`run_identity`), whatever
  their run names.

  Args:
    results_dir: the `--results_dir` root.
    record_or_config: a record, or a `config` dict (`dataclasses.asdict(config)`).
    environment: this machine's `environment()`.
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config = record_or_config.get('config', record_or_config)
  protocol = config_lib.protocol_name(config_lib.Config.from_dict(config))
  wanted = (protocol, machine_of({'environment': environment}), identity_name(config))
  directory = os.path.dirname(record_path(results_dir, protocol, 'x', environment))
  from lvae_tf import schema  # pylint: disable=g-import-not-at-top
  for path in sorted(glob.glob(os.path.join(glob.escape(directory), '*.json'))):
    try:
      record = schema.validate_record(schema.read_json(path), path)
    except (OSError, schema.SchemaError):
      continue  # not a record of this run (the tables warn about bad files)
    if run_identity(record) == wanted:
      return path
  return None


def publish(record, results_dir):
  """Copies a run record into `<results_dir>/<protocol>/records/<machine>/` and rebuilds that
  protocol's table (`record_path`).

  The record's file is named by its run name and, for a `--run_name` of the user's, its
  configuration (`record_stem`): a record of another configuration is never replaced; a
  record of the same configuration and name (the same run, evaluated again) is. Record and
  table are written under the protocol directory's lock (`locked`), the table rebuilt from
  every record there, so concurrent publishers never lose a row.

  Returns:
    `(record_path, table_markdown)`.
  """
  protocol = protocol_of(record)
  directory = os.path.join(results_dir, protocol)
  path = record_path(results_dir, protocol, record['run_name'], record.get('environment', {}),
                     record['config'])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with locked(directory):
    # Temporaries of this record and of the table left by a killed publish.
    remove_orphan_temporaries(os.path.dirname(path), [os.path.basename(path)])
    remove_orphan_temporaries(directory, ['table1.md'])
    write_json_atomic(path, record)
    table = table1_markdown(load_records(os.path.join(directory, 'records')))
    write_text_atomic(os.path.join(directory, 'table1.md'), table)
  return path, table


def write_tables(results_dir):
  """Rebuilds `<results_dir>/<protocol>/table1.md` for every protocol; returns their paths.

  Each protocol's records are read and its table written under the protocol directory's lock
  (`locked`), as `publish` does.
  """
  protocols = sorted({protocol_of(r) for r in load_records(results_dir)})
  paths = []
  for protocol in protocols:
    directory = os.path.join(results_dir, protocol)
    path = os.path.join(directory, 'table1.md')
    with locked(directory):
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # warned about above already
        records = [r for r in load_records(results_dir) if protocol_of(r) == protocol]
      write_text_atomic(path, table1_markdown(records))
    paths.append(path)
  return paths


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


def _flow_titles():
  """`{label: title}` of the registered flows (`lvae_tf.registry`), in registration order."""
  return {v.label: v.title for v in registry.variants()}


def _column(record):
  c = record['config']
  return registry.flow_label(c), c['num_steps']


def _sorted_columns(columns):
  """Table 1's column order: the flows' registration order (VAE, Langevin, HVAE (2K), HVAE
  cached); by K within a flow."""
  order = {k: i for i, k in enumerate(_flow_titles())}
  return sorted(columns, key=lambda c: (order.get(c[0], 99), c[1]))


def _column_title(column):
  flow, k = column
  return f'{_flow_titles().get(flow, flow)} K={k}'


def _baseline_label():
  """The label of the model every flow is paired against (the registry's `baseline`, 'vae')."""
  return next((s.variants[0].label for s in registry.flows() if s.baseline), None)


def _paired_title(label, labels):
  """The title of a paired-against flow in a row name: the variant's when `labels` hold
  several variants of its flow ('HVAE cached (K+1)'), else the flow's ('HVAE')."""
  flow = registry.variant(label).flow
  same = [l for l in labels if registry.variant(l).flow == flow]
  return registry.variant(label).title if len(same) > 1 else registry.flow(flow).title


def _paired_labels(label, columns):
  """The columns' labels a flow's runs are paired against at the same K (Langevin: the HVAE
  variants), sorted."""
  if label is None:
    return []
  spec = registry.flow(registry.variant(label).flow) if label in _flow_titles() else None
  others = {v.label for s in (spec.paired_with if spec else ())
            if s in registry.flow_names() for v in registry.flow(s).variants}
  return sorted({c[0] for c in columns} & others)


def _fmt(values, digits=2):
  """One run: `value ± its own uncertainty`; several seeds: `mean ± std over seeds (n)`."""
  if not values:
    return ''
  if len(values) == 1:
    mean, err = values[0][:2]
    return f'{mean:.{digits}f} ± {err:.{digits}f}' if err else f'{mean:.{digits}f}'
  means = [v[0] for v in values]
  mean = sum(means) / len(means)
  std = (sum((m - mean) ** 2 for m in means) / (len(means) - 1)) ** 0.5
  return f'{mean:.{digits}f} ± {std:.{digits}f} ({len(values)})'


def _per_seed(values, interval=False):
  """`s0 87.43 · s1 87.61`: each seed's value, in seed order ('' for fewer than two).

  With `interval`, the 95 % Student-t interval of the seeds' mean follows (for paired
  differences, where the question is whether the mean over seeds excludes zero).
  """
  if len(values) < 2:
    return ''
  by_seed = sorted(values, key=lambda v: v[2])
  text = ' · '.join(f's{seed} {value:.2f}' for value, _, seed in by_seed)
  if interval:
    low, high = t_interval([v[0] for v in values])
    text += f'; 95 % t interval {low:.2f} to {high:.2f}'
  return text


def t_interval(values, confidence=0.95):
  """The Student-t confidence interval of the mean of `values` (n >= 2 independent draws).

  Returns:
    `(low, high)`: mean -+ t(1 - (1 - confidence) / 2, n - 1) * std / sqrt(n), std with n - 1.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  n = len(values)
  if n < 2:
    raise ValueError(f't_interval needs at least 2 values, got {n}.')
  mean = sum(values) / n
  std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
  t = float(tfp.distributions.StudentT(df=np.float64(n - 1), loc=np.float64(0.),
                                       scale=np.float64(1.)).quantile(0.5 + confidence / 2.))
  return mean - t * std / n ** 0.5, mean + t * std / n ** 0.5


def _seed_differences(reference_seed, differences):
  """`s1 − s0 0.19 ± 0.18 · ...`: each seed's paired NLL difference to `reference_seed`'s."""
  return ' · '.join(f's{seed} − s{reference_seed} {diff:.2f} ± {se:.2f}'
                    for diff, se, seed in differences)


def _data_line(dataset):
  """What Table 1 says of the data: the data set's `DatasetSpec.describe_data()`."""
  if dataset in registry.dataset_names():
    return registry.dataset(dataset).describe_data()
  return registry.DatasetSpec(dataset, loader=None).describe_data()


def machine_of(record):
  """The machine a record was measured on, as far as the record says.

  A CPU-time budget buys more epochs on a faster CPU, so Table 1 and the convergence table
  average seeds and pair runs only within one machine. Records written before
  `environment.cpu_details` was kept name only their device ('CPU (AMD EPYC, 2 cores)' covered
  both an AVX2-only Zen 3 and an AVX512-BF16 Zen 4).
  """
  env = record.get('environment', {})
  device = env.get('device', 'unknown device')
  details = env.get('cpu_details')
  if env.get('gpus'):
    return device
  if not details:
    return f'{device}, CPU details unrecorded'
  isa = ' '.join(details.get('isa') or ()) or 'no AVX2'
  return f"{device}, family {details.get('family')} model {details.get('model')}, {isa}"


def machine_labels(records):
  """`{machine: 'A', ...}` in sorted order; {} when all records share one machine."""
  machines = sorted({machine_of(r) for r in records})
  return {} if len(machines) < 2 else {m: chr(ord('A') + i) for i, m in enumerate(machines)}


def _per_machine(records, markdown):
  """`markdown(records of one machine)` for each machine, under a heading each."""
  machines = machine_labels(records)
  blocks = [
      f'The records of this protocol come from {len(machines)} machines. Its budget is CPU '
      'time, which buys different compute on different CPUs (compare "epochs trained"), so '
      'each machine has its own table: seeds are averaged, and runs paired, only within one '
      'machine.\n']
  for machine, label in machines.items():
    blocks.append(f'### Machine {label}: {machine}\n\n' +
                  markdown([r for r in records if machine_of(r) == machine]))
  return '\n'.join(blocks)


def paired_nll(record, reference):
  """`NLL(record) - NLL(reference)` on the same test images, with its standard error.

  Both NLLs are means over the same images, so their difference is the mean of per-image
  differences, whose standard error is far smaller than either NLL's own (an image's
  difficulty is shared by the two models).

  Returns:
    `(difference, standard error)` in nats.

  Raises:
    ValueError: a record without per-image NLLs (recorded before they were kept), or two
      records measured on different images.
  """
  values = []
  for r in (record, reference):
    per_image = r['metrics'].get('nll_per_image')
    if not per_image:
      raise ValueError(f'{r.get("run_name")} has no per-image NLLs (recorded before they were '
                       'kept): no paired comparison.')
    values.append(per_image)
  if (record['metrics'].get('nll_subset') != reference['metrics'].get('nll_subset') or
      len(values[0]) != len(values[1])):
    raise ValueError(f'{record.get("run_name")} and {reference.get("run_name")} were measured '
                     'on different test images: no paired comparison.')
  diffs = [a - b for a, b in zip(*values)]
  n = len(diffs)
  mean = sum(diffs) / n
  se = (sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) ** 0.5 if n > 1 else 0.
  return mean, se


def table1_markdown(records):
  """Markdown laid out like the paper's Table 1 for the records of ONE protocol.

  Rows NLL, ELBO, FID, IS, epochs and training minutes; columns flow x K. A cell of one run
  shows the run's own uncertainty (NLL: standard error over test images); a cell of several
  seeds shows mean ± standard deviation over seeds and their number in parentheses.

  Raises:
    ValueError: records of more than one protocol (they must never be averaged).
  """
  protocols = sorted({protocol_of(r) for r in records})
  if len(protocols) != 1:
    raise ValueError(f'table1_markdown needs the records of one protocol, got {protocols}.')
  records = unique_runs(records)
  if machine_labels(records):
    return _per_machine(records, table1_markdown)
  columns = _sorted_columns({_column(r) for r in records})
  # The paper's comparison: each Langevin run against the HVAE of the same K and seed, one
  # row per HVAE variant (reference 2K or cached K + 1) the protocol holds: the flows a flow
  # is `paired_with` (`lvae_tf.registry`), and every flow against the baseline (the VAE).
  paired = {c[0]: _paired_labels(c[0], columns) for c in columns}
  hvae_variants = sorted({v for labels in paired.values() for v in labels})
  nll_rows = ('NLL', 'NLL_vs_VAE', *(f'NLL_vs_{v}' for v in hvae_variants))
  rows = (*nll_rows, 'ELBO', 'FID', 'IS', 'epochs', 'minutes', 'cpu_minutes')
  cells = {c: {row: [] for row in rows} for c in columns}
  vaes = {r['config']['seed']: r for r in records if _column(r)[0] == _baseline_label()}
  hvaes = {(*_column(r), r['config']['seed']): r for r in records
           if _column(r)[0] in hvae_variants}
  for r in records:
    m = r['metrics']
    cell = cells[_column(r)]
    seed = r['config']['seed']  # each cell value is (value, its own uncertainty, seed)
    if 'nll_mean' in m:
      cell['NLL'].append((m['nll_mean'], m.get('nll_sem', m.get('nll_std', 0.)), seed))
    references = {'NLL_vs_VAE': vaes.get(r['config']['seed'])}
    references.update({f'NLL_vs_{v}': hvaes.get((v, *_column(r)[1:], r['config']['seed']))
                       for v in paired[_column(r)[0]]})
    for row, reference in references.items():
      if reference is not None and reference is not r:
        try:
          cell[row].append((*paired_nll(r, reference), seed))
        except ValueError:
          pass  # no per-image NLLs in one of them: the row stays empty
    if 'test_elbo' in m:
      cell['ELBO'].append((m['test_elbo'], 0., seed))
    if 'classifier_fid' in m:
      cell['FID'].append((m['classifier_fid'], 0., seed))
    if 'classifier_is' in m:
      cell['IS'].append((m['classifier_is'], m.get('classifier_is_std', 0.), seed))
    if 'epochs_trained' in m:
      cell['epochs'].append((m['epochs_trained'], 0., seed))
    seconds = r.get('wall_seconds', {})
    if seconds.get('train_total') is not None:
      cell['minutes'].append((seconds['train_total'] / 60., 0., seed))
    if seconds.get('train_cpu_total') is not None:
      cell['cpu_minutes'].append((seconds['train_cpu_total'] / 60., 0., seed))
  seed_differences = {}  # column: (lowest seed, [(NLL - its NLL, standard error, seed)])
  for c in columns:
    runs = sorted((r for r in records if _column(r) == c and 'nll_mean' in r['metrics']),
                  key=lambda r: r['config']['seed'])
    try:
      if len(runs) > 1:
        seed_differences[c] = (runs[0]['config']['seed'], [
            (*paired_nll(r, runs[0]), r['config']['seed']) for r in runs[1:]])
    except ValueError:
      pass  # a record without per-image NLLs: no paired seed differences
  header = '| | ' + ' | '.join(map(_column_title, columns)) + ' |'
  lines = [header, '|---' * (len(columns) + 1) + '|']
  names = {'NLL': 'NLL (nats)',
           'NLL_vs_VAE': f'NLL − {_flow_titles().get(_baseline_label(), "VAE")} of the same '
                         'seed (paired)',
           **{f'NLL_vs_{v}': f'NLL − {_paired_title(v, hvae_variants)} '
              'of the same K and seed (paired)' for v in hvae_variants},
           'ELBO': 'test ELBO (nats)', 'FID': 'classifier FID',
           'IS': 'classifier IS', 'epochs': 'epochs trained',
           'minutes': 'training minutes (wall)', 'cpu_minutes': 'training minutes (CPU)'}
  digits = {'epochs': 0, 'minutes': 1, 'cpu_minutes': 1}
  for row in rows:
    if row.startswith('NLL_vs_') and not any(cells[c][row] for c in columns):
      continue  # no pairs, or records without per-image NLLs
    lines.append(f'| {names[row]} | ' + ' | '.join(
        _fmt(cells[c][row], digits.get(row, 2)) for c in columns) + ' |')
    if row in nll_rows and any(len(cells[c][row]) > 1 for c in columns):
      # Several seeds: their values too, so that a reader sees whether every seed agrees,
      # and for a paired difference whether the seeds' mean excludes zero.
      lines.append('| … per seed | ' + ' | '.join(
          _per_seed(cells[c][row], interval=row != 'NLL') for c in columns) + ' |')
    if row == 'NLL' and seed_differences:
      # How far apart two seeds of one model are, on the same images: the spread that a
      # difference between two models has to stand out of.
      lines.append('| … each seed − the lowest (paired) | ' + ' | '.join(
          _seed_differences(*seed_differences.get(c, (None, []))) for c in columns) + ' |')
  devices = sorted({r['environment']['device'] for r in records})
  precisions = sorted({r['config'].get('precision', 'float32') for r in records})
  seeds = {c: sorted(r['config']['seed'] for r in records if _column(r) == c) for c in columns}
  nll_images = sorted({r['metrics'].get('nll_test_images') for r in records} - {None})
  subset = sorted({r['config'].get('nll_subset', 'first') for r in records})
  config = records[0]['config']
  lines += [
      '',
      f'Protocol `{protocols[0]}` (preset {config.get("preset")}). Device: '
      f'{"; ".join(devices)}. Precision: {", ".join(precisions)}. Seeds per column: '
      f'{", ".join(str(len(seeds[c])) for c in columns)}.',
      f'NLL: importance sampling with S = {config.get("nll_samples")} on '
      f'{"/".join(str(n) for n in nll_images)} test images ({"/".join(subset)} subset); one '
      'run shows ± its standard error over images, several seeds show mean ± std over seeds '
      '(n), "… per seed" each seed\'s value (sN: seed N), and "… each seed − the lowest" the '
      'paired difference of two seeds of one model on the same images, ± its standard error '
      '(the spread a difference between models has to stand out of). NLL − VAE (when the '
      'records keep per-image NLLs): the difference to the same seed\'s VAE on the same images, ± its '
      'paired standard error (one seed) or mean ± std over seeds (n), its "… per seed" row '
      'ending with the 95 % Student-t interval of the mean over seeds; NLL − HVAE likewise, '
      'for Langevin against the HVAE of the same K. '
      'Test ELBO: Rao-Blackwellised, on all test images.',
      _data_line(config.get('dataset', 'mnist')) +
      'FID/IS are *classifier* FID/IS (lvae_tf\'s own MNIST classifier, not Inception; '
      'samples vs the grey-level test set): not comparable with the paper\'s FID/IS. '
      'Real-data references in `results/metric_reference.md`: test-set classifier IS 9.76, '
      'classifier FID train (10k) vs test 0.58, uniform noise 343.',
  ]
  return '\n'.join(lines) + '\n'


def _mean_std(values, digits=2):
  """`mean ± std (n)` over seeds (std with n - 1; one value is shown alone)."""
  values = [v for v in values if v is not None]
  if not values:
    return ''
  return _fmt([(v, 0.) for v in values], digits)


def ablation_markdown(records, vary):
  """Markdown comparing runs that differ only in the fields `vary`, mean ± std over seeds.

  One row per combination of the `vary` values. Besides the metrics, each row shows the
  difference to the first row *paired by seed* (the seeds share data order and noise, so the
  paired difference is the comparison that the seeds' spread allows). The first row is the
  one of `Config`'s defaults if present, else the first in sorted order.

  Args:
    records: run records (`load_records`).
    vary: names of `lvae_tf.config.Config` fields.

  Raises:
    ValueError: an unknown field, or records that differ in anything else than `vary` and
      the seed (another protocol, flow or K).
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  fields = {f.name: f.default for f in dataclasses.fields(config_lib.Config)}
  unknown = [name for name in vary if name not in fields]
  if unknown:
    raise ValueError(f'unknown Config fields {unknown}; expected some of {sorted(fields)}.')
  if not records:
    raise ValueError('no records to compare.')
  groups, shared = {}, None
  for r in records:
    config = config_lib.Config.from_dict(r['config'])
    rest = dict(config_lib.protocol_identity(config), flow=config.flow,
                num_steps=config.num_steps, hvae_gradient=config.hvae_gradient)
    for name in vary:
      rest.pop(name, None)
    if shared is None:
      shared = rest
    elif rest != shared:
      differing = sorted(k for k in set(rest) | set(shared) if rest.get(k) != shared.get(k))
      raise ValueError(f'{r["run_name"]} differs from the others in {differing}, not only in '
                       f'{list(vary)}: those runs cannot be compared in one ablation table.')
    key = tuple(getattr(config, name) for name in vary)
    groups.setdefault(key, {})[config.seed] = (config, r['metrics'])

  default_key = tuple(fields[name] for name in vary)
  keys = sorted(groups, key=lambda k: (k != default_key, str(k)))
  baseline = groups[keys[0]]
  columns = ['seeds', 'initial ν0', 'K ν0 τ0', 'NLL (nats)', 'ΔNLL vs first row (paired)',
             'test ELBO', 'ΔELBO vs first row (paired)', 'learned ν (mean)',
             'log-det per step']
  lines = ['| ' + ' | '.join(vary) + ' | ' + ' | '.join(columns) + ' |',
           '|---' * (len(vary) + len(columns)) + '|']
  for key in keys:
    runs = groups[key]
    seeds = sorted(runs)
    configs = [runs[s][0] for s in seeds]
    metrics = [runs[s][1] for s in seeds]
    nu0 = (configs[0].initial_damping()
           if 'damping' in config_lib.fields_read_by(configs[0].flow) else None)

    def paired(metric, runs=runs, seeds=seeds):
      common = [s for s in seeds
                if s in baseline and metric in runs[s][1] and metric in baseline[s][1]]
      if not common or runs is baseline:
        return ''
      if metric == 'nll_mean' and len(common) == 1:
        # One seed: ± the paired standard error over images, when both runs kept them.
        try:
          return _fmt([paired_nll({'metrics': runs[common[0]][1]},
                                  {'metrics': baseline[common[0]][1]})])
        except ValueError:
          pass
      return _mean_std([runs[s][1][metric] - baseline[s][1][metric] for s in common])

    flow = [m.get('flow_parameters', {}) for m in metrics]
    cells = [
        ', '.join(str(s) for s in seeds),
        f'{nu0:.3f}' if nu0 is not None else '',
        f'{configs[0].num_steps * nu0 * configs[0].step_size:.3f}' if nu0 is not None else '',
        _fmt([(m['nll_mean'], m.get('nll_sem', 0.)) for m in metrics if 'nll_mean' in m]),
        paired('nll_mean'),
        _mean_std([m.get('test_elbo') for m in metrics]),
        paired('test_elbo'),
        _mean_std([f.get('damping_mean') for f in flow]),
        _mean_std([f.get('log_det_per_step') for f in flow]),
    ]
    label = ['default (matched)' if v is None and name == 'damping' else str(v)
             for name, v in zip(vary, key)]
    lines.append('| ' + ' | '.join(label + cells) + ' |')
  config = next(iter(groups[keys[0]].values()))[0]
  lines += [
      '',
      f'{config.flow} K = {config.num_steps}, preset {config.preset}, initial step size '
      f'{config.step_size}, T0 = {config.initial_temperature} (the matched ν0 = ln T0 / '
      f'(2 K τ0), docs/math.md section 6). Mean ± std over seeds (n); Δ columns: the '
      'difference to the first row on the same seed, mean ± std over seeds (negative ΔNLL '
      'and positive ΔELBO favour the row), or for one seed ΔNLL ± its paired standard error '
      'over images; NLL of a single run: ± its standard error over images. NLL: S = '
      f'{config.nll_samples} on {config.nll_test_images or "all"} test images '
      f'({config.nll_subset} subset); test ELBO on all test images.',
  ]
  return '\n'.join(lines) + '\n'


def _best_by(history, key, limit):
  """The best validation ELBO of the epochs with `h[key] <= limit` (None if there are none)."""
  values = [h['val_elbo'] for h in history if h[key] <= limit]
  return max(values) if values else None


def convergence_markdown(records, epochs=(1, 5, 10, 15, 20, 30, 40, 80, 160),
                         cpu_minutes=(5, 10, 15, 30, 45, 60)):
  """Markdown of validation ELBO at equal epochs and at equal CPU time, for ONE protocol.

  The numbers behind the convergence figure, for the equal-epochs and the equal-compute
  readings of Table 1. A cell is the *best* validation ELBO a run had reached by that point
  (the checkpoint early stopping would keep), mean ± std over seeds (n). Epochs and CPU
  minutes are the run's own: a warm-started run counts from its warm start, like its control.
  A run contributes to "after e epochs" only if it trained e epochs, and to "after m CPU
  minutes" once its first epoch has ended by then (a run that stopped before m keeps its final
  best). Rows that no run reaches are left out. A second table pairs runs by seed: each flow
  against the VAE, Langevin against the HVAE of the same K (the difference of two models of one
  seed, mean ± std over seeds; positive favours the first).

  Args:
    records: Table 1 run records with their per-epoch `history`, of one protocol.
    epochs: epoch counts of the equal-epochs rows.
    cpu_minutes: CPU minutes of training of the equal-compute rows.

  Raises:
    ValueError: records of more than one protocol, or none with a history.
  """
  protocols = sorted({protocol_of(r) for r in records})
  if len(protocols) != 1:
    raise ValueError(f'convergence_markdown needs the records of one protocol, got '
                     f'{protocols}.')
  with_history = [r for r in records if r.get('history')]
  if not with_history:
    raise ValueError(f'no record of protocol {protocols[0]} has a per-epoch history.')
  if machine_labels(with_history):
    return (_per_machine(with_history,
                         lambda rs: convergence_markdown(rs, epochs, cpu_minutes)) +
            _pooled_epochs_markdown(with_history, epochs))
  lines = _convergence_table(_runs_by_column(with_history), epochs, cpu_minutes)
  lines += [
      '',
      f'Protocol `{protocols[0]}`. Best validation ELBO reached by that point (nats; all '
      'validation images), mean ± std over seeds (n). "Paired by seed": the difference of two '
      'models of the same seed, mean ± std over seeds (each flow against the VAE, Langevin '
      'against the HVAE of the same K; positive favours the first). Epochs and CPU '
      'minutes count from the start of each run (a warm-started run: from its warm start). '
      'CPU minutes are CPU time of the training process (the budget clock of the cpu preset); '
      'wall-clock time depends on the machine\'s load and is in the figure.',
  ]
  return '\n'.join(lines) + '\n'


def _runs_by_column(records):
  """`{column: {seed: history}}`; a seed recorded on several machines keeps its longest."""
  runs = {}
  for r in records:
    seeds = runs.setdefault(_column(r), {})
    seed = r['config']['seed']
    if len(r['history']) > len(seeds.get(seed, ())):
      seeds[seed] = r['history']
  return runs


def _pairs(columns):
  """The paired comparisons of a convergence table: each flow against the VAE, and Langevin
  against each HVAE variant of the same K (`[(column, reference column), ...]`)."""
  baseline = (_baseline_label(), 0)
  pairs = [(c, baseline) for c in columns if c[0] != baseline[0] and baseline in columns]
  return pairs + [(c, h) for c in columns
                  for h in columns if h[0] in _paired_labels(c[0], columns) and h[1] == c[1]]


def _convergence_table(runs, epochs, cpu_minutes, totals=True):
  """The lines of the convergence tables of `runs` (`_runs_by_column`).

  Two tables: the models' best validation ELBO, then (if any model has a partner) the paired
  differences by seed, `[model table lines, '', paired table lines]`.
  """
  columns = _sorted_columns(runs)
  pairs = _pairs(columns)
  model_lines = ['| ' + ' | '.join(['', *map(_column_title, columns)]) + ' |',
                 '|---' * (len(columns) + 1) + '|']
  paired_lines = ['| ' + ' | '.join(['paired by seed', *(
      f'{_column_title(c)} − {_column_title(r)}' for c, r in pairs)]) + ' |',
                  '|---' * (len(pairs) + 1) + '|']

  def row(label, value_of, digits=2, paired=True):
    values = {c: {seed: value_of(h) for seed, h in runs[c].items()} for c in columns}
    cells = [_mean_std(values[c].values(), digits) for c in columns]
    if any(cells):
      model_lines.append('| ' + ' | '.join([label, *cells]) + ' |')
    differences = [_mean_std([v - values[r][seed] for seed, v in values[c].items()
                              if v is not None and values[r].get(seed) is not None], digits)
                   for c, r in pairs]
    if paired and any(differences):
      paired_lines.append('| ' + ' | '.join([label, *differences]) + ' |')

  for e in epochs:
    row(f'after {e} epoch{"s" if e != 1 else ""}',
        lambda h, e=e: _best_by(h, 'epoch', e) if h[-1]['epoch'] >= e else None)
  for m in cpu_minutes:
    if any(h[-1]['cpu_seconds'] >= 60. * m for c in columns for h in runs[c].values()):
      row(f'after {m} CPU-min', lambda h, m=m: _best_by(h, 'cpu_seconds', 60. * m))
  if totals:
    row('end of training (best)', lambda h: max(x['val_elbo'] for x in h))
    row('epochs trained', lambda h: h[-1]['epoch'], digits=0, paired=False)
    row('CPU minutes trained', lambda h: h[-1]['cpu_seconds'] / 60., digits=1, paired=False)
  return model_lines + (['', *paired_lines] if len(paired_lines) > 2 else [])


#: The largest difference in validation ELBO (nats) at any epoch between the records of one run
#: (same protocol, model and seed) on two machines for them to count as the same training:
#: float32 sums in another order move it by about 1e-5 nats (3e-5 at most over 80 epochs between
#: an AVX2 Zen 3 and an AMX Xeon, measured), two seeds by 0.05 nats and far more.
SAME_TRAINING_NATS = 0.01


def machine_agreement(records):
  """How closely the records of one run on several machines agree, epoch by epoch.

  Returns:
    list of `(column, seed, machine labels, common epochs, largest |Δ validation ELBO|)`, one
    per run recorded on two or more machines, in Table 1's column order then by seed.
  """
  labels = machine_labels(records)
  groups = {}
  for r in records:
    if r.get('history'):
      groups.setdefault((_column(r), r['config']['seed']), {})[machine_of(r)] = {
          h['epoch']: h['val_elbo'] for h in r['history']}
  agreement = []
  for column in _sorted_columns({c for c, _ in groups}):
    for seed in sorted(s for c, s in groups if c == column):
      by_machine = groups[(column, seed)]
      if len(by_machine) < 2:
        continue
      common = sorted(set.intersection(*(set(h) for h in by_machine.values())))
      spread = max((max(h[e] for h in by_machine.values()) -
                    min(h[e] for h in by_machine.values()) for e in common), default=0.)
      agreement.append((column, seed, sorted(labels[m] for m in by_machine), len(common),
                        spread))
  return agreement


def _pooled_epochs_markdown(records, epochs):
  """The equal-epochs rows over every machine's seeds, if the machines train alike.

  A CPU-time budget decides how many epochs a run gets, not what an epoch computes: where
  the records show one run on two machines retracing itself (`machine_agreement`, within
  `SAME_TRAINING_NATS`), epoch e of a seed is the same model on every machine, and the
  equal-epochs comparison may pool the seeds of all machines. Without such a run, or with one
  that disagrees, nothing is pooled.
  """
  agreement = machine_agreement(records)
  if not agreement:
    return ''
  labels = machine_labels(records)
  checked = '; '.join(
      f'{_column_title(column)} seed {seed} on {" and ".join(machines)}: {common} common '
      f'epochs, validation ELBO within {spread:.1g} nats'
      for column, seed, machines, common, spread in agreement)
  worst = max(spread for *_, spread in agreement)
  if not math.isfinite(worst) or worst > SAME_TRAINING_NATS:
    return (f'\n### All machines\n\nSeeds are not pooled across machines: the same run '
            f'differs between machines by more than {SAME_TRAINING_NATS} nats ({checked}).\n')
  runs = _runs_by_column(records)
  lines = _convergence_table(runs, epochs, cpu_minutes=(), totals=False)
  machines_of = {}
  for r in records:
    machines_of.setdefault((_column(r), r['config']['seed']), []).append(labels[machine_of(r)])
  seed_cells = [', '.join(f'{seed} ({"".join(sorted(machines_of[(c, seed)]))})'
                          for seed in sorted(runs[c])) for c in _sorted_columns(runs)]
  end = lines.index('') if '' in lines else len(lines)  # of the models' table
  lines.insert(end, '| ' + ' | '.join(['seeds (machines)', *seed_cells]) + ' |')
  return '\n'.join([
      '', '### All machines, at equal epochs', '',
      f'A budget of CPU time decides how many epochs a run trains, not what an epoch computes. '
      f'Each run recorded on two machines retraces itself ({checked}), so epoch e of a seed is '
      f'the same model on every machine, and the equal-epochs rows pool the seeds of all '
      f'machines (a seed recorded on several counts once). Equal CPU time and the NLL stay per '
      f'machine.', '', *lines, '']) + '\n'


# A table copied into a document (the README) from a generated file, between two markers:
#   <!-- table: results/table1/cpu-7d1379/table1.md "family 6 model 167" -->
#   | ... the table ... |
#   <!-- /table -->
# The quoted text, optional, picks the first table after the first heading containing it.
_EMBEDDED_TABLE = re.compile(
    r'(?P<open><!-- table: (?P<path>[^\s"]+)(?: "(?P<heading>[^"]+)")? -->\n)'
    r'(?P<table>.*?)(?P<close><!-- /table -->)', re.S)


def markdown_table(text, heading=None):
  """The first Markdown table of `text` (after the first heading containing `heading`).

  Raises:
    ValueError: no such heading, or no table after it.
  """
  if heading is not None:
    match = re.search(r'^#+ .*' + re.escape(heading) + r'.*$', text, re.M)
    if match is None:
      raise ValueError(f'no heading contains {heading!r}')
    text = text[match.end():]
  lines = text.splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith('|')), None)
  if start is None:
    raise ValueError('no Markdown table' + (f' after the heading with {heading!r}'
                                             if heading else ''))
  end = start
  while end < len(lines) and lines[end].startswith('|'):
    end += 1
  return '\n'.join(lines[start:end]) + '\n'


def refresh_embedded_tables(text, root):
  """`text` with every embedded table (see `_EMBEDDED_TABLE`) replaced by its source's table.

  Args:
    text: a document's Markdown.
    root: the directory the markers' paths are relative to.

  Returns:
    `(new_text, stale)`: `stale` lists `'path "heading"'` for each table that differed.

  Raises:
    ValueError: a marker whose file, heading or table does not exist (named in the message).
  """
  stale = []

  def replace(match):
    name = match['path'] + (f' "{match["heading"]}"' if match['heading'] else '')
    try:
      with open(os.path.join(root, match['path']), encoding='utf-8') as f:
        table = markdown_table(f.read(), match['heading'])
    except (OSError, ValueError) as e:
      raise ValueError(f'embedded table {name}: {e}') from e
    if match['table'] != table:
      stale.append(name)
    return match['open'] + table + match['close']

  return _EMBEDDED_TABLE.sub(replace, text), stale
