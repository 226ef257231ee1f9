"""Figure 3: settings, cost and memory models, markdown, plot, largest-batch search, the script.

The analysis and rendering are tested on a small fake report whose times and memory follow
known linear laws, so the fitted models and ratios have exact expected values. Measurement is
tested by running the script on the tiny preset. No timing assertions on real runs: times
depend on the machine and its load.
"""

import ast
import copy
import json
import math
import os
import subprocess
import sys

import pytest

from lvae_tf import figure3
from lvae_tf.figure3 import measure as figure3_measure
from lvae_tf.figure3 import report as figure3_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

# Executed target-gradient evaluations per training step (and per evaluation batch), K = 2.
EXPECTED_GRADIENTS_K2 = {'langevin': 2, 'hvae-reference': 4, 'hvae-cached': 3,
                         'vae': 0}

# The laws behind the fake report: step seconds = F_SECONDS + U_SECONDS * gradients (CPU
# seconds twice that), peak-memory slope per example = F_BYTES + U_BYTES * gradients.
F_SECONDS, U_SECONDS = 0.1, 0.05
F_BYTES, U_BYTES = 100 * 1024, 50 * 1024
BUDGET = 2**30


def _timing(median):
  return {'median': median, 'q25': 0.9 * median, 'q75': 1.1 * median,
          'iqr': 0.2 * median, 'n': 2}


def _gradients(flow, k):
  return {'langevin': k, 'hvae-reference': 2 * k, 'hvae-cached': k + 1, 'vae': 0}[flow]


def _fake_run(flow, k, xla=False, precision='float32'):
  g = _gradients(flow, k)
  t = F_SECONDS + U_SECONDS * g
  slope = F_BYTES + U_BYTES * g
  return {
      'flow': flow, 'num_steps': k, 'xla': xla, 'precision': precision,
      'gradients_per_train_step': g, 'gradients_per_test_batch': g,
      'train_step_seconds': _timing(t), 'train_step_cpu_seconds': _timing(2 * t),
      'train_epoch_seconds': dict(_timing(50 * t), steps_per_epoch=50),
      'test_batch_seconds': _timing(t / 3),
      'memory': {'device': 'CPU:0', 'batch': 1200,
                 'train_peak_bytes': 1200 * slope, 'test_peak_bytes': 400 * slope},
      'largest_batch': {'batch': BUDGET // slope, 'method': 'affine-fit+verify',
                        'verified': True, 'slope_bytes_per_example': slope},
  }


def _fake_report(runs=None, complete=True):
  if runs is None:
    runs = [_fake_run(f, 0 if f == 'vae' else 2) for f in figure3.FLOW_ORDER]
  return {
      'kind': 'figure3', 'complete': complete,
      'settings': figure3.make_settings('tiny').to_dict(),
      'environment': {'device': 'CPU (fake, 2 cores)', 'tensorflow': '2.x',
                      'tensorflow_probability': '0.x', 'date': '2026-01-01'},
      'load': {'start': [1.0], 'end': [2.0], 'cpu_count': 2,
               'samples_seconds_load1': [[0.0, 1.0], [1.0, 2.0]]},
      'runs': runs, 'notes': [],
  }


# -- Settings. --------------------------------------------------------------------


@pytest.mark.parametrize('preset', sorted(figure3.PRESETS))
def test_presets_are_valid_settings(preset):
  s = figure3.make_settings(preset)
  assert s.preset == preset
  assert s.precisions == (figure3.PRECISIONS if preset == 'precision' else ('float32',))
  assert s.xla_steps, 'an empty xla_steps means all of steps'
  assert set(s.xla_steps) <= set(s.steps) or preset != 'cpu'
  json.dumps(s.to_dict())


def test_package_exports_its_modules_api_and_imports_no_tensorflow():
  """`lvae_tf.figure3` re-exports its modules' objects; importing it loads no TensorFlow and sets
  TF_ENABLE_ONEDNN_OPTS (read when TensorFlow is imported later) unless it is set."""
  # pylint: disable=g-import-not-at-top
  from lvae_tf.figure3 import analysis, plotting, settings, targets
  namespace = {}
  exec('from lvae_tf.figure3 import *', namespace)  # pylint: disable=exec-used
  assert set(figure3.__all__) <= set(namespace)
  owners = {'make_settings': settings, 'Settings': settings, 'PRECISIONS': settings,
            'run': figure3_measure, 'measure_mode': figure3_measure,
            'MeasurementError': figure3_measure, 'analyse': analysis, 'cost_model': analysis,
            'evaluate_targets': targets, 'markdown': figure3_report,
            'write_outputs': figure3_report, 'plot': plotting}
  for name, module in owners.items():
    assert getattr(figure3, name) is getattr(module, name), name
  assert figure3.FLOW_ORDER == figure3.flow_order()
  code = ('import os, sys; from lvae_tf import figure3; '
          'print("tensorflow" in sys.modules, os.environ.get("TF_ENABLE_ONEDNN_OPTS"))')
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.split() == ['False', '1']


def test_settings_overrides_accept_flag_values():
  s = figure3.make_settings('tiny', steps=['1', '3'], xla='off,on', xla_steps='',
                            flows=['langevin', 'vae'], train_batch=None)
  assert s.steps == (1, 3) and s.xla == ('off', 'on') and s.xla_steps == (1, 3)
  assert s.flows == ('langevin', 'vae') and s.train_batch == 16  # None keeps the preset's
  assert s.to_dict()['steps'] == [1, 3]


@pytest.mark.parametrize('overrides,message', [
    (dict(flows=['langevin', 'nope']), 'nope'),
    (dict(steps='0'), 'steps'),
    (dict(steps='a'), 'bad integer list'),
    (dict(xla=['maybe']), 'maybe'),
    (dict(fit_batches='48,48'), 'fit_batches'),
    (dict(precisions=['float16']), 'float16'),
    (dict(largest_batch_method='guess'), 'largest_batch_method'),
    (dict(budget_mib=0), 'budget_mib'),
    (dict(colour='red'), 'colour'),
])
def test_bad_settings_name_the_problem(overrides, message):
  with pytest.raises(ValueError, match=message):
    figure3.make_settings('tiny', **overrides)


# -- Cost model, memory model, ratios, targets. ----------------------------------------


def test_cost_model_recovers_fixed_and_per_gradient_time():
  runs = _fake_report()['runs']
  # Langevin is left out of the fit: a Langevin run off the line changes nothing.
  runs[0]['train_step_seconds']['median'] *= 3
  m = figure3.cost_model(runs, False)
  assert m['fixed_seconds'] == pytest.approx(F_SECONDS)
  assert m['per_gradient_seconds'] == pytest.approx(U_SECONDS)
  assert sorted(g for g, _ in m['points']) == [0, 3, 4]
  cpu = figure3.cost_model(runs, False, key='train_step_cpu_seconds')
  assert cpu['fixed_seconds'] == pytest.approx(2 * F_SECONDS)
  assert figure3.cost_model(runs, True) is None  # no XLA-on runs
  assert figure3.cost_model([r for r in runs if r['flow'] == 'vae'], False) is None


def test_memory_model_recovers_per_example_costs():
  runs = _fake_report()['runs']
  m = figure3.memory_model(runs, False)
  assert m['fixed_bytes_per_example'] == pytest.approx(F_BYTES)
  assert m['bytes_per_example_per_gradient'] == pytest.approx(U_BYTES)
  assert figure3.memory_model(runs, False, precision='mixed_bfloat16') is None


def test_ratios_and_predictions_at_k2():
  (row,) = figure3.compute_ratios(_fake_report()['runs'])
  assert (row['num_steps'], row['xla'], row['precision']) == (2, False, 'float32')
  assert row['gradient_ratio_reference'] == 0.5
  assert row['gradient_ratio_cached'] == pytest.approx(2 / 3)
  # t = f + u g with f = 0.1, u = 0.05: Langevin 0.2 s, reference 0.3 s, cached 0.25 s.
  assert row['train_time_reference'] == pytest.approx(0.2 / 0.3)
  assert row['train_time_cached'] == pytest.approx(0.8)
  assert row['train_cpu_time_cached'] == pytest.approx(0.8)
  assert row['predicted_train_time_cached'] == pytest.approx(0.8)
  assert row['predicted_train_time_reference'] == pytest.approx(0.2 / 0.3)
  assert row['train_memory_reference'] == pytest.approx(200 / 300)
  # Memory model bound (2K u + f) / (K u + f) = (200 + 100) / (100 + 100) KiB.
  assert row['largest_batch_bound_reference'] == pytest.approx(1.5)
  assert row['largest_batch_bound_cached'] == pytest.approx(250 / 200)
  assert row['largest_batch_reference'] == pytest.approx(
      (BUDGET // (200 * 1024)) / (BUDGET // (300 * 1024)))


def test_targets_judge_the_float32_xla_off_row():
  runs = _fake_report()['runs']
  runs += [_fake_run(f, 0 if f == 'vae' else 2, precision='mixed_bfloat16')
           for f in figure3.FLOW_ORDER]
  runs[4]['train_step_seconds']['median'] = 1e-3  # a bfloat16 Langevin run: not judged
  ratios = figure3.compute_ratios(runs)
  assert [r['precision'] for r in ratios] == ['float32', 'mixed_bfloat16']
  t = figure3.evaluate_targets(ratios)
  assert t['num_steps'] == 2
  assert t['train_time_langevin_over_reference']['value'] == pytest.approx(2 / 3)
  assert t['train_time_langevin_over_reference']['met'] is False  # wanted <= 0.55
  assert t['train_time_langevin_over_cached']['met'] is True  # equals the prediction
  assert t['largest_batch_langevin_over_reference']['met'] is False  # wanted >= 2
  assert figure3.evaluate_targets([]) == {}


def test_analyse_keys_models_by_mode():
  runs = _fake_report()['runs'] + [_fake_run(f, 0 if f == 'vae' else 2, xla=True)
                                   for f in figure3.FLOW_ORDER]
  report = figure3.analyse(_fake_report(runs))
  assert sorted(report['cost_model']) == ['xla_off', 'xla_on']
  assert sorted(report['memory_model']) == ['xla_off', 'xla_on']
  assert report['cost_model']['xla_on']['cpu']['per_gradient_seconds'] == pytest.approx(
      2 * U_SECONDS)


# -- Markdown and plot. -----------------------------------------------------------


def test_markdown_of_a_fake_report():
  md = figure3.markdown(figure3.analyse(_fake_report()))
  assert md.startswith('# Figure 3: time and memory of Langevin-VAE vs HVAE\n')
  assert 'Preset `tiny`.' in md and 'INCOMPLETE' not in md and 'Precisions' not in md
  assert '| K | XLA | train time / ref | K/2K |' in md
  # K, XLA, train/ref, K/2K, train/cached, K/(K+1), predicted, CPU/ref, CPU/cached, ...
  assert '\n| 2 | off | 0.67 | 0.50 | 0.80 | 0.67 | 0.80 | 0.67 | 0.80 | 0.80 |' in md
  assert 'f = 100 KiB outside the flow' in md and 'u = 50 KiB' in md
  assert '## Targets (K = 2, XLA off)' in md and 'for form only' in md
  assert '| train_time_langevin_over_cached | 0.800 |' in md
  assert '| Langevin-VAE | 2 | off | 2 | 2 | 0.200 (0.040) | 10.0 | 0.400 |' in md
  assert '| VAE | 0 | off | 0 | 0 |' in md and 'HVAE cached (K+1)' in md
  assert md.endswith('whose peak fits the budget.\n')
  xla = 'on' in figure3.make_settings('tiny').xla
  assert ('XLA on: K in' in md) == xla and ('XLA off only.' in md) == (not xla)
  off = _fake_report()
  off['settings']['xla'] = ['off']
  header = figure3.markdown(figure3.analyse(off))
  assert 'XLA off only.' in header and 'XLA on: K in' not in header


def test_markdown_marks_incomplete_runs_precision_and_xla_notes():
  runs = _fake_report()['runs']
  xla_runs = [_fake_run(f, 0 if f == 'vae' else 2, xla=True) for f in figure3.FLOW_ORDER]
  # Under XLA the reference HVAE's duplicate gradient is merged: its memory ~ cached's.
  xla_runs[1]['memory']['train_peak_bytes'] = xla_runs[2]['memory']['train_peak_bytes']
  bf16 = [_fake_run(f, 0 if f == 'vae' else 2, precision='mixed_bfloat16')
          for f in figure3.FLOW_ORDER]
  report = _fake_report(runs + xla_runs + bf16, complete=False)
  report['settings']['precisions'] = ['float32', 'mixed_bfloat16']
  report['notes'] = ['a note of the run.']
  md = figure3.markdown(figure3.analyse(report))
  assert '(INCOMPLETE run)' in md and 'Precisions: float32, mixed_bfloat16.' in md
  assert '\n| 2 | on | ' in md and '\n| 2 | off, mixed_bfloat16 | ' in md
  assert '| Langevin-VAE | 2 | off, mixed_bfloat16 |' in md
  assert '* a note of the run.' in md
  assert '* XLA on, K = 2: the reference HVAE needs only 1.00x' in md


def test_markdown_reads_reports_without_precision():
  report = figure3.analyse(_fake_report())
  old = copy.deepcopy(report)
  for r in old['runs'] + old['ratios']:
    del r['precision']
  del old['settings']['precisions']
  assert figure3.markdown(figure3.analyse(old)) == figure3.markdown(report)


def test_plot_and_write_outputs(tmp_path):
  report = _fake_report()
  paths = figure3.write_outputs(report, str(tmp_path), with_plot=True)
  assert [os.path.basename(p) for p in paths] == ['figure3.json', 'figure3.md',
                                                  'figure3.png']
  with open(tmp_path / 'figure3.png', 'rb') as f:
    assert f.read(8) == PNG_MAGIC
  with open(tmp_path / 'figure3.json') as f:
    assert json.load(f)['ratios'][0]['train_time_cached'] == pytest.approx(0.8)
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp')]


# -- Measurement primitives and the largest-batch search. ---------------------------


def test_benchmark_does_not_import_the_training_loop():
  with open(os.path.join(ROOT, 'lvae_tf', 'benchmark.py')) as f:
    tree = ast.parse(f.read())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom):
      imported |= {f'{node.module}.{a.name}' for a in node.names}
    elif isinstance(node, ast.Import):
      imported |= {a.name for a in node.names}
  assert 'lvae_tf.train' not in imported and 'lvae_tf.models' in imported
  from lvae_tf import models  # pylint: disable=g-import-not-at-top
  from lvae_tf import train  # pylint: disable=g-import-not-at-top
  assert train.build_model is models.build_model


@pytest.mark.slow
def test_step_bench_trains_in_bf16_with_float32_flow():
  """Slow (builds and steps a bf16 model; no fast cover)."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  assert bm.PRECISIONS == figure3.PRECISIONS == ('float32', 'mixed_bfloat16')
  before = keras.mixed_precision.global_policy().name
  bench = bm.StepBench(bm.flow_config('langevin', 1, latent_dim=8), precision='mixed_bfloat16')
  assert bench.model.decoder.get_layer('dense1').compute_dtype == 'bfloat16'
  assert bench.model.decoder.get_layer('logits').compute_dtype == 'float32'
  assert bench.gradients_per_call(lambda: bench.train_step(8), calls=1) == 1
  assert keras.mixed_precision.global_policy().name == before  # nothing global was changed


@pytest.mark.slow
def test_step_bench_counts_gradients_per_call():
  """Slow (builds and steps a model; fast cover: test_bijectors.py::GradientCountTest)."""
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  bench = bm.StepBench(bm.flow_config('langevin', 1, latent_dim=8))
  # Exactly K = 1 gradient per training step, counted in the measured function.
  assert bench.gradients_per_call(lambda: bench.train_step(8), calls=2) == 1
  assert bench.resident_bytes() > 0


def test_largest_batch_by_fit_finds_the_budget_on_a_known_curve():
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  # Flat (batch-independent) peak up to batch 20, then affine: 1000 + 10 * batch.
  def probe(b):
    return max(1200, 1000 + 10 * b)
  result = bm.largest_batch_by_fit(probe, budget_bytes=5000,
                                   fit_batches=[50, 100])
  assert 390 <= result['batch'] <= 400 and result['verified']
  assert len(result['verification']) == 1
  # A fit point on the flat part underestimates the slope: the first verification
  # overshoots, the secant through it corrects the estimate.
  result = bm.largest_batch_by_fit(probe, budget_bytes=5000,
                                   fit_batches=[10, 50])
  assert [v['fits'] for v in result['verification']] == [False, True]
  assert 390 <= result['batch'] <= 400 and result['verified']
  with pytest.raises(ValueError):
    bm.largest_batch_by_fit(lambda b: 100, 1000, [1, 2])


def test_largest_batch_by_search_brackets_and_bisects(monkeypatch):
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  specs = []

  def fake_trial(spec, timeout):
    del timeout
    specs.append(spec)
    return {'batch': spec['batch'], 'fits': spec['batch'] <= 437, 'capped': True}

  monkeypatch.setattr(bm, '_run_trial', fake_trial)
  result = bm.largest_batch_by_search('hvae-cached', 3, budget_mib=64, low=100,
                                      granularity=5, precision='float32')
  assert 432 <= result['batch'] <= 437 and result['capped_device']
  tried = [s['batch'] for s in specs]
  assert tried[:4] == [100, 200, 400, 800]  # doubled until one fails, then bisected
  assert all(s['flow'] == 'hvae-cached' and s['num_steps'] == 3 for s in specs)
  # Too-high first guess: halved until one fits.
  specs.clear()
  assert bm.largest_batch_by_search('vae', 0, low=2000, high=2001,
                                    granularity=50)['batch'] >= 437 - 50
  assert [s['batch'] for s in specs][:3] == [2000, 1000, 500]


def test_search_orchestration_brackets_the_fit_estimate(monkeypatch):
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top

  class FakeBench:
    precision = 'float32'

    def train_peak(self, batch, device):
      del device
      return 10 * 2**20 + batch * 2**20 // 4  # 10 MiB + 256 KiB per example

    def forget_batch(self, batch):
      del batch

  calls = []

  def fake_search(flow, num_steps, **kwargs):
    calls.append(dict(kwargs, flow=flow, num_steps=num_steps))
    return {'batch': kwargs['low'], 'method': 'subprocess-search'}

  monkeypatch.setattr(bm, 'largest_batch_by_search', fake_search)
  settings = figure3.make_settings('tiny', largest_batch_method='search', budget_mib=110)
  result = figure3_measure._largest_batch(  # pylint: disable=protected-access
      settings, FakeBench(), ('langevin', 2), {}, False, 'CPU:0', lambda _: None)
  # (110 - 10) MiB / 256 KiB = 400 examples (399 after round-off): bracket +-10%, bisect to 1%.
  guess = result['estimate_from_fit']
  assert guess in (399, 400)
  (call,) = calls
  assert (call['low'], call['high'], call['granularity']) == (
      int(0.9 * guess), int(1.1 * guess) + 1, guess // 100)
  assert call['budget_mib'] == 110 and call['precision'] == 'float32'


@pytest.mark.slow
def test_search_trial_runs_in_a_subprocess():
  """Slow (a subprocess training step; fast cover: the bisection tests with fake trials). One real
  trial process on the CPU: spec in, JSON report out (no GPU cap to apply)."""
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  result = bm.largest_batch_by_search('vae', 0, budget_mib=1, low=1,
                                      overrides={'latent_dim': 8}, timeout=600)
  (trial,) = result['trials']
  assert trial.get('error') is None, trial
  assert trial['batch'] == 1 and not trial['capped'] and not trial['oom']
  assert trial['peak_bytes'] > 2**20 and trial['fits'] is False  # weights alone exceed 1 MiB
  assert result['batch'] == 0 and result['method'] == 'subprocess-search'


# -- The script. ------------------------------------------------------------------


def _run_script(out, *flags_):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.figure3', *flags_, f'--output_dir={out}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(out, 'figure3.json')) as f:
    return json.load(f)


def _check_outputs(out, report):
  assert report['kind'] == 'figure3' and report['complete'] is True
  assert report['settings']['preset'] == 'tiny'
  assert report['settings']['precisions'] == ['float32']
  assert report['environment']['tensorflow']
  for r in report['runs']:
    assert r['gradients_per_train_step'] == EXPECTED_GRADIENTS_K2[r['flow']]
    assert r['gradients_per_test_batch'] == EXPECTED_GRADIENTS_K2[r['flow']]
    for key in ('train_step_seconds', 'train_step_cpu_seconds',
                'test_batch_seconds'):
      assert r[key]['n'] == report['settings']['repeats'], (r['flow'], key)
      assert math.isfinite(r[key]['median']) and r[key]['median'] > 0
    assert r['memory']['train_peak_bytes'] > 0
    assert r['memory']['test_peak_bytes'] > 0
    lb = r['largest_batch']
    assert lb['method'] == 'affine-fit+verify' and lb['batch'] > 0
    # Peak memory grows with the batch; the answer is a measured batch within the budget.
    fit = sorted((p['batch'], p['peak_bytes']) for p in lb['fit_points'])
    assert fit[0][1] < fit[-1][1], fit
    measured = {p['batch']: p['peak_bytes']
                for p in lb['fit_points'] + lb['verification']}
    assert measured[lb['batch']] <= lb['budget_bytes']
  with open(os.path.join(out, 'figure3.md')) as f:
    md = f.read()
  assert '| K | XLA | train time / ref | K/2K |' in md and 'Langevin-VAE' in md
  with open(os.path.join(out, 'figure3.png'), 'rb') as f:
    assert f.read(8) == PNG_MAGIC
  assert not [n for n in os.listdir(out) if n.startswith('.tmp')]
  return md


@pytest.mark.slow
def test_script_runs_the_tiny_preset(tmp_path):
  """Slow (a subprocess benchmark; fast cover: the model/markdown/plot tests on a fake report). The
  script end to end on two flows of the tiny preset (the full preset: slow test)."""
  report = _run_script(tmp_path, '--preset=tiny', '--flows=langevin,vae')
  assert [(r['flow'], r['num_steps']) for r in report['runs']] == [('langevin', 2),
                                                                    ('vae', 0)]
  _check_outputs(tmp_path, report)
  (ratios,) = report['ratios']  # no HVAE run: gradient ratios only
  assert ratios['gradient_ratio_cached'] == pytest.approx(2 / 3)
  assert 'train_time_reference' not in ratios


@pytest.mark.slow
def test_script_runs_every_flow_of_the_tiny_preset(tmp_path):
  """All four flows (~45 s of CPU).

  Fast tests cover the same claims piecewise: `test_script_runs_the_tiny_preset` (script,
  measurement and outputs, two flows), `test_ratios_and_predictions_at_k2` (ratios from run
  records) and tests/test_models.py::test_gradient_evaluations_per_training_step (the
  gradient counts of every flow).
  """
  report = _run_script(tmp_path, '--preset=tiny')
  assert {(r['flow'], r['num_steps']) for r in report['runs']} == {
      ('langevin', 2), ('hvae-reference', 2), ('hvae-cached', 2), ('vae', 0)}
  md = _check_outputs(tmp_path, report)
  assert 'HVAE cached (K+1)' in md
  (ratios,) = report['ratios']
  assert ratios['num_steps'] == 2 and ratios['xla'] is False
  for key in ('train_time_reference', 'train_time_cached',
              'train_memory_reference', 'largest_batch_reference',
              'predicted_train_time_cached'):
    assert ratios[key] > 0, key
  assert set(report['targets']) >= {'train_time_langevin_over_reference',
                                     'largest_batch_langevin_over_reference'}


def test_bad_flags_exit_with_status_2(tmp_path):
  for flag, word in (('--flows=langevin,nope', 'nope'),
                     ('--precisions=float16', 'float16')):
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.figure3', flag,
         f'--output_dir={tmp_path / "out"}'],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert word in proc.stderr
  assert not os.listdir(tmp_path)


def test_precision_ratios_pair_float32_with_bf16_runs():
  def run(flow, k, precision, train, cpu, test):
    return {'flow': flow, 'num_steps': k, 'xla': False, 'precision': precision,
            'train_step_seconds': {'median': train}, 'train_step_cpu_seconds': {'median': cpu},
            'test_batch_seconds': {'median': test}}
  runs = [run('langevin', 5, 'float32', 1.0, 1.8, 0.5),
          run('langevin', 5, 'mixed_bfloat16', 0.5, 0.9, 0.25),
          run('langevin', 10, 'float32', 2.0, 3.6, 1.0)]  # no bf16 partner: no row
  rows = figure3.precision_ratios(runs)
  assert [(r['num_steps'], r['train_time'], r['train_cpu_time'], r['test_time'])
          for r in rows] == [(5, 2.0, 2.0, 2.0)]
  section = figure3_report._precision_section  # pylint: disable=protected-access
  text = '\n'.join(section({'precision_ratios': rows}))
  assert 'mixed_bfloat16 throughput over float32' in text
  assert '| Langevin-VAE | 5 | off | 2.00 | 2.00 | 2.00 |' in text
  assert figure3.make_settings('precision').precisions == figure3.PRECISIONS
