"""Table 1 as Markdown: NLL, paired differences, ELBO, FID, IS and training time per flow x K."""

from lvae_tf import registry
from lvae_tf.results.columns import baseline_label
from lvae_tf.results.columns import column_of
from lvae_tf.results.columns import column_title
from lvae_tf.results.columns import flow_titles
from lvae_tf.results.columns import paired_labels
from lvae_tf.results.columns import paired_title
from lvae_tf.results.columns import sorted_columns
from lvae_tf.results.machine import machine_labels
from lvae_tf.results.machine import per_machine
from lvae_tf.results.stats import format_cell
from lvae_tf.results.stats import paired_nll
from lvae_tf.results.stats import t_interval
from lvae_tf.results.store import protocol_of
from lvae_tf.results.store import unique_runs

__all__ = ['table1_markdown']


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
    return per_machine(records, table1_markdown)
  columns = sorted_columns({column_of(r) for r in records})
  # The paper's comparison: each Langevin run against the HVAE of the same K and seed, one
  # row per HVAE variant (reference 2K or cached K + 1) the protocol holds: the flows a flow
  # is `paired_with` (`lvae_tf.registry`), and every flow against the baseline (the VAE).
  paired = {c[0]: paired_labels(c[0], columns) for c in columns}
  hvae_variants = sorted({v for labels in paired.values() for v in labels})
  nll_rows = ('NLL', 'NLL_vs_VAE', *(f'NLL_vs_{v}' for v in hvae_variants))
  rows = (*nll_rows, 'ELBO', 'FID', 'IS', 'epochs', 'minutes', 'cpu_minutes')
  cells = {c: {row: [] for row in rows} for c in columns}
  vaes = {r['config']['seed']: r for r in records if column_of(r)[0] == baseline_label()}
  hvaes = {(*column_of(r), r['config']['seed']): r for r in records
           if column_of(r)[0] in hvae_variants}
  for r in records:
    m = r['metrics']
    cell = cells[column_of(r)]
    seed = r['config']['seed']  # each cell value is (value, its own uncertainty, seed)
    if 'nll_mean' in m:
      cell['NLL'].append((m['nll_mean'], m.get('nll_sem', m.get('nll_std', 0.)), seed))
    references = {'NLL_vs_VAE': vaes.get(r['config']['seed'])}
    references.update({f'NLL_vs_{v}': hvaes.get((v, *column_of(r)[1:], r['config']['seed']))
                       for v in paired[column_of(r)[0]]})
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
    runs = sorted((r for r in records if column_of(r) == c and 'nll_mean' in r['metrics']),
                  key=lambda r: r['config']['seed'])
    try:
      if len(runs) > 1:
        seed_differences[c] = (runs[0]['config']['seed'], [
            (*paired_nll(r, runs[0]), r['config']['seed']) for r in runs[1:]])
    except ValueError:
      pass  # a record without per-image NLLs: no paired seed differences
  header = '| | ' + ' | '.join(map(column_title, columns)) + ' |'
  lines = [header, '|---' * (len(columns) + 1) + '|']
  names = {'NLL': 'NLL (nats)',
           'NLL_vs_VAE': f'NLL − {flow_titles().get(baseline_label(), "VAE")} of the same '
                         'seed (paired)',
           **{f'NLL_vs_{v}': f'NLL − {paired_title(v, hvae_variants)} '
              'of the same K and seed (paired)' for v in hvae_variants},
           'ELBO': 'test ELBO (nats)', 'FID': 'classifier FID',
           'IS': 'classifier IS', 'epochs': 'epochs trained',
           'minutes': 'training minutes (wall)', 'cpu_minutes': 'training minutes (CPU)'}
  digits = {'epochs': 0, 'minutes': 1, 'cpu_minutes': 1}
  for row in rows:
    if row.startswith('NLL_vs_') and not any(cells[c][row] for c in columns):
      continue  # no pairs, or records without per-image NLLs
    lines.append(f'| {names[row]} | ' + ' | '.join(
        format_cell(cells[c][row], digits.get(row, 2)) for c in columns) + ' |')
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
  seeds = {c: sorted(r['config']['seed'] for r in records if column_of(r) == c) for c in columns}
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
      'paired difference of two seeds of one model on the same test images (each binarised '
      'with its own seed), ± its standard error '
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


def _seed_differences(reference_seed, differences):
  """`s1 − s0 0.19 ± 0.18 · ...`: each seed's paired NLL difference to `reference_seed`'s."""
  return ' · '.join(f's{seed} − s{reference_seed} {diff:.2f} ± {se:.2f}'
                    for diff, se, seed in differences)


def _data_line(dataset):
  """What Table 1 says of the data: the data set's `DatasetSpec.describe_data()`."""
  if dataset in registry.dataset_names():
    return registry.dataset(dataset).describe_data()
  return registry.DatasetSpec(dataset, loader=None).describe_data()

