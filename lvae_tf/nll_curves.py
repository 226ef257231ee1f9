"""NLL against epochs and CPU time: the equal-epochs Table 1 and the curve figure.

A run under a preset with `nll_curve_images` keeps the best weights so far at fixed epochs
(`checkpoints/epochs/`) and measures their NLL (`lvae_tf.train.nll_curve`): its record holds
`metrics.nll_curve`, one point per kept epoch (`epoch`, `best_epoch`, `train_cpu_minutes`,
`nll_mean`, `nll_sem`, `nll_test_images`, `nll_per_image`) and a last point marked `final`,
the record's own NLL at the end of its budget. Training is deterministic in (seed, step), so
one run gives both views: NLL at equal epochs (the kept points) and at equal CPU time (the
final point, Table 1).

The kept points of every model of a protocol are measured on the same test images (a subset
of the NLL subset), and the runs of one seed binarise them with that seed: two models of one
seed pair image by image (`paired`), and each seed is one independent replication.
"""

import collections
import math

from lvae_tf import filesafety
from lvae_tf.results.columns import column_of
from lvae_tf.results.columns import column_title
from lvae_tf.results.columns import sorted_columns
from lvae_tf.results.machine import machine_of
from lvae_tf.results.stats import t_interval

__all__ = ['common_epochs', 'equal_epochs_markdown', 'kept_points', 'paired', 'plot_nll_curves']


def kept_points(record):
  """`{epoch: point}` of the record's kept (not final) curve points; {} without a curve."""
  points = record['metrics'].get('nll_curve') or []
  return {p['epoch']: p for p in points if not p.get('final')}


def paired(point, reference):
  """`(mean, standard error)` of `NLL(point) - NLL(reference)` over their shared images."""
  a, b = point['nll_per_image'], reference['nll_per_image']
  if len(a) != len(b):
    raise ValueError(f'curve points on {len(a)} and {len(b)} images do not pair.')
  diffs = [x - y for x, y in zip(a, b)]
  n = len(diffs)
  mean = sum(diffs) / n
  se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else 0.
  return mean, se


def _seed(record):
  return record['config']['seed']


def _by_k(records):
  """`{K: {column: {seed: record}}}`: each flow's K, the VAE (K = 0) in every K's block."""
  columns = collections.defaultdict(dict)
  for record in records:
    if kept_points(record):
      columns[column_of(record)][_seed(record)] = record
  vae = {c: runs for c, runs in columns.items() if c[1] == 0}
  blocks = {}
  for column, runs in columns.items():
    if column[1]:
      blocks.setdefault(column[1], dict(vae))[column] = runs
  return blocks


def common_epochs(runs_by_column):
  """The kept epochs that every run of every column reached, in order."""
  sets = [set(kept_points(r)) for runs in runs_by_column.values() for r in runs.values()]
  return sorted(set.intersection(*sets)) if sets else []


def _mean_std(values):
  mean = sum(values) / len(values)
  if len(values) < 2:
    return f'{mean:.2f}'
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
  return f'{mean:.2f} ± {std:.2f} ({len(values)})'


def _interval(values):
  if len(values) < 2:
    return ''
  low, high = t_interval(values)
  return f'{low:.2f} to {high:.2f}'


def _block(k, runs_by_column, epoch):
  """The equal-epochs table of one K at `epoch`: NLL per column, then the paired rows."""
  columns = sorted_columns(runs_by_column)
  title = column_title
  lines = [f'### K = {k}, at epoch {epoch}\n',
           '| | NLL at epoch %d (mean ± std over seeds) | per seed | final NLL (end of '
           'budget: epoch) |' % epoch, '|---|---|---|---|']
  for column in columns:
    runs = runs_by_column[column]
    points = {s: kept_points(r)[epoch] for s, r in sorted(runs.items())}
    finals = ' · '.join(f"s{s} {r['metrics']['nll_mean']:.2f} ({r['metrics']['epochs_trained']})"
                        for s, r in sorted(runs.items()))
    lines.append(f"| {title(column)} | {_mean_std([p['nll_mean'] for p in points.values()])} | "
                 + ' · '.join(f"s{s} {p['nll_mean']:.2f} ± {p['nll_sem']:.2f}"
                              for s, p in points.items()) + f' | {finals} |')
  pairs = [(c, r) for c in columns for r in columns if r[1] == 0 and c[1]]
  flows = [c for c in columns if c[1]]
  pairs += [(a, b) for i, a in enumerate(flows) for b in flows[i + 1:]]
  lines += ['', '| paired by seed (same images, same binarisation) | mean ± std over seeds | '
            '95 % t interval | per seed (± paired s.e.) |', '|---|---|---|---|']
  for a, b in pairs:
    seeds = sorted(set(runs_by_column[a]) & set(runs_by_column[b]))
    if not seeds:
      continue
    diffs = [paired(kept_points(runs_by_column[a][s])[epoch],
                    kept_points(runs_by_column[b][s])[epoch]) for s in seeds]
    lines.append(f'| {title(a)} − {title(b)} | {_mean_std([d for d, _ in diffs])} | '
                 f'{_interval([d for d, _ in diffs])} | '
                 + ' · '.join(f's{s} {d:.2f} ± {se:.2f}' for s, (d, se) in zip(seeds, diffs))
                 + ' |')
  return '\n'.join(lines) + '\n'


def equal_epochs_markdown(records):
  """Equal-epochs Table 1 of one protocol's records, one section per machine and K.

  Each K is read at the largest kept epoch that every model of that K (the VAE included)
  reached on that machine, paired by seed.
  """
  out = ['# NLL at equal epochs\n',
         'Generated by `lvae_tf.nll_curves.equal_epochs_markdown` from the records\' '
         '`metrics.nll_curve`: the NLL of the best weights as of the epoch shown, on the '
         'curve\'s subset of the NLL test images (the same images for every model; each seed '
         'binarises them with its own seed). A seed is one replication; differences are paired '
         'image by image within a seed. The final NLL column is the record\'s own NLL (all '
         'NLL images) at the end of its budget, with the epochs it trained.\n']
  machines = sorted({machine_of(r) for r in records})
  for machine in machines:
    blocks = _by_k([r for r in records if machine_of(r) == machine])
    if not blocks:
      continue
    out.append(f'## {machine}\n')
    for k in sorted(blocks):
      epochs = common_epochs(blocks[k])
      if not epochs:
        out.append(f'### K = {k}\n\nNo kept epoch common to every model of this K.\n')
        continue
      out.append(_block(k, blocks[k], epochs[-1]))
  return '\n'.join(out)


def plot_nll_curves(records, path):
  """NLL against epochs and against training CPU-minutes, one row per K (matplotlib).

  Each column (model) is drawn as the mean over its seeds at the epochs all its seeds reached,
  with the seeds' range shaded; the final NLL of each seed is a separate marker (measured on
  all NLL images, so it is not a point of the same line).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  blocks = _by_k(records)
  if not blocks:
    raise ValueError('no record with an NLL curve (metrics.nll_curve).')
  ks = sorted(blocks)
  fig, axes = plt.subplots(len(ks), 2, figsize=(10, 3.4 * len(ks)), squeeze=False)
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for row, k in zip(axes, ks):
    columns = sorted_columns(blocks[k])
    for i, column in enumerate(columns):
      runs = list(blocks[k][column].values())
      epochs = sorted(set.intersection(*[set(kept_points(r)) for r in runs]))
      color = colors[i % len(colors)]
      label = column_title(column) + f' ({len(runs)} seeds)'
      for ax, x_key in zip(row, ('epoch', 'train_cpu_minutes')):
        xs, means, lows, highs = [], [], [], []
        for e in epochs:
          points = [kept_points(r)[e] for r in runs]
          values = [p['nll_mean'] for p in points]
          x = [p[x_key] for p in points if p[x_key] is not None]
          if not x:
            continue
          xs.append(sum(x) / len(x))
          means.append(sum(values) / len(values))
          lows.append(min(values))
          highs.append(max(values))
        ax.plot(xs, means, '-o', ms=3, color=color, label=label)
        ax.fill_between(xs, lows, highs, color=color, alpha=0.2, lw=0)
        final_x = [r['metrics']['epochs_trained'] if x_key == 'epoch'
                   else r['wall_seconds']['train_cpu_total'] / 60. for r in runs]
        ax.plot(final_x, [r['metrics']['nll_mean'] for r in runs], 'x', color=color, ms=6)
    for ax, xlabel in zip(row, ('epochs', 'training CPU-minutes')):
      ax.set_xlabel(xlabel)
      ax.set_ylabel('NLL (nats)')
      ax.set_title(f'K = {k}')
      ax.grid(alpha=0.3)
    row[0].legend(fontsize=8)
  fig.suptitle('NLL of the best weights so far (lines: mean over seeds, shaded: range; '
               'x: final NLL)', fontsize=9)
  fig.tight_layout()
  with filesafety.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)
  return path
