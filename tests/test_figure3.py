"""Figure 3 benchmark: the tiny run writes a valid result, exact gradient counts, memory probe.

No timing assertions: times depend on the machine and its load.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from lvae_tf import benchmark as bm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Executed target-gradient evaluations per training step (and per evaluation batch), K = 2.
EXPECTED_GRADIENTS_K2 = {'langevin': 2, 'hvae-reference': 4, 'hvae-cached': 3,
                         'vae': 0}


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('figure3')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.figure3', '--preset=tiny',
       f'--output_dir={out}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out / 'figure3.json') as f:
    return out, json.load(f)


def test_tiny_run_writes_a_valid_result(tiny_run):
  out, report = tiny_run
  assert report['kind'] == 'figure3' and report['complete'] is True
  assert report['settings']['preset'] == 'tiny'
  assert report['environment']['tensorflow']
  assert {(r['flow'], r['num_steps']) for r in report['runs']} == {
      ('langevin', 2), ('hvae-reference', 2), ('hvae-cached', 2), ('vae', 0)}
  for r in report['runs']:
    for key in ('train_step_seconds', 'train_step_cpu_seconds',
                'test_batch_seconds'):
      assert r[key]['n'] == report['settings']['repeats'], (r['flow'], key)
      assert math.isfinite(r[key]['median']) and r[key]['median'] > 0
    assert r['memory']['train_peak_bytes'] > 0
    assert r['memory']['test_peak_bytes'] > 0
    lb = r['largest_batch']
    assert lb['method'] == 'affine-fit+verify' and lb['batch'] > 0
    # The answer is a measured batch within the budget.
    measured = {p['batch']: p['peak_bytes']
                for p in lb['fit_points'] + lb['verification']}
    assert measured[lb['batch']] <= lb['budget_bytes']
  (ratios,) = report['ratios']
  assert ratios['num_steps'] == 2 and ratios['xla'] is False
  assert ratios['gradient_ratio_reference'] == 0.5
  assert ratios['gradient_ratio_cached'] == pytest.approx(2 / 3)
  for key in ('train_time_reference', 'train_time_cached',
              'train_memory_reference', 'largest_batch_reference',
              'predicted_train_time_cached'):
    assert ratios[key] > 0, key
  assert set(report['targets']) >= {'train_time_langevin_over_reference',
                                     'largest_batch_langevin_over_reference'}
  with open(out / 'figure3.md') as f:
    md = f.read()
  assert '| K | XLA | train time / ref | K/2K |' in md
  assert 'Langevin-VAE' in md and 'HVAE cached (K+1)' in md
  with open(out / 'figure3.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert not [n for n in os.listdir(out) if n.startswith('.tmp')]


@pytest.mark.parametrize('flow', sorted(EXPECTED_GRADIENTS_K2))
def test_gradient_counts_per_step_are_exact(tiny_run, flow):
  _, report = tiny_run
  (run,) = [r for r in report['runs'] if r['flow'] == flow]
  assert run['gradients_per_train_step'] == EXPECTED_GRADIENTS_K2[flow]
  assert run['gradients_per_test_batch'] == EXPECTED_GRADIENTS_K2[flow]
  assert bm.expected_gradients(flow, 2) == EXPECTED_GRADIENTS_K2[flow]


def test_memory_probe_is_positive_and_grows_with_the_batch():
  config = bm.flow_config('langevin', 1, latent_dim=8)
  bench = bm.StepBench(config)
  bench.train_step(8)
  small, large = bench.train_peak(8), bench.train_peak(64)
  assert 0 < small < large
  small, large = bench.test_peak(8), bench.test_peak(64)
  assert 0 < small < large
  # Exactly K = 1 gradient per training step, counted in the measured function.
  assert bench.gradients_per_call(lambda: bench.train_step(8), calls=2) == 1


def test_largest_batch_by_fit_finds_the_budget_on_a_known_curve():
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


def test_summaries():
  s = bm.summarize_times([3., 1., 2., 4.])
  assert s['median'] == 2.5 and s['min'] == 1. and s['max'] == 4. and s['n'] == 4
  assert s['iqr'] == pytest.approx(1.5)
  intercept, slope, residual = bm.fit_affine([1, 2, 3], [12, 14, 16])
  assert (intercept, slope) == pytest.approx((10, 2)) and residual < 1e-9


def test_bad_flags_exit_with_status_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.figure3', '--flows=langevin,nope',
       f'--output_dir={tmp_path}'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
      text=True, timeout=120, check=False)
  assert proc.returncode == 2, proc.stderr
  assert 'nope' in proc.stderr
  assert not os.listdir(tmp_path)
