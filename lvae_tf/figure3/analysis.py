"""The analysis of Figure 3: ratios Langevin / HVAE, time cost and memory models.

`analyse` adds to a report the ratios per (K, XLA mode, precision) next to the gradient-count
ratios (`compute_ratios`), the cost model `t = f + u * gradients` (`cost_model`) and the
per-example memory model (`memory_model`) fitted on the VAE and HVAE runs, the bf16 / float32
throughput (`precision_ratios`) and the targets (`lvae_tf.figure3.targets`).
"""

from lvae_tf import registry
from lvae_tf.figure3 import records
from lvae_tf.figure3 import settings as settings_lib
from lvae_tf.figure3 import targets


def _modes(runs):
  """(precision, xla) of the runs: precisions in `PRECISIONS` order, XLA off first."""
  modes = {(records.precision_of(r), r['xla']) for r in runs}
  order = {p: i for i, p in enumerate(settings_lib.PRECISIONS)}
  return sorted(modes, key=lambda m: (order.get(m[0], len(order)), m[0], m[1]))


def _mode_key(xla, precision=settings_lib.PRECISIONS[0]):
  """'xla_off', 'xla_on', 'xla_off_mixed_bfloat16', ...: keys of the fitted models."""
  return ('xla_on' if xla else 'xla_off') + (
      '' if precision == settings_lib.PRECISIONS[0] else f'_{precision}')


def _fit_line(points):
  """Least-squares (intercept, slope) through (x, y) points."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  x, y = np.array(points, dtype=float).T
  slope, intercept = np.polyfit(x, y, 1)
  return float(intercept), float(slope)


def _subjects():
  """What Figure 3 compares: `[(subject variant, {name: baseline variant})]`.

  A subject is each variant of a flow with `paired_with` (Langevin), its baselines every
  variant of the flows it is paired with (HVAE), named by the variant's value ('reference',
  'cached'): the suffix of the ratio keys.
  """
  out = []
  for spec in registry.flows():
    baselines = {v.value or v.label: v for other in spec.paired_with
                 if other in registry.flow_names() for v in registry.flow(other).variants}
    out += [(v, baselines) for v in spec.variants if baselines]
  return out


def _fitted(runs):
  """The runs the cost and memory models are fitted on (all but the subjects', `_subjects`)."""
  subjects = {v.label for v, _ in _subjects()}
  return [r for r in runs if r['flow'] not in subjects]


def _fitted_on(runs):
  """'vae, hvae-reference, hvae-cached': the flows of `runs`, in registration order."""
  labels = [v.label for v in registry.variants()]
  present = {r['flow'] for r in runs}
  return ', '.join([l for l in labels if l in present] + sorted(present - set(labels)))


def cost_model(runs, xla, key='train_step_seconds', precision=settings_lib.PRECISIONS[0]):
  """Fits `t = fixed + per_gradient * gradients` on the VAE and HVAE runs (not on Langevin).

  The runs fitted are those of every flow but the compared ones (`_subjects`).

  Args:
    runs: run records.
    xla: the XLA mode (bool) of the runs to fit.
    key: the timing, 'train_step_seconds' (wall-clock) or 'train_step_cpu_seconds'.
    precision: the precision of the runs to fit.

  Returns:
    dict `fixed_seconds`, `per_gradient_seconds`, `fitted_on`, `points`; None without two
    distinct gradient counts.
  """
  fitted = [r for r in _fitted(runs)
            if r['xla'] == xla and records.precision_of(r) == precision and key in r]
  pts = [(r['gradients_per_train_step'], r[key]['median']) for r in fitted]
  if len({g for g, _ in pts}) < 2:
    return None
  intercept, slope = _fit_line(pts)
  return {'fixed_seconds': intercept, 'per_gradient_seconds': slope,
          'fitted_on': _fitted_on(fitted),
          'points': [[float(a), float(b)] for a, b in pts]}


def memory_model(runs, xla, precision=settings_lib.PRECISIONS[0]):
  """Fits the per-example slope of peak memory: `slope = f + u * gradients` (VAE, HVAE runs).

  The slopes come from the largest-batch fits. With `f` (bytes per example outside the
  flow: encoder, final decoder pass, loss, the batch) and `u` (bytes per example kept per
  gradient evaluation for the backward pass), the largest-batch ratio Langevin / HVAE
  reference is at most `(2K u + f) / (K u + f)`, below 2 for any `f > 0`.

  Returns:
    dict `fixed_bytes_per_example`, `bytes_per_example_per_gradient`, `fitted_on`, `points`;
    None without two distinct gradient counts.
  """
  fitted = [r for r in _fitted(runs)
            if r['xla'] == xla and records.precision_of(r) == precision and
            'slope_bytes_per_example' in (r.get('largest_batch') or {})]
  pts = [(r['gradients_per_train_step'],
          r['largest_batch']['slope_bytes_per_example']) for r in fitted]
  if len({g for g, _ in pts}) < 2:
    return None
  intercept, slope = _fit_line(pts)
  return {'fixed_bytes_per_example': intercept,
          'bytes_per_example_per_gradient': slope,
          'fitted_on': _fitted_on(fitted),
          'points': [[float(a), float(c)] for a, c in pts]}


def _measured_ratios(row, lang, others):
  """Langevin / other for time, CPU time, memory and largest batch, into `row`."""
  paths = {'train_time': ('train_step_seconds', 'median'),
           'train_cpu_time': ('train_step_cpu_seconds', 'median'),
           'test_time': ('test_batch_seconds', 'median'),
           'train_memory': ('memory', 'train_peak_bytes'),
           'test_memory': ('memory', 'test_peak_bytes'),
           'largest_batch': ('largest_batch', 'batch')}
  for name, other in others.items():
    if other is None:
      continue
    for quantity, path in paths.items():
      row[f'{quantity}_{name}'] = records.ratio(records.value_at(lang, *path),
                                                records.value_at(other, *path))


def compute_ratios(runs):
  """Langevin / HVAE ratios per (K, XLA mode, precision), with what the models predict.

  The subjects and baselines come from the registry (`_subjects`): Langevin against HVAE
  reference and cached, the ratio keys ending in the baseline's name. Every row has the
  gradient-count ratios K/2K and K/(K+1) (the flows' `gradients`); the measured ratios against
  each HVAE that was run; the time ratios the cost model predicts,
  `(f + K u) / (f + (K+1) u)` (cached) and `(f + K u) / (f + 2K u)` (reference), for
  wall-clock and CPU time; and the memory model's bounds on the largest-batch ratios. With
  more than one subject flow, a row names its subject (`flow`).
  """
  out = []
  subjects = _subjects()
  for precision, xla in _modes(runs):
    models = {'': cost_model(runs, xla, precision=precision),
              '_cpu': cost_model(runs, xla, key='train_step_cpu_seconds',
                                 precision=precision)}
    mem_model = memory_model(runs, xla, precision=precision)
    for subject, baselines in subjects:
      for k in sorted({r['num_steps'] for r in runs if r['flow'] == subject.label and
                       r['xla'] == xla and records.precision_of(r) == precision}):
        gs, gb = subject.gradients(k), {n: v.gradients(k) for n, v in baselines.items()}
        row = {'num_steps': k, 'xla': xla, 'precision': precision,
               **({'flow': subject.label} if len(subjects) > 1 else {}),
               **{f'gradient_ratio_{n}': records.ratio(gs, g) for n, g in gb.items()}}
        _measured_ratios(
            row, records.find_run(runs, subject.label, k, xla, precision),
            {n: records.find_run(runs, v.label, k, xla, precision) for n, v in baselines.items()})
        for suffix, m in models.items():
          if m is not None:
            f, u = m['fixed_seconds'], m['per_gradient_seconds']
            for n, g in gb.items():
              row[f'predicted_train{suffix}_time_{n}'] = (f + gs * u) / (f + g * u)
        if mem_model is not None:
          f = mem_model['fixed_bytes_per_example']
          u = mem_model['bytes_per_example_per_gradient']
          for n, g in gb.items():
            row[f'largest_batch_bound_{n}'] = (g * u + f) / (gs * u + f)
        out.append(row)
  return out


def precision_ratios(runs):
  """bf16 throughput over float32 (float32 step time / bf16 step time), per flow, K and XLA.

  Returns:
    A list of `{'flow', 'num_steps', 'xla', 'train_time', 'train_cpu_time', 'test_time'}`
    for every model measured in both precisions (`train_time` 2.0 = bf16 trains twice as
    fast); empty when only one precision was measured.
  """
  out = []
  low = settings_lib.PRECISIONS[1]
  for r in runs:
    if records.precision_of(r) != settings_lib.PRECISIONS[0]:
      continue
    other = records.find_run(runs, r['flow'], r['num_steps'], r['xla'], low)
    if other is None:
      continue
    out.append({
        'flow': r['flow'], 'num_steps': r['num_steps'], 'xla': r['xla'],
        'precision': low,
        'train_time': records.ratio(
            records.value_at(r, 'train_step_seconds', 'median'),
            records.value_at(other, 'train_step_seconds', 'median')),
        'train_cpu_time': records.ratio(
            records.value_at(r, 'train_step_cpu_seconds', 'median'),
            records.value_at(other, 'train_step_cpu_seconds', 'median')),
        'test_time': records.ratio(
            records.value_at(r, 'test_batch_seconds', 'median'),
            records.value_at(other, 'test_batch_seconds', 'median')),
    })
  return out


def analyse(report):
  """Adds `ratios`, `precision_ratios`, `targets`, `memory_model` and `cost_model`."""
  runs = report['runs']
  report['ratios'] = compute_ratios(runs)
  report['precision_ratios'] = precision_ratios(runs)
  report['targets'] = targets.evaluate_targets(report['ratios'])
  modes = _modes(runs)
  report['memory_model'] = {_mode_key(x, p): memory_model(runs, x, p) for p, x in modes}
  report['cost_model'] = {
      _mode_key(x, p): {
          'wall': cost_model(runs, x, precision=p),
          'cpu': cost_model(runs, x, key='train_step_cpu_seconds', precision=p)}
      for p, x in modes}
  return report
