"""The Figure 3 report as files: `markdown` (`figure3.md`) and `write_outputs` (json, md, png)."""

import os

from lvae_tf import filesafety
from lvae_tf.figure3 import analysis
from lvae_tf.figure3 import plotting
from lvae_tf.figure3 import records
from lvae_tf.figure3 import settings as settings_lib


def _fmt(v, digits=2, unit=''):
  if v is None:
    return '–'
  return f'{v:.{digits}f}{unit}'


def _mean_load(load):
  samples = [v for _, v in load.get('samples_seconds_load1', [])]
  return sum(samples) / len(samples) if samples else float('nan')


def _mode_text(record):
  """The XLA cell of a table row: 'off', 'on', or e.g. 'off, mixed_bfloat16'."""
  precision = record.get('precision', settings_lib.PRECISIONS[0])
  return ('on' if record['xla'] else 'off') + (
      '' if precision == settings_lib.PRECISIONS[0] else f', {precision}')


def _header(report):
  env, load, s = report['environment'], report['load'], report['settings']
  lines = ['# Figure 3: time and memory of Langevin-VAE vs HVAE', '']
  lines.append(
      f'Device: {env["device"]}; TensorFlow {env["tensorflow"]}, TFP '
      f'{env["tensorflow_probability"]}; {env["date"]}. Load average (1 min) '
      f'{load["start"][0]:.2f} at the start, {load["end"][0]:.2f} at the end, '
      f'{_mean_load(load):.2f} on average over the run (our own process adds '
      f'up to ~2), {load["cpu_count"]} logical CPUs. Preset `{s["preset"]}`'
      f'{"" if report["complete"] else " (INCOMPLETE run)"}.')
  precisions = s.get('precisions', [settings_lib.PRECISIONS[0]])
  lines += ['', (
      f'Training step at batch {s["train_batch"]} (median of {s["repeats"]} '
      f'timed steps after {s["warmup"]} warm-up, interleaved over models; '
      f'epoch = {s["train_images"]} images), evaluation batch {s["test_batch"]}, '
      f'peak memory at batch {s["memory_batch"]}, largest batch within '
      f'{s["budget_mib"]} MiB. ' + (
          f'XLA on: K in {s["xla_steps"]}, {s["xla_repeats"]} timed repeats.'
          if 'on' in s.get('xla', ['off', 'on']) else 'XLA off only.')) + (
          '' if list(precisions) == [settings_lib.PRECISIONS[0]]
          else f' Precisions: {", ".join(precisions)}.')]
  return lines


def _ratios_section(report):
  lines = ['', '## Ratios Langevin / HVAE', '',
           '| K | XLA | train time / ref | K/2K | train time / cached | K/(K+1) '
           '| predicted with fixed costs | CPU time / ref | CPU time / cached '
           '| predicted (CPU) | test time / ref | test time / cached '
           '| train peak mem / ref | / cached | largest batch / ref '
           '| bound (memory model) | largest batch / cached |',
           '|' + '---|' * 17]
  columns = ('train_time_reference', 'gradient_ratio_reference', 'train_time_cached',
             'gradient_ratio_cached', 'predicted_train_time_cached',
             'train_cpu_time_reference', 'train_cpu_time_cached',
             'predicted_train_cpu_time_cached', 'test_time_reference',
             'test_time_cached', 'train_memory_reference', 'train_memory_cached',
             'largest_batch_reference', 'largest_batch_bound_reference',
             'largest_batch_cached')
  for r in report['ratios']:
    cells = [str(r['num_steps']), _mode_text(r)] + [_fmt(r.get(c)) for c in columns]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['',
            '"predicted with fixed costs": `(f + K u) / (f + (K+1) u)` with the '
            'fixed time `f` and the time per gradient `u` fitted by least squares '
            'on the VAE and HVAE runs only (not on Langevin), for wall-clock and '
            'for CPU time. Paper (GPU): '
            '~17 vs ~24 s/epoch (ratio ~0.71), ~23% less memory at batch 1200 '
            '(ratio ~0.77), about 2x the batch in 4 GiB.', '']
  mm = (report.get('memory_model') or {}).get('xla_off')
  if mm:
    f, u = (mm['fixed_bytes_per_example'] / 1024,
            mm['bytes_per_example_per_gradient'] / 1024)
    lines += [
        f'Memory model (XLA off, fitted on the VAE and HVAE runs\' peak-memory '
        f'slopes): each example costs f = {f:.0f} KiB outside the flow '
        f'(encoder, final decoder pass, loss, the batch) plus u = {u:.0f} KiB '
        'per gradient evaluation kept for the backward pass. The largest-batch '
        'ratio Langevin / HVAE reference is then at most (2K u + f) / (K u + f) '
        '("bound" column): below 2 for any f > 0, so a 2x larger batch at the '
        'same K would need Langevin to store less per gradient than HVAE.', '']
  return lines


def _precision_section(report):
  rows = report.get('precision_ratios') or []
  if not rows:
    return []
  lines = ['', f'## {settings_lib.PRECISIONS[1]} throughput over {settings_lib.PRECISIONS[0]}', '',
           '(float32 step time / bf16 step time, measured side by side; > 1 means bf16 is '
           'faster)', '', '| flow | K | XLA | train (wall) | train (CPU) | eval (wall) |',
           '|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f"| {settings_lib.title(r['flow'])} | {r['num_steps']} | "
                 f"{'on' if r['xla'] else 'off'} | {_fmt(r['train_time'])} | "
                 f"{_fmt(r['train_cpu_time'])} | {_fmt(r['test_time'])} |")
  return lines + ['']


def _targets_section(report):
  targets = report.get('targets') or {}
  if not targets:
    return []
  lines = [f'## Targets (K = {targets["num_steps"]}, XLA off)', '']
  if targets['num_steps'] != 10:
    lines += ['The targets are set for K = 10; this run has no K = 10, so they '
              f'are shown at K = {targets["num_steps"]} for form only.', '']
  lines += ['| target | measured | wanted | met |', '|---|---|---|---|']
  for name, t in targets.items():
    if name == 'num_steps':
      continue
    met = {True: 'yes', False: 'NO', None: '–'}[t['met']]
    lines.append(f'| {name} | {_fmt(t["value"], 3)} | {t["target"]} | {met} |')
  lines.append('')
  return lines


def _mib(value):
  return None if value is None else value / 2**20


def _runs_section(report):
  lines = ['## Runs', '',
           '| flow | K | XLA | grads / train step | grads / eval batch '
           '| train s/step (IQR) | train s/epoch | CPU s/step | eval s/batch (IQR) '
           '| train peak MiB | eval peak MiB | largest batch (method) |',
           '|' + '---|' * 12]
  for r in report['runs']:
    ts, cpu = r.get('train_step_seconds', {}), r.get('train_step_cpu_seconds', {})
    es, mem = r.get('test_batch_seconds', {}), r.get('memory', {})
    lb = r.get('largest_batch')
    lb_text = '–' if lb is None else (
        f'{lb["batch"]} ({lb["method"]}'
        f'{"" if lb.get("verified", True) else ", NOT verified"})')
    lines.append(
        f'| {settings_lib.title(r["flow"])} | {r["num_steps"]} | {_mode_text(r)} '
        f'| {r["gradients_per_train_step"]} | {r["gradients_per_test_batch"]} '
        f'| {_fmt(ts.get("median"), 3)} ({_fmt(ts.get("iqr"), 3)}) '
        f'| {_fmt(records.value_at(r, "train_epoch_seconds", "median"), 1)} '
        f'| {_fmt(cpu.get("median"), 3)} '
        f'| {_fmt(es.get("median"), 3)} ({_fmt(es.get("iqr"), 3)}) '
        f'| {_fmt(_mib(mem.get("train_peak_bytes")), 0)} '
        f'| {_fmt(_mib(mem.get("test_peak_bytes")), 0)} '
        f'| {lb_text} |')
  lines += ['', 'Times are wall-clock unless marked CPU (process CPU seconds, '
            'all threads: much less sensitive to other processes\' load than '
            'wall-clock). Gradient counts are the target-gradient evaluations '
            'each step runs, read from the bijectors\' `GradientCounter` (under '
            'XLA the compiler may merge identical ones, see the notes). Peak '
            'memory: TensorFlow\'s allocator peak on the device during one '
            'call, minus what was allocated before it, plus the model\'s '
            'weights and optimizer slots (what a process holding only this '
            'model would peak at). Largest batch: the largest measured batch '
            'whose peak fits the budget.']
  return lines


def _notes(report):
  """The report's notes, plus one per XLA-on K where XLA merged HVAE's duplicate gradient."""
  runs, notes = report['runs'], list(report.get('notes') or [])
  for r in report['ratios']:
    if not r['xla'] or r['num_steps'] <= 1:
      continue
    precision = r.get('precision', settings_lib.PRECISIONS[0])
    ref = records.find_run(runs, 'hvae-reference', r['num_steps'], True, precision)
    cached = records.find_run(runs, 'hvae-cached', r['num_steps'], True, precision)
    m = records.ratio(records.value_at(ref, 'memory', 'train_peak_bytes'),
                      records.value_at(cached, 'memory', 'train_peak_bytes'))
    if m is not None and m < 1.1:
      notes.append(
          f'XLA on, K = {r["num_steps"]}: the reference HVAE needs only '
          f'{m:.2f}x the training memory of the cached one (XLA off: 2K vs '
          'K+1 gradients\' worth). XLA merges the duplicated start-of-step '
          'gradient (same z, same weights as the previous end-of-step one) by '
          'common-subexpression elimination, so under XLA "reference" is no '
          'longer a 2K-gradient baseline, although the counter (which counts '
          'requested evaluations) still reads 2K.')
  return [''] + [f'* {n}' for n in notes] if notes else []


def markdown(report):
  """`figure3.md`: header, ratio table, memory model, targets, per-run table, notes.

  Args:
    report: an analysed report (`run`, or `analyse` of a loaded `figure3.json`).
  """
  lines = (_header(report) + _ratios_section(report) + _precision_section(report) +
           _targets_section(report) + _runs_section(report) + _notes(report))
  return '\n'.join(lines) + '\n'


def write_outputs(report, output_dir, with_plot=True):
  """Analyses `report` and writes `figure3.json`, `figure3.md` (and `figure3.png`) atomically.

  Returns:
    The paths written.
  """
  analysis.analyse(report)
  paths = [os.path.join(output_dir, 'figure3.json'), os.path.join(output_dir, 'figure3.md')]
  filesafety.write_json_atomic(paths[0], report)
  filesafety.write_text_atomic(paths[1], markdown(report))
  if with_plot:
    paths.append(os.path.join(output_dir, 'figure3.png'))
    plotting.plot(report, paths[-1])
  return paths
