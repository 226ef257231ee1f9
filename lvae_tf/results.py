"""Result records: atomic JSON writes, environment description, and the Table 1 layout."""

import contextlib
import datetime
import glob
import json
import os
import platform
import tempfile

__all__ = [
    'atomic_path',
    'environment',
    'load_records',
    'table1_markdown',
    'write_json_atomic',
    'write_text_atomic',
]


@contextlib.contextmanager
def atomic_path(path, suffix=''):
  """Yields a temporary path beside `path`; on success renames it to `path`, else removes it.

  Whatever is written to the yielded path (by `open`, `savefig`, `save_weights`, ...) appears at
  `path` whole or not at all: a crash or kill never leaves a half-written file. `suffix` keeps a
  file ending that a writer needs to pick its format (e.g. '.weights.h5').
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-',
                             suffix=suffix or os.path.basename(path))
  os.close(fd)
  try:
    yield tmp
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text_atomic(path, text):
  """Writes `text` to `path` via a temporary file + `os.replace`: never half-written."""
  with atomic_path(path) as tmp:
    with open(tmp, 'w') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())


def write_json_atomic(path, obj):
  write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def _cpu_name():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


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
      'cpu_count': os.cpu_count(),
      'gpus': gpus,
      'device': gpus[0] if gpus else f'CPU ({_cpu_name()}, {os.cpu_count()} cores)',
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
  }


def load_records(directory):
  """All `*/record.json` and `*.json` run records under `directory`, sorted by name."""
  records = []
  for path in sorted(glob.glob(os.path.join(directory, '**', '*.json'),
                               recursive=True)):
    with open(path) as f:
      try:
        record = json.load(f)
      except json.JSONDecodeError:
        continue
    if isinstance(record, dict) and record.get('kind') == 'table1_run':
      records.append(record)
  return records


_FLOW_TITLES = {
    'vae': 'VAE',
    'langevin': 'Langevin-VAE',
    'hvae-reference': 'HVAE (2K grads)',
    'hvae-cached': 'HVAE cached (K+1)',
}


def _column(record):
  c = record['config']
  flow = c['flow'] if c['flow'] != 'hvae' else f"hvae-{c['hvae_gradient']}"
  return flow, c['num_steps']


def _fmt(values, digits=2):
  if not values:
    return ''
  if len(values) == 1:
    mean, std = values[0]
  else:  # several runs of one column: mean and spread over runs
    means = [v[0] for v in values]
    mean = sum(means) / len(means)
    std = (sum((m - mean) ** 2 for m in means) / (len(means) - 1)) ** 0.5
  if std:
    return f'{mean:.{digits}f} ± {std:.{digits}f}'
  return f'{mean:.{digits}f}'


def table1_markdown(records):
  """Markdown laid out like the paper's Table 1: rows NLL, ELBO, FID, IS; columns flow x K."""
  order = {k: i for i, k in enumerate(_FLOW_TITLES)}
  columns = sorted({_column(r) for r in records},
                   key=lambda c: (order.get(c[0], 99), c[1]))
  cells = {c: {'NLL': [], 'ELBO': [], 'FID': [], 'IS': []} for c in columns}
  for r in records:
    m = r['metrics']
    cell = cells[_column(r)]
    if 'nll_mean' in m:
      cell['NLL'].append((m['nll_mean'], m.get('nll_std', 0.)))
    if 'test_elbo' in m:
      cell['ELBO'].append((m['test_elbo'], m.get('test_elbo_std', 0.)))
    if 'classifier_fid' in m:
      cell['FID'].append((m['classifier_fid'], 0.))
    if 'classifier_is' in m:
      cell['IS'].append((m['classifier_is'], m.get('classifier_is_std', 0.)))
  header = '| | ' + ' | '.join(
      f'{_FLOW_TITLES.get(f, f)} K={k}' for f, k in columns) + ' |'
  lines = [header, '|---' * (len(columns) + 1) + '|']
  names = {'NLL': 'NLL (nats)', 'ELBO': 'ELBO (nats)',
           'FID': 'classifier FID', 'IS': 'classifier IS'}
  for row in ('NLL', 'ELBO', 'FID', 'IS'):
    lines.append(f'| {names[row]} | ' + ' | '.join(
        _fmt(cells[c][row]) for c in columns) + ' |')
  devices = sorted({r['environment']['device'] for r in records})
  presets = sorted({r['config'].get('preset', '?') for r in records})
  runs = {c: sum(1 for r in records if _column(r) == c) for c in columns}
  lines += [
      '',
      f'Device: {"; ".join(devices)}. Presets: {", ".join(presets)}. '
      f'Runs per column: {", ".join(str(runs[c]) for c in columns)}.',
      'MNIST dynamically binarised (not comparable with the fixed binarisation). '
      'NLL by importance sampling, mean ± std over test passes; ELBO is the '
      'Rao-Blackwellised test ELBO. FID/IS are *classifier* FID/IS (lvae_tf\'s own '
      'MNIST classifier, not Inception; samples vs the grey-level test set): not '
      'comparable with the paper\'s FID/IS. Real-data references in '
      '`results/metric_reference.md`: test-set classifier IS 9.76, classifier FID '
      'train (10k) vs test 0.58, uniform noise 343.',
  ]
  return '\n'.join(lines) + '\n'
