"""Validation ELBO at equal epochs and at equal CPU time: the convergence table of a protocol."""

import math

from lvae_tf.results.columns import baseline_label
from lvae_tf.results.columns import column_of
from lvae_tf.results.columns import column_title
from lvae_tf.results.columns import paired_labels
from lvae_tf.results.columns import sorted_columns
from lvae_tf.results.machine import machine_labels
from lvae_tf.results.machine import machine_of
from lvae_tf.results.machine import per_machine
from lvae_tf.results.stats import format_mean_std
from lvae_tf.results.store import protocol_of

__all__ = ['SAME_TRAINING_NATS', 'convergence_markdown', 'machine_agreement']


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
    return (per_machine(with_history,
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


def _best_by(history, key, limit):
  """The best validation ELBO of the epochs with `h[key] <= limit` (None if there are none)."""
  values = [h['val_elbo'] for h in history if h[key] <= limit]
  return max(values) if values else None


def _runs_by_column(records):
  """`{column: {seed: history}}`; a seed recorded on several machines keeps its longest."""
  runs = {}
  for r in records:
    seeds = runs.setdefault(column_of(r), {})
    seed = r['config']['seed']
    if len(r['history']) > len(seeds.get(seed, ())):
      seeds[seed] = r['history']
  return runs


def _pairs(columns):
  """The paired comparisons of a convergence table: each flow against the VAE, and Langevin
  against each HVAE variant of the same K (`[(column, reference column), ...]`)."""
  baseline = (baseline_label(), 0)
  pairs = [(c, baseline) for c in columns if c[0] != baseline[0] and baseline in columns]
  return pairs + [(c, h) for c in columns
                  for h in columns if h[0] in paired_labels(c[0], columns) and h[1] == c[1]]


def _convergence_table(runs, epochs, cpu_minutes, totals=True):
  """The lines of the convergence tables of `runs` (`_runs_by_column`).

  Two tables: the models' best validation ELBO, then (if any model has a partner) the paired
  differences by seed, `[model table lines, '', paired table lines]`.
  """
  columns = sorted_columns(runs)
  pairs = _pairs(columns)
  model_lines = ['| ' + ' | '.join(['', *map(column_title, columns)]) + ' |',
                 '|---' * (len(columns) + 1) + '|']
  paired_lines = ['| ' + ' | '.join(['paired by seed', *(
      f'{column_title(c)} − {column_title(r)}' for c, r in pairs)]) + ' |',
                  '|---' * (len(pairs) + 1) + '|']

  def row(label, value_of, digits=2, paired=True):
    values = {c: {seed: value_of(h) for seed, h in runs[c].items()} for c in columns}
    cells = [format_mean_std(values[c].values(), digits) for c in columns]
    if any(cells):
      model_lines.append('| ' + ' | '.join([label, *cells]) + ' |')
    differences = [format_mean_std([v - values[r][seed] for seed, v in values[c].items()
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
      groups.setdefault((column_of(r), r['config']['seed']), {})[machine_of(r)] = {
          h['epoch']: h['val_elbo'] for h in r['history']}
  agreement = []
  for column in sorted_columns({c for c, _ in groups}):
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
      f'{column_title(column)} seed {seed} on {" and ".join(machines)}: {common} common '
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
    machines_of.setdefault((column_of(r), r['config']['seed']), []).append(labels[machine_of(r)])
  seed_cells = [', '.join(f'{seed} ({"".join(sorted(machines_of[(c, seed)]))})'
                          for seed in sorted(runs[c])) for c in sorted_columns(runs)]
  end = lines.index('') if '' in lines else len(lines)  # of the models' table
  lines.insert(end, '| ' + ' | '.join(['seeds (machines)', *seed_cells]) + ' |')
  return '\n'.join([
      '', '### All machines, at equal epochs', '',
      f'A budget of CPU time decides how many epochs a run trains, not what an epoch computes. '
      f'Each run recorded on two machines retraces itself ({checked}), so epoch e of a seed is '
      f'the same model on every machine, and the equal-epochs rows pool the seeds of all '
      f'machines (a seed recorded on several counts once). Equal CPU time and the NLL stay per '
      f'machine.', '', *lines, '']) + '\n'

