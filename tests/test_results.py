"""Result records: publishing per protocol, tables that never mix protocols, bad files skipped."""

import dataclasses
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from lvae_tf import config as config_lib
from lvae_tf import results


def _record(flow='vae', k=0, seed=0, nll=90., **overrides):
  overrides.setdefault('precision', 'float32')
  config = config_lib.Config.from_preset('cpu', flow=flow, num_steps=k, seed=seed,
                                         **overrides)
  return {
      'kind': 'table1_run', 'run_name': config_lib.run_name(config),
      'protocol': config_lib.protocol_name(config), 'config': dataclasses.asdict(config),
      'environment': {'device': 'CPU (test)'},
      'metrics': {'nll_mean': nll, 'nll_sem': 0.5, 'test_elbo': -nll - 5, 'epochs_trained': 3},
      'wall_seconds': {'train_total': 120.},
  }


def test_publish_writes_record_and_table_under_the_protocol(tmp_path):
  record = _record()
  path, table = results.publish(record, str(tmp_path))
  assert path == os.path.join(str(tmp_path), record['protocol'], 'records',
                              record['run_name'] + '.json')
  assert json.loads(open(path).read()) == record
  assert table == (tmp_path / record['protocol'] / 'table1.md').read_text()
  assert '| NLL (nats) | 90.00 ± 0.50 |' in table  # one run: its standard error
  assert '| training minutes (wall) | 2.0 |' in table


def test_seeds_of_one_protocol_are_averaged_protocols_never(tmp_path):
  for seed, nll in ((0, 90.), (1, 92.), (2, 94.)):
    results.publish(_record(seed=seed, nll=nll), str(tmp_path))
  results.publish(_record(seed=0, nll=200., train_minutes=1.), str(tmp_path))  # other protocol
  paths = results.write_tables(str(tmp_path))
  assert len(paths) == 2
  tables = {p: open(p).read() for p in paths}
  main = [t for t in tables.values() if '(3)' in t]
  assert len(main) == 1 and '| NLL (nats) | 92.00 ± 2.00 (3) |' in main[0]
  assert '| … per seed | s0 90.00 · s1 92.00 · s2 94.00 |' in main[0]  # published in any order
  other = [t for t in tables.values() if '200.00' in t]
  assert len(other) == 1 and '92.00' not in other[0]
  with pytest.raises(ValueError, match='one protocol'):
    results.table1_markdown(results.load_records(str(tmp_path)))


def test_malformed_records_are_skipped_with_a_warning_naming_the_file(tmp_path):
  results.publish(_record(), str(tmp_path))
  records_dir = next(tmp_path.glob('*/records'))
  (records_dir / 'truncated.json').write_text('{"kind": "table1_run", "conf')
  (records_dir / 'nometrics.json').write_text(json.dumps({'kind': 'table1_run', 'config': {}}))
  with pytest.warns(UserWarning) as caught:
    records = results.load_records(str(tmp_path))
  assert len(records) == 1
  messages = ' '.join(str(w.message) for w in caught)
  assert 'truncated.json' in messages and 'nometrics.json' in messages
  with pytest.warns(UserWarning):
    assert len(results.write_tables(str(tmp_path))) == 1


def test_convergence_figure_draws_one_line_per_run(tmp_path):
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  records = []
  for flow, k, seed in (('vae', 0, 0), ('vae', 0, 1), ('langevin', 5, 0), ('hvae', 1, 0)):
    record = _record(flow=flow, k=k, seed=seed)
    record['history'] = [{'epoch': e, 'train_seconds': 60. * e, 'cpu_seconds': 90. * e,
                          'val_elbo': -120. + e} for e in range(1, 6)]
    records.append(record)
  path = tmp_path / 'convergence.png'
  assert visualize.plot_convergence(records, str(path)) == 3  # HVAE K = 1 is not drawn
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert [p.name for p in tmp_path.iterdir()] == ['convergence.png']


def _history(val_elbos, cpu_minutes_per_epoch):
  return [{'epoch': e, 'train_seconds': 70. * e, 'cpu_seconds': 60. * cpu_minutes_per_epoch * e,
           'val_elbo': v} for e, v in enumerate(val_elbos, start=1)]


def _tables(text):
  """The Markdown tables of `text`, each as its list of lines."""
  tables, current = [], []
  for line in text.splitlines() + ['']:
    if line.startswith('|'):
      current.append(line)
    elif current:
      tables.append(current)
      current = []
  return tables


def _rows(table):
  """`{row label: [cells]}` of a table's data rows."""
  return {line.split(' | ')[0][2:]: line[:-2].split(' | ')[1:] for line in table[2:]}


def test_convergence_table_compares_best_so_far_at_equal_epochs_and_cpu_time():
  vae0, vae1 = _record(seed=0), _record(seed=1)
  flow0, flow1 = _record(flow='langevin', k=5, seed=0), _record(flow='langevin', k=5, seed=1)
  # VAE: an epoch per CPU minute, 6 epochs; its 3rd epoch dips, so best-so-far stays at -100.
  vae0['history'] = _history([-110., -100., -105., -99., -98., -97.], 1.)
  vae1['history'] = _history([-112., -102., -101., -100., -99., -98.], 1.)
  # Langevin: 3 CPU minutes per epoch, 3 epochs.
  flow0['history'] = _history([-104., -96., -95.], 3.)
  flow1['history'] = _history([-106., -99., -97.], 3.)
  text = results.convergence_markdown([vae0, vae1, flow0, flow1], epochs=(1, 2, 5),
                                      cpu_minutes=(2, 3, 5, 8, 10))
  models, paired = _tables(text)
  assert models[0] == '|  | VAE K=0 | Langevin-VAE K=5 |'
  assert paired[0] == '| paired by seed | Langevin-VAE K=5 − VAE K=0 |'
  rows, differences = _rows(models), _rows(paired)
  # Epoch 1: VAE -110, -112; Langevin -104, -106; paired +6, +6.
  assert rows['after 1 epoch'] == ['-111.00 ± 1.41 (2)', '-105.00 ± 1.41 (2)']
  assert differences['after 1 epoch'] == ['6.00 ± 0.00 (2)']
  # Epoch 5: only the VAE got there (best so far -98, -99); the flows stopped at 3.
  assert rows['after 5 epochs'] == ['-98.50 ± 0.71 (2)', '']
  assert 'after 5 epochs' not in differences
  # 3 CPU minutes: VAE best of epochs 1-3 (-100, -101), Langevin its first epoch; paired -4, -5.
  assert rows['after 3 CPU-min'] == ['-100.50 ± 0.71 (2)', '-105.00 ± 1.41 (2)']
  assert differences['after 3 CPU-min'] == ['-4.50 ± 0.71 (2)']
  # 2 CPU minutes: no Langevin epoch has ended yet.
  assert rows['after 2 CPU-min'][1] == '' and 'after 2 CPU-min' not in differences
  # 8 CPU minutes: the VAE ended at 6 and keeps its final best (-97, -98); Langevin's second
  # epoch ended at 6, its third ends at 9 (-96, -99): paired +1, -1. 10 is past every run's end.
  assert rows['after 8 CPU-min'] == ['-97.50 ± 0.71 (2)', '-97.50 ± 2.12 (2)']
  assert differences['after 8 CPU-min'] == ['0.00 ± 1.41 (2)']
  assert 'after 10 CPU-min' not in rows
  assert rows['end of training (best)'] == ['-97.50 ± 0.71 (2)', '-96.00 ± 1.41 (2)']
  assert differences['end of training (best)'] == ['1.50 ± 0.71 (2)']
  assert rows['epochs trained'] == ['6 ± 0 (2)', '3 ± 0 (2)']
  assert 'epochs trained' not in differences
  with pytest.raises(ValueError, match='one protocol'):
    results.convergence_markdown([vae0, _record(seed=2, train_minutes=1.)])
  with pytest.raises(ValueError, match='per-epoch history'):
    results.convergence_markdown([_record()])


def test_convergence_pairs_langevin_with_the_hvae_of_its_k_and_seed():
  runs = {(flow, k, seed): _record(flow=flow, k=k, seed=seed)
          for flow, k, seed in (('langevin', 5, 0), ('langevin', 5, 1), ('hvae', 5, 0),
                                ('hvae', 5, 1), ('hvae', 1, 0))}
  runs['langevin', 5, 0]['history'] = _history([-104., -96.], 1.)
  runs['langevin', 5, 1]['history'] = _history([-106., -97.], 1.)
  runs['hvae', 5, 0]['history'] = _history([-101., -97.], 2.)
  runs['hvae', 5, 1]['history'] = _history([-102., -99.], 2.)
  runs['hvae', 1, 0]['history'] = _history([-150., -140.], 1.)  # another K: never its partner
  _, paired = _tables(results.convergence_markdown(list(runs.values()), epochs=(1, 2),
                                                   cpu_minutes=(2,)))
  assert paired[0] == '| paired by seed | Langevin-VAE K=5 − HVAE cached (K+1) K=5 |'  # no VAE
  differences = _rows(paired)
  # Epoch 1: -104 + 101 = -3 and -106 + 102 = -4; epoch 2: +1 and +2.
  assert differences['after 1 epoch'] == ['-3.50 ± 0.71 (2)']
  assert differences['after 2 epochs'] == ['1.50 ± 0.71 (2)']
  # 2 CPU minutes: Langevin's second epoch (-96, -97) against HVAE's first (-101, -102).
  assert differences['after 2 CPU-min'] == ['5.00 ± 0.00 (2)']


def test_t_interval_is_the_closed_form():
  # n = 2: mean 1, std sqrt(2), t(0.975, 1) = 12.7062: 1 -+ 12.7062.
  low, high = results.t_interval([0., 2.])
  assert (low, high) == (pytest.approx(1. - 12.7062047), pytest.approx(1. + 12.7062047))
  # n = 3: values -0.46, -0.66, -0.47: mean -0.53, std 0.1127, t(0.975, 2) = 4.30265.
  low, high = results.t_interval([-0.46, -0.66, -0.47])
  half = 4.30265273 * 0.11269428 / 3 ** 0.5
  assert (low, high) == (pytest.approx(-0.53 - half), pytest.approx(-0.53 + half))
  with pytest.raises(ValueError, match='at least 2'):
    results.t_interval([1.])


def test_table1_shows_how_far_apart_seeds_are_and_the_interval_of_a_paired_mean():
  subset = {'kind': 'random', 'seed': 0, 'sha256_of_indices': 'abc'}
  per_image = {('vae', 0): [1., 2., 6.], ('vae', 1): [2., 2., 8.], ('vae', 2): [1., 3., 6.],
               ('langevin', 0): [2., 3., 7.], ('langevin', 1): [3., 3., 9.5],
               ('langevin', 2): [2., 4.5, 7.]}
  records = []
  for (flow, seed), nlls in per_image.items():
    record = _record(flow=flow, k=5 if flow == 'langevin' else 0, seed=seed,
                     nll=sum(nlls) / 3)
    record['metrics'].update(nll_per_image=nlls, nll_subset=subset)
    records.append(record)
  rows = _rows(_tables(results.table1_markdown(records[::-1]))[0])  # in any order
  # VAE seed 1 - seed 0: +1, 0, +2 (mean 1, standard error 1 / sqrt(3)); seed 2 - seed 0: 0,
  # +1, 0. Langevin: +1, 0, +2.5 (mean 7/6, standard error sqrt(19/36)); 0, +1.5, 0.
  assert rows['… each seed − the lowest (paired)'] == [
      's1 − s0 1.00 ± 0.58 · s2 − s0 0.33 ± 0.33', 's1 − s0 1.17 ± 0.73 · s2 − s0 0.50 ± 0.50']
  # Langevin - VAE by seed (the mean per-image difference): 1, 7/6, 7/6: mean 1.11, std 0.10.
  assert rows['NLL − VAE of the same seed (paired)'] == ['', '1.11 ± 0.10 (3)']
  low, high = results.t_interval([1., 7 / 6, 7 / 6])
  assert rows['… per seed'][-1] == (  # the last '… per seed' row: that of NLL − VAE
      f's0 1.00 · s1 1.17 · s2 1.17; 95 % t interval {low:.2f} to {high:.2f}')


def _ablation_record(seed, nll, **overrides):
  record = _record(flow='langevin', k=5, seed=seed, nll=nll, **overrides)
  record['metrics']['flow_parameters'] = {'damping_mean': 0.2, 'log_det_per_step': -1.}
  return record


def test_ablation_rows_are_seed_means_with_paired_differences():
  records = [_ablation_record(s, nll) for s, nll in ((0, 90.), (1, 91.), (2, 95.))]
  records += [_ablation_record(s, nll, damping=0.1) for s, nll in ((0, 91.), (1, 93.), (2, 96.))]
  table = results.ablation_markdown(records, ['damping'])
  lines = table.splitlines()
  default, other = lines[2], lines[3]
  assert default.startswith('| default (matched) | 0, 1, 2 | 0.203 | 0.203 | 92.00 ± 2.65 (3) |  |')
  # 0.1 vs matched on the same seeds: +1, +2, +1 -> 1.33 ± 0.58; ELBO = -NLL - 5 moves by -that.
  assert other.startswith('| 0.1 | 0, 1, 2 | 0.100 | 0.100 | 93.33 ± 2.52 (3) | 1.33 ± 0.58 (3) |')
  assert '| -1.33 ± 0.58 (3) |' in other
  # One seed with per-image NLLs: ΔNLL ± its paired standard error over images.
  subset = {'kind': 'random', 'seed': 0, 'sha256_of_indices': 'abc'}
  records[0]['metrics'].update(nll_per_image=[1., 2., 6.], nll_subset=subset)
  records[3]['metrics'].update(nll_per_image=[0.5, 1.0, 4.5], nll_subset=subset)
  one_seed = results.ablation_markdown([records[0], records[3]], ['damping']).splitlines()
  assert one_seed[3].startswith('| 0.1 | 0 | 0.100 | 0.100 | 91.00 ± 0.50 | -1.00 ± 0.29 |')
  del records[3]['metrics']['nll_per_image']  # without them: the difference of the means
  one_seed = results.ablation_markdown([records[0], records[3]], ['damping']).splitlines()
  assert one_seed[3].startswith('| 0.1 | 0 | 0.100 | 0.100 | 91.00 ± 0.50 | 1.00 |')


def test_ablation_refuses_runs_that_differ_elsewhere():
  records = [_ablation_record(0, 90.), _ablation_record(1, 90., learning_rate=5e-4)]
  with pytest.raises(ValueError, match=r"differs from the others in \['learning_rate'\]"):
    results.ablation_markdown(records, ['damping'])
  with pytest.raises(ValueError, match='unknown Config fields'):
    results.ablation_markdown(records, ['dampening'])


def test_ablation_without_a_default_row_compares_with_the_first():
  records = [_ablation_record(s, nll, precision=p) for s, nll, p in (
      (0, 90., 'mixed_bfloat16'), (0, 89.5, 'float32'), (1, 91., 'mixed_bfloat16'),
      (1, 91., 'float32'))]
  lines = results.ablation_markdown(records, ['precision']).splitlines()
  assert lines[2].startswith('| float32 | 0, 1 |')
  assert '| 0.25 ± 0.35 (2) |' in lines[3]  # bf16 - float32: +0.5, 0


def test_ablation_script_writes_the_table_and_refuses_an_empty_directory(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  command = [sys.executable, '-m', 'experiments.ablation', f'--results_dir={tmp_path}',
             '--vary=damping']
  empty = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
  assert empty.returncode == 2 and 'no records under' in empty.stderr
  for seed, damping in ((0, None), (0, 0.1)):
    results.publish(_ablation_record(seed, 90., damping=damping), str(tmp_path))
  done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert (tmp_path / 'ablation.md').read_text().splitlines()[3].startswith('| 0.1 | 0 |')


def test_a_warm_started_curve_continues_its_source_run():
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  vae = _record(seed=0)
  vae['history'] = [{'epoch': e, 'train_seconds': 60. * e, 'cpu_seconds': 90. * e,
                     'val_elbo': -100. + e} for e in range(1, 6)]
  warm = _record(flow='langevin', k=5, seed=0, warm_start='/runs/' + vae['run_name'])
  warm['warm_start_checkpoint'] = f'/runs/{vae["run_name"]}/checkpoints/best/ckpt-4'
  warm['history'] = [{'epoch': e, 'train_seconds': 10. * e, 'cpu_seconds': 20. * e,
                      'val_elbo': -96. + e} for e in range(1, 3)]
  assert visualize.warm_start_source(warm) == (vae['run_name'], 4)
  assert visualize.warm_start_source(vae) is None
  curves = {c['warm']: c for c in visualize.convergence_curves([warm, vae])}
  # Shifted by the source's epoch 4: 240 wall-s, 360 CPU-s, 4 epochs.
  assert curves[True]['wall_minutes'] == [250. / 60., 260. / 60.]
  assert curves[True]['cpu_minutes'] == [380. / 60., 400. / 60.]
  assert curves[True]['epochs'] == [5, 6] and not curves[True]['unshifted']
  assert curves[False]['epochs'] == [1, 2, 3, 4, 5]
  alone = visualize.convergence_curves([warm])[0]
  assert alone['unshifted'] and alone['epochs'] == [1, 2]


def test_a_warm_start_source_is_the_budget_that_wrote_its_checkpoint(tmp_path):
  """Two budgets of one run share its name; the source is the one whose best epoch it is."""
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  def vae(epochs, budget):
    record = _record(seed=0, train_minutes=budget)
    record['history'] = [{'epoch': e, 'train_seconds': 60. * e, 'cpu_seconds': 90. * e,
                          'val_elbo': -100. + e} for e in range(1, epochs + 1)]
    record['metrics']['best_epoch'] = epochs
    return record
  short, long = vae(3, 30.), vae(6, 60.)
  assert short['run_name'] == long['run_name'] and short['protocol'] != long['protocol']
  warm = _record(flow='langevin', k=5, seed=0, warm_start='/runs/' + long['run_name'],
                 step_size=0.02)
  warm['history'] = [{'epoch': 1, 'train_seconds': 10., 'cpu_seconds': 20., 'val_elbo': -93.}]
  def found(epoch, candidates):
    warm['warm_start_checkpoint'] = f'/runs/{long["run_name"]}/checkpoints/best/ckpt-{epoch}'
    return visualize.find_source_record(warm, candidates)
  for candidates in ([short, long], [long, short]):
    assert found(6, candidates) is long and found(3, candidates) is short
    assert found(7, candidates) is None
    # Epoch 2 is in both histories and neither's best: either is right (one trajectory).
    assert found(2, candidates) in (short, long)
  warm['warm_start_checkpoint'] = f'/runs/{long["run_name"]}/checkpoints/best/ckpt-6'
  curve = [c for c in visualize.convergence_curves([long, short, warm]) if c['warm']][0]
  assert curve['epochs'] == [7] and curve['cpu_minutes'] == [(540. + 20.) / 60.]
  # The script draws the source that wrote the checkpoint, once, whatever the load order.
  for record in (short, long, warm):
    results.publish(record, str(tmp_path))
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run(
      [sys.executable, '-m', 'experiments.convergence', f'--results_dir={tmp_path}',
       f'--protocol={warm["protocol"]}'], cwd=root, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert 'wrote' in done.stdout and '(2 runs)' in done.stdout


def test_paired_nll_is_the_mean_per_image_difference_with_its_standard_error():
  vae, flow = _record(seed=0, nll=3.), _record(flow='langevin', k=5, seed=0, nll=2.)
  subset = {'kind': 'random', 'seed': 0, 'sha256_of_indices': 'abc'}
  vae['metrics'].update(nll_per_image=[1., 2., 6.], nll_subset=subset)
  flow['metrics'].update(nll_per_image=[0.5, 1.0, 4.5], nll_subset=subset)
  diff, se = results.paired_nll(flow, vae)
  # Differences -0.5, -1, -1.5: mean -1, std 0.5, standard error 0.5 / sqrt(3).
  assert diff == pytest.approx(-1.) and se == pytest.approx(0.5 / 3 ** 0.5)
  table = results.table1_markdown([vae, flow])
  assert '| NLL − VAE of the same seed (paired) |  | -1.00 ± 0.29 |' in table
  assert 'HVAE of the same K and seed (paired)' not in table  # no HVAE to pair with
  # Langevin against the HVAE of the same K and seed, never another K's.
  hvae, other_k = _record(flow='hvae', k=5, seed=0, nll=2.5), _record(flow='hvae', k=1, seed=0)
  hvae['metrics'].update(nll_per_image=[1., 1.5, 4.], nll_subset=subset)
  other_k['metrics'].update(nll_per_image=[9., 9., 9.], nll_subset=subset)
  rows = results.table1_markdown([vae, flow, hvae, other_k]).split('\n')
  assert rows[0] == '| | VAE K=0 | Langevin-VAE K=5 | HVAE cached (K+1) K=1 | HVAE cached (K+1) K=5 |'
  # Differences -0.5, -0.5, +0.5: mean -1/6, std 1/sqrt(3), standard error 1/3.
  assert '| NLL − HVAE of the same K and seed (paired) |  | -0.17 ± 0.33 |  |  |' in rows
  # Both HVAE variants in one protocol: a row each, named, each against its own column.
  reference = _record(flow='hvae', k=5, seed=0, nll=5., hvae_gradient='reference')
  reference['metrics'].update(nll_per_image=[2., 3., 7.], nll_subset=subset)
  rows = results.table1_markdown([vae, flow, hvae, reference]).split('\n')
  assert rows[0] == '| | VAE K=0 | Langevin-VAE K=5 | HVAE (2K grads) K=5 | HVAE cached (K+1) K=5 |'
  assert '| NLL − HVAE cached (K+1) of the same K and seed (paired) |  | -0.17 ± 0.33 |  |  |' in rows
  # Against the reference: -1.5, -2, -2.5: mean -2, standard error 0.5 / sqrt(3).
  assert '| NLL − HVAE (2K grads) of the same K and seed (paired) |  | -2.00 ± 0.29 |  |  |' in rows
  flow['metrics']['nll_subset'] = dict(subset, sha256_of_indices='other')
  with pytest.raises(ValueError, match='different test images'):
    results.paired_nll(flow, vae)
  del vae['metrics']['nll_per_image']
  with pytest.raises(ValueError, match='no per-image NLLs'):
    results.paired_nll(flow, vae)
  assert 'NLL − VAE of the same seed' not in results.table1_markdown([vae, flow]).split('\n\n')[0]


def test_environment_names_the_cpu_beyond_its_generic_name(monkeypatch):
  """'AMD EPYC' names both an AVX2-only Zen 3 and an AVX512-BF16 Zen 4: the record keeps the
  family, model and the instruction sets that decide speed (bf16 above all)."""
  fields = {'model name': 'AMD EPYC', 'cpu family': '25', 'model': '17',
            'flags': 'fpu avx2 avx512f avx512_bf16 sse'}
  calls = []
  # Patched where `environment` looks it up (lvae_tf.results.machine), not on the re-export.
  monkeypatch.setattr(results.machine, 'cpuinfo', lambda: calls.append(1) or dict(fields))
  env = results.environment()
  assert calls  # the fake /proc/cpuinfo was read, not this machine's
  assert env['cpu'] == 'AMD EPYC'
  assert env['cpu_details'] == {'family': '25', 'model': '17',
                                'isa': ['avx2', 'avx512f', 'avx512_bf16']}


def test_cpuinfo_reads_the_first_processor_only(tmp_path, monkeypatch):
  text = ('processor\t: 0\nmodel name\t: A\nflags\t\t: avx2\n\n'
          'processor\t: 1\nmodel name\t: B\nflags\t\t: avx512f\n')
  (tmp_path / 'cpuinfo').write_text(text)
  real_open = open
  monkeypatch.setattr('builtins.open', lambda path, *a, **k: real_open(
      tmp_path / 'cpuinfo' if path == '/proc/cpuinfo' else path, *a, **k))
  assert results.cpuinfo() == {'processor': '0', 'model name': 'A', 'flags': 'avx2'}


def _on_zen4(record):
  record['environment'] = {'device': 'CPU (AMD EPYC, 2 cores)', 'cpu': 'AMD EPYC',
                           'cpu_count': 2, 'cpu_details': {
      'family': '25', 'model': '17', 'isa': ['avx2', 'avx512f', 'avx512_bf16']}}
  return record


def test_each_machine_gets_its_own_table_seeds_never_averaged_across(tmp_path):
  """A CPU-time budget buys more epochs on a faster CPU: Table 1 and the convergence table of
  one protocol average seeds and pair runs only within one machine, a block per machine."""
  subset = {'kind': 'random', 'seed': 0, 'sha256_of_indices': 'abc'}
  runs = [_record(seed=0, nll=3.), _record(flow='langevin', k=5, seed=0, nll=4.),
          _on_zen4(_record(seed=1, nll=5.)), _on_zen4(_record(flow='langevin', k=5, seed=1)),
          _on_zen4(_record(seed=2, nll=7.))]
  for r, per_image in zip(runs, ([1., 2., 6.], [2., 3., 7.], [1., 2., 6.], [1.5, 2.5, 6.5],
                                 [0., 0., 0.])):
    r['metrics'].update(nll_per_image=per_image, nll_subset=subset)
  assert results.machine_of(runs[0]) == 'CPU (test), CPU details unrecorded'
  assert results.machine_of(runs[2]) == ('CPU (AMD EPYC, 2 cores), family 25 model 17, '
                                         'avx2 avx512f avx512_bf16')
  assert results.table1_markdown(runs[:2]) == results.table1_markdown(runs[:2])  # one machine
  assert 'Machine' not in results.table1_markdown(runs[:2])
  table = results.table1_markdown(runs)
  intro, zen4, test = table.split('### Machine ')
  assert 'come from 2 machines' in intro
  assert zen4.startswith('A: CPU (AMD EPYC, 2 cores), family 25 model 17')
  assert test.startswith('B: CPU (test), CPU details unrecorded')
  # Zen 4: VAE seeds 1 and 2 (NLL 5, 7), Langevin seed 1 paired with VAE seed 1: +0.5.
  assert '| NLL (nats) | 6.00 ± 1.41 (2) | 90.00 ± 0.50 |' in zen4
  assert '| … per seed | s1 5.00 · s2 7.00 |  |' in zen4
  assert '| NLL − VAE of the same seed (paired) |  | 0.50 |' in zen4
  # The test machine: seed 0 alone, paired +1.
  assert '| NLL (nats) | 3.00 ± 0.50 | 4.00 ± 0.50 |' in test
  assert '| NLL − VAE of the same seed (paired) |  | 1.00 |' in test
  # Convergence: the same split.
  runs[0]['history'] = _history([-110., -100.], 1.)
  runs[1]['history'] = _history([-104., -96.], 3.)
  runs[2]['history'] = _history([-120., -90.], 1.)
  text = results.convergence_markdown(runs[:3], epochs=(1,), cpu_minutes=(3,))
  _, zen4, test = text.split('### Machine ')
  assert '| after 1 epoch | -110.00 | -104.00 |' in test
  assert '| after 1 epoch | 6.00 |' in test  # paired with the VAE of its seed
  assert '| after 1 epoch | -120.00 |' in zen4 and 'Langevin-VAE' not in zen4
  # The figure draws both machines' runs (dotted for the second machine).
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'convergence.png'
  assert visualize.plot_convergence(runs[:3], str(path)) == 3 and path.stat().st_size > 0
  # A row of panels per machine: the figure of two machines is taller than that of one.
  one = tmp_path / 'one_machine.png'
  assert visualize.plot_convergence(runs[:2], str(one)) == 2
  heights = [int.from_bytes(p.read_bytes()[20:24], 'big') for p in (one, path)]  # PNG IHDR
  assert heights[1] > 1.5 * heights[0], heights  # 1 + 3.3 rows inches: 7.6 vs 4.3


def test_equal_epochs_pool_seeds_across_machines_only_if_a_run_retraces_itself():
  """An epoch computes the same on every machine, the budget only decides how many there are:
  the equal-epochs rows pool every machine's seeds when a run recorded on two machines agrees
  epoch by epoch (within SAME_TRAINING_NATS), and pool nothing when it does not."""
  here_vae0, here_flow0 = _record(seed=0), _record(flow='langevin', k=5, seed=0)
  zen4_vae0, zen4_vae1, zen4_flow1 = (_on_zen4(_record(seed=0)), _on_zen4(_record(seed=1)),
                                      _on_zen4(_record(flow='langevin', k=5, seed=1)))
  here_vae0['history'] = _history([-110., -100.], 3.)  # a slower machine: 2 epochs ...
  zen4_vae0['history'] = _history([-110. + 2e-5, -100., -98.], 1.)  # ... where Zen 4 trains 3
  zen4_vae1['history'] = _history([-114., -101., -99.], 1.)
  here_flow0['history'] = _history([-104., -97.], 6.)
  zen4_flow1['history'] = _history([-108., -99.], 2.)
  runs = [here_vae0, here_flow0, zen4_vae0, zen4_vae1, zen4_flow1]
  assert results.machine_agreement(runs) == [(('vae', 0), 0, ['A', 'B'], 2, pytest.approx(2e-5))]
  text = results.convergence_markdown(runs, epochs=(1, 2, 3), cpu_minutes=(3,))
  per_machine, pooled = text.split('### All machines, at equal epochs')
  assert per_machine.count('### Machine ') == 2
  assert 'VAE K=0 seed 0 on A and B: 2 common epochs, validation ELBO within 2e-05 nats' in pooled
  models, paired = _tables(pooled)
  rows, differences = _rows(models), _rows(paired)
  # Epoch 1: VAE seeds 0 (-110, either machine) and 1 (-114); Langevin 0 (-104) and 1 (-108);
  # paired by seed +6, +6.
  assert rows['after 1 epoch'] == ['-112.00 ± 2.83 (2)', '-106.00 ± 2.83 (2)']
  assert differences['after 1 epoch'] == ['6.00 ± 0.00 (2)']
  # Epoch 3: seed 0 counts with its longest history (Zen 4's), once; no flow got there.
  assert rows['after 3 epochs'] == ['-98.50 ± 0.71 (2)', '']
  assert rows['seeds (machines)'] == ['0 (AB), 1 (A)', '0 (B), 1 (A)']
  assert not any('CPU-min' in label for label in rows)  # equal CPU time stays per machine
  # The same run 0.5 nats apart on two machines: the machines train differently, no pooling.
  zen4_vae0['history'][1]['val_elbo'] = -99.5
  text = results.convergence_markdown(runs, epochs=(1, 2, 3), cpu_minutes=(3,))
  assert 'Seeds are not pooled across machines' in text and 'within 0.5 nats' in text
  assert 'at equal epochs' not in text
  # No run on two machines: nothing shows that they train alike, so no pooled section.
  assert '### All machines' not in results.convergence_markdown(runs[1:], epochs=(1,))


def test_one_run_on_two_machines_is_two_records_under_a_directory_each(tmp_path):
  legacy, zen4 = _record(seed=0, nll=3.), _on_zen4(_record(seed=0, nll=2.))
  assert results.machine_dir(legacy['environment']) is None
  assert results.machine_dir(zen4['environment']) == 'amd-epyc-2c-f25m17'
  assert results.machine_dir({'gpus': ['NVIDIA A100-SXM4-40GB']}) == 'nvidia-a100-sxm4-40gb'
  legacy_path, _ = results.publish(legacy, str(tmp_path))
  zen4_path, table = results.publish(zen4, str(tmp_path))
  records = tmp_path / legacy['protocol'] / 'records'
  assert legacy_path == str(records / f"{legacy['run_name']}.json")
  assert zen4_path == str(records / 'amd-epyc-2c-f25m17' / f"{zen4['run_name']}.json")
  assert zen4_path == results.record_path(str(tmp_path), zen4['protocol'], zen4['run_name'],
                                          zen4['environment'])
  assert legacy['run_name'] == zen4['run_name'] and len(results.load_records(str(records))) == 2
  assert table.count('### Machine ') == 2 and '(2)' not in table  # never averaged together


_TABLE = '| | VAE K=0 |\n|---|---|\n| NLL (nats) | 83.88 ± 0.14 (2) |\n'


def test_embedded_tables_are_refreshed_from_their_source_and_stale_ones_named(tmp_path):
  source = tmp_path / 'results' / 'table1.md'
  source.parent.mkdir()
  source.write_text('intro\n\n### Machine A: Zen 3\n\n| | old |\n|---|---|\n\n'
                    '### Machine B: Xeon family 6 model 167\n\n' + _TABLE + '\nfootnote\n')
  marker = '<!-- table: results/table1.md "model 167" -->\n'
  current = f'# Doc\n\n{marker}{_TABLE}<!-- /table -->\n\ntext\n'
  assert results.refresh_embedded_tables(current, str(tmp_path)) == (current, [])
  stale = current.replace('83.88', '99.99')
  assert results.refresh_embedded_tables(stale, str(tmp_path)) == (
      current, ['results/table1.md "model 167"'])
  # Without a heading: the file's first table.
  first = '<!-- table: results/table1.md -->\n| x |\n<!-- /table -->'
  assert results.refresh_embedded_tables(first, str(tmp_path))[0] == (
      '<!-- table: results/table1.md -->\n| | old |\n|---|---|\n<!-- /table -->')
  for bad, message in (('"model 168"', "no heading contains 'model 168'"),
                       ('', 'No such file')):
    text = (current.replace('"model 167"', bad) if bad else
            current.replace('results/table1.md', 'results/missing.md'))
    with pytest.raises(ValueError, match=message):
      results.refresh_embedded_tables(text, str(tmp_path))


def test_readme_tables_script_checks_then_rewrites_atomically(tmp_path):
  (tmp_path / 'table1.md').write_text('### Machine A: x\n\n' + _TABLE)
  document = tmp_path / 'README.md'
  stale = '<!-- table: table1.md "Machine A" -->\n| old |\n<!-- /table -->\n'
  document.write_text(stale)
  command = [sys.executable, '-m', 'experiments.readme_tables', f'--document={document}']
  checked = subprocess.run(command + ['--check'], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.dirname(__file__)))
  assert checked.returncode == 1 and 'stale tables: table1.md "Machine A"' in checked.stderr
  assert document.read_text() == stale  # --check changes nothing
  rewritten = subprocess.run(command, capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
  assert rewritten.returncode == 0, rewritten.stderr
  assert document.read_text() == stale.replace('| old |\n', _TABLE)
  (tmp_path / 'table1.md').write_text('no table here\n')
  broken = subprocess.run(command, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
  assert broken.returncode == 1 and "no heading contains 'Machine A'" in broken.stderr
  assert document.read_text() == stale.replace('| old |\n', _TABLE)  # untouched


def test_committed_ablation_tables_regenerate_byte_for_byte():
  """Each committed `ablation.md` is what `ablation_markdown` makes of the records beside it
  (its `--vary` fields are the header's columns before 'seeds'). Table 1 and the convergence
  tables: tests/test_registry.py."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  paths = sorted(glob.glob(os.path.join(root, 'results', '**', 'ablation.md'), recursive=True))
  assert len(paths) >= 4
  for path in paths:
    with open(path, encoding='utf-8') as f:
      text = f.read()
    header = [cell.strip() for cell in text.splitlines()[0].strip('|').split('|')]
    vary = header[:header.index('seeds')]
    assert vary, path
    records = results.load_records(os.path.dirname(path))
    assert results.ablation_markdown(records, vary) == text, path


def test_old_import_paths_still_work_and_the_project_no_longer_uses_them():
  """`lvae_tf.doc_tables` is `lvae_tf.results.documents`; the package re-exports what
  the old module `lvae_tf.results` held, the private column helpers included (the atomic writes:
  tests/test_filesafety.py)."""
  from lvae_tf import doc_tables  # pylint: disable=g-import-not-at-top
  assert doc_tables is results.documents
  assert doc_tables.markdown_table is results.markdown_table
  # pylint: disable=protected-access
  assert results._column is results.columns.column_of
  assert results._sorted_columns is results.columns.sorted_columns
  assert results._column_title is results.columns.column_title
  # pylint: enable=protected-access
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  users = []
  for top in ('lvae_tf', 'experiments', 'tests', 'notebooks'):
    for path in glob.glob(os.path.join(root, top, '**', '*.*'), recursive=True):
      if (path.endswith(('.py', '.ipynb')) and os.path.basename(path) != 'test_results.py'
          and not path.endswith(os.path.join('lvae_tf', 'doc_tables.py'))):
        with open(path, encoding='utf-8') as f:
          text = f.read()
        if 'doc_tables' in text or re.search(r'\bresults\._(column|sorted_columns)', text):
          users.append(os.path.relpath(path, root))
  assert not users
