"""The ablation table: runs that differ only in chosen config fields, paired by seed."""

import dataclasses

from lvae_tf.results.stats import format_cell
from lvae_tf.results.stats import format_mean_std
from lvae_tf.results.stats import paired_nll

__all__ = ['ablation_markdown']


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
          return format_cell([paired_nll({'metrics': runs[common[0]][1]},
                                  {'metrics': baseline[common[0]][1]})])
        except ValueError:
          pass
      return format_mean_std([runs[s][1][metric] - baseline[s][1][metric] for s in common])

    flow = [m.get('flow_parameters', {}) for m in metrics]
    cells = [
        ', '.join(str(s) for s in seeds),
        f'{nu0:.3f}' if nu0 is not None else '',
        f'{configs[0].num_steps * nu0 * configs[0].step_size:.3f}' if nu0 is not None else '',
        format_cell([(m['nll_mean'], m.get('nll_sem', 0.)) for m in metrics if 'nll_mean' in m]),
        paired('nll_mean'),
        format_mean_std([m.get('test_elbo') for m in metrics]),
        paired('test_elbo'),
        format_mean_std([f.get('damping_mean') for f in flow]),
        format_mean_std([f.get('log_det_per_step') for f in flow]),
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

