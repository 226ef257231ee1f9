"""Training: loss goes down, resume is exact, the CLI writes records and refuses bad input."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lvae_tf import data
from lvae_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def mnist():
  return data.load_mnist()


def _tiny(**overrides):
  config = train.Config(preset='tiny', **train.PRESETS['tiny'])
  config.verbose = 0
  config.deterministic = True
  return dataclasses.replace(config, **overrides)


def _weights(workdir, config):
  model = train.build_model(config)
  model(tf.zeros([1, 28, 28, 1]))
  ckpt = tf.train.Checkpoint(model=model)
  ckpt.restore(tf.train.latest_checkpoint(
      os.path.join(workdir, 'checkpoints', 'latest'))).expect_partial()
  return [w.numpy() for w in model.weights]


@pytest.mark.slow
@pytest.mark.parametrize('flow,steps,gradient', [
    ('vae', 0, 'reference'), ('langevin', 2, 'reference'),
    ('hvae', 2, 'cached')])
def test_training_reduces_loss_and_moves_flow_parameters(
    mnist, tmp_path, flow, steps, gradient):
  """Slow (trains three models; fast cover:
  test_models.py::test_flow_parameters_are_trainable_and_get_gradients)."""
  config = _tiny(flow=flow, num_steps=steps, hvae_gradient=gradient,
                 batch_size=50, train_images=1000, steps_per_epoch=10,
                 max_epochs=1, learning_rate=3e-3, patience=0)
  model = train.build_model(config, output_bias=-1.5)
  model.compile(optimizer=keras.optimizers.Adamax(3e-3))
  x = next(iter(data.eval_dataset(mnist.train_images[:200], 200, seed=(0, 1),
                                  binarization='fixed')))
  before_loss = -float(tf.reduce_mean(model.elbo(x, tf.constant([0, 0]))))
  before = {v.name: v.numpy().copy() for v in model.trainable_variables}
  ds = data.train_dataset(mnist.train_images[:1000], 50, seed=1)
  model.fit(ds, steps_per_epoch=30, epochs=1, verbose=0)
  after_loss = -float(tf.reduce_mean(model.elbo(x, tf.constant([0, 0]))))
  assert after_loss < before_loss - 5., (before_loss, after_loss)
  for v in model.trainable_variables:
    if 'step_size' in v.name or 'damping' in v.name or 'temperature' in v.name:
      assert not np.allclose(v.numpy(), before[v.name]), v.name


@pytest.fixture(scope='module')
def curve_runs(mnist, tmp_path_factory):
  """A tiny Langevin-VAE (K = 2) trained for three epochs, keeping the best weights of epochs 1
  and 2 for its NLL curve, and the same run stopped after two: `(config, {3: (workdir,
  record), 2: (workdir, record)})`. Read them; copy one to write into it."""
  config = _tiny(flow='langevin', num_steps=2, max_epochs=3, patience=0, nll_passes=1,
                 checkpoint_epochs='1,2', nll_curve_images=50, fid_samples=0)
  root = tmp_path_factory.mktemp('curve_runs')
  runs = {}
  for epochs in (3, 2):
    workdir = str(root / f'epochs{epochs}')
    runs[epochs] = workdir, train.train_and_evaluate(
        dataclasses.replace(config, max_epochs=epochs), workdir, mnist)
  return config, runs


@pytest.mark.slow
def test_resume_gives_identical_weights(curve_runs, tmp_path):
  """Slow (trains once more; fast cover: test_data.py::test_train_dataset_resumes_bit_identically).

  The run stopped after two epochs, continued to three, ends with the weights, NLL and NLL curve
  of the run trained for three epochs in one go.
  """
  config, runs = curve_runs
  full, full_record = runs[3]
  split = str(tmp_path / 'split')
  shutil.copytree(runs[2][0], split)
  record = train.train_and_evaluate(config, split, data.load_mnist())
  assert record['metrics']['train_steps'] == 3 * config.steps_per_epoch
  assert [row['epoch'] for row in record['history']] == [1, 2, 3]
  for a, b in zip(_weights(full, config), _weights(split, config)):
    np.testing.assert_array_equal(a, b)
  assert full_record['metrics']['nll_mean'] == record['metrics']['nll_mean']
  assert ([p['nll_mean'] for p in full_record['metrics']['nll_curve']] ==
          [p['nll_mean'] for p in record['metrics']['nll_curve']])


def test_checkpoint_of_other_config_is_refused(tiny_vae_copy, mnist):
  run = tiny_vae_copy
  with pytest.raises(train.ConfigError, match='different configuration'):
    train.train_and_evaluate(dataclasses.replace(run.config, latent_dim=4), run.workdir, mnist)


def test_warm_start_copies_the_vae_encoder_and_decoder(tiny_vae_run, tmp_path):
  """A warm-started flow begins with the source VAE's best encoder and decoder, bit for bit."""
  vae_dir = tiny_vae_run.workdir
  with pytest.raises(train.ConfigError, match='no best checkpoint'):
    train._warm_start(train.build_model(tiny_vae_run.config),  # pylint: disable=protected-access
                      str(tmp_path / 'no-run'))
  vae, _ = train.load_trained_model(vae_dir)
  flow = train.build_model(_tiny(flow='langevin', num_steps=2))
  flow(tf.zeros([1, 28, 28, 1]))
  before = [w.numpy().copy() for w in flow.encoder.weights]
  checkpoint = train._warm_start(flow, vae_dir)  # pylint: disable=protected-access
  assert checkpoint.startswith(os.path.join(vae_dir, 'checkpoints', 'best', 'ckpt-'))
  for net in ('encoder', 'decoder'):
    ours, theirs = getattr(flow, net).weights, getattr(vae, net).weights
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, flow.encoder.weights))


def test_divergence_stops_with_clear_error_and_no_record(mnist, tmp_path):
  from lvae_tf import models  # pylint: disable=g-import-not-at-top
  config = _tiny(flow='vae', num_steps=0, learning_rate=1e12, max_epochs=2)
  with pytest.raises(models.NonFiniteLossError, match='at step'):
    train.train_and_evaluate(config, str(tmp_path), mnist)
  assert not os.path.exists(tmp_path / 'record.json')


def _cli(args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'experiments.table1', *args],
                        cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=600)


@pytest.mark.slow
def test_cli_tiny_run_writes_record_and_table(tmp_path):
  """Slow (subprocess training; fast cover: tests/test_results.py and tests/test_config.py)."""
  out = _cli(['--flow=langevin', '--steps=2', '--preset=tiny',
              f'--workdir={tmp_path}/runs', f'--results_dir={tmp_path}/res'],
             cwd=ROOT)
  assert out.returncode == 0, out.stderr[-3000:]
  published = list((tmp_path / 'res').glob('tiny-*/records/*/langevin-K2-tiny-seed85547-*.json'))
  assert len(published) == 1, published
  record = json.loads(published[0].read_text())
  run_dir = tmp_path / 'runs' / record['run_name']
  assert json.loads((run_dir / 'record.json').read_text()) == record
  assert record['kind'] == 'table1_run'
  assert np.isfinite(record['metrics']['nll_mean'])
  assert record['metrics']['test_elbo'] < -record['metrics']['nll_mean'] + 5
  assert record['metrics']['classifier_fid'] > 0
  assert 1 <= record['metrics']['classifier_is'] <= 10
  # <results_dir>/<protocol>/records/<machine>/<run>.json, the table beside records/.
  protocol_dir = published[0].parent.parent.parent
  table = (protocol_dir / 'table1.md').read_text()
  assert record['protocol'] == protocol_dir.name
  assert 'Langevin-VAE K=2' in table and '| NLL (nats) |' in table
  fid_row = [l for l in table.splitlines() if l.startswith('| classifier FID')][0]
  assert f"{record['metrics']['classifier_fid']:.2f}" in fid_row


@pytest.mark.parametrize('args,message', [
    (['--flow=nope'], 'flow'),
    (['--steps=-1'], 'steps'),
    (['--batch_size=0'], 'batch_size'),
    (['--flow=hvae', '--steps=0'], 'steps >= 1'),
    (['--nll_samples=0'], 'nll_samples'),
    (['--step_size=0.7'], 'step_size'),
    (['--step_size=0'], 'step_size'),
    (['--step_size=-0.1'], 'step_size'),
    (['--damping=-1'], 'damping'),
    (['--damping=inf'], 'damping'),
    (['--seed=-1'], 'seed'),
    (['--seed=4294967296'], 'seed'),
    (['--steps=100000'], 'steps (K) must be in [0, 1000]'),
    (['--batch_size=500'], 'batch_size 500 exceeds the 200 training images'),
    (['--train_minutes=-1'], 'train_minutes'),
    (['--precision=float16'], 'precision'),
])
def test_cli_bad_flags_exit_2_and_write_nothing(tmp_path, args, message):
  out = _cli([*args, '--preset=tiny', f'--workdir={tmp_path}/runs',
              f'--results_dir={tmp_path}/res'], cwd=ROOT)
  assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
  assert message in out.stderr
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_trained_model_elbo_below_is_estimate_which_grows_with_samples(mnist):
  """Slow (trains a model; fast cover:
  test_models.py::test_importance_sampling_converges_to_closed_form). On a (briefly) trained model:
  ELBO <= ln p(x) estimate, non-decreasing in S.

  E[logsumexp_S ln w - ln S] increases with S (Burda et al., 2016) towards ln p(x); the ELBO
  is its S = 1 value. Checked on the mean over 50 test images, where the Monte Carlo error of
  estimate is far below the gaps measured here (ELBO -206.5, S = 10: -204.2, S = 100: -203.3).
  """
  config = _tiny(flow='langevin', num_steps=3, latent_dim=8)
  model = train.build_model(config, output_bias=-1.5)
  model.compile(optimizer=keras.optimizers.Adamax(3e-3))
  model.fit(data.train_dataset(mnist.train_images[:2000], 50, seed=2),
            steps_per_epoch=60, epochs=1, verbose=0)
  x = next(iter(data.eval_dataset(mnist.test_images[:50], 50, seed=(0, 3),
                                  binarization='fixed')))
  elbo = np.mean([model.elbo(x, tf.constant([i, 9])).numpy()
                  for i in range(20)])
  estimates = [model.log_marginal_likelihood(x, num_samples=s, chunk_size=50,
                                             seed=(4, s)).mean()
               for s in (1, 10, 100)]
  # S = 1 is one unbiased (non-RB) ELBO draw per image: same expectation as `elbo`. 1.5 nats
  # allows for its Monte Carlo error over 50 images; measured here: -206.39 vs -206.49.
  assert abs(estimates[0] - elbo) < 1.5
  assert elbo < estimates[1] < estimates[2], (elbo, estimates)


class _Interrupting:
  """Delegates to a model and raises KeyboardInterrupt at the `stop_after + 1`-th NLL batch."""

  def __init__(self, model, stop_after=None):
    self.model, self.stop_after, self.calls = model, stop_after, 0

  def log_marginal_likelihood(self, *args, **kwargs):
    if self.stop_after is not None and self.calls >= self.stop_after:
      raise KeyboardInterrupt
    self.calls += 1
    return self.model.log_marginal_likelihood(*args, **kwargs)


def test_nll_resumes_exactly_after_an_interruption(mnist, tmp_path):
  """A killed NLL keeps its finished batches and a resumed one gives the uninterrupted numbers."""
  config = _tiny(flow='langevin', num_steps=2, nll_test_images=40, nll_batch_size=10,
                 nll_passes=2, nll_samples=4, nll_chunk=2)
  model = train.build_model(config, output_bias=-1.5)
  model(tf.zeros([1, 28, 28, 1]))
  images = mnist.test_images[:40]
  identity = {'weights': train.weights_fingerprint(model)}
  reference = train.evaluate_nll(model, images, config, seed=3, progress=False)

  path = str(tmp_path / 'nll_partial.jsonl')
  with pytest.raises(KeyboardInterrupt):
    train.evaluate_nll(_Interrupting(model, stop_after=5), images, config, seed=3,
                       progress=False, partial_path=path, identity=identity)
  with open(path, 'a') as f:
    f.write('{"pass": 1, "batch": 1, "log_px": [1.0, ')  # a line cut by the kill
  resumed = _Interrupting(model)
  result = train.evaluate_nll(resumed, images, config, seed=3, progress=False,
                              partial_path=path, identity=identity)
  assert resumed.calls == 8 - 5  # 2 passes x 4 batches, 5 kept
  # The cut line is gone, so nothing appended after it was lost: a third call computes nothing.
  third = _Interrupting(model)
  assert train.evaluate_nll(third, images, config, seed=3, progress=False, partial_path=path,
                            identity=identity)['nll_mean'] == reference['nll_mean']
  assert third.calls == 0
  assert result.pop('nll_batches_resumed') == 5 and reference.pop('nll_batches_resumed') == 0
  assert result == reference
  per_image = np.asarray(reference['nll_per_image'])
  assert per_image.shape == (40,)
  np.testing.assert_allclose(per_image.mean(), reference['nll_mean'], atol=1e-4)
  np.testing.assert_allclose(per_image.std(ddof=1) / np.sqrt(40), reference['nll_sem'],
                             rtol=1e-3)

  # Another model's partial file is not reused: everything is computed again.
  other = _Interrupting(model)
  result = train.evaluate_nll(other, images, config, seed=3, progress=False,
                              partial_path=path, identity={'weights': 'another model'})
  assert other.calls == 8 and result.pop('nll_batches_resumed') == 0 and result == reference
  again = _Interrupting(model)
  train.evaluate_nll(again, images, config, seed=3, progress=False, partial_path=path,
                     identity={'weights': 'another model'})
  assert again.calls == 0


def test_weights_fingerprint_changes_with_the_weights():
  config = _tiny(flow='vae', num_steps=0)
  model = train.build_model(config)
  model(tf.zeros([1, 28, 28, 1]))
  before = train.weights_fingerprint(model)
  assert train.weights_fingerprint(model) == before
  model.trainable_variables[0].assign_add(tf.ones_like(model.trainable_variables[0]) * 1e-3)
  assert train.weights_fingerprint(model) != before


@pytest.mark.slow
def test_grid_script_warm_starts_from_its_vae_and_draws_every_protocol(tmp_path):
  """Slow (the grid script end to end on the tiny preset; fast cover:
  test_warm_start_copies_the_vae_encoder_and_decoder and
  tests/test_results.py::test_a_warm_started_curve_continues_its_source_run)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', PRESET='tiny',
             ONLY='vae:0:0 langevin:5:0:warm', WORKDIR=str(tmp_path / 'runs'),
             RESULTS=str(tmp_path / 'res'), PY=sys.executable)
  out = subprocess.run(['bash', os.path.join(ROOT, 'experiments', 'table1_grid.sh')],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stderr[-3000:]
  records = {json.loads(p.read_text())['config']['flow']: json.loads(p.read_text())
             for p in (tmp_path / 'res').glob('tiny-*/records/**/*.json')}
  vae, warm = records['vae'], records['langevin']
  assert vae['protocol'] != warm['protocol']  # never averaged together
  assert warm['config']['step_size'] == 0.02
  assert warm['warm_start_checkpoint'].startswith(
      str(tmp_path / 'runs' / vae['run_name'] / 'checkpoints' / 'best' / 'ckpt-'))
  for protocol in (vae['protocol'], warm['protocol']):
    assert (tmp_path / 'res' / protocol / 'convergence.png').read_bytes()[:4] == b'\x89PNG'
    assert '| after 1 epoch |' in (tmp_path / 'res' / protocol / 'convergence.md').read_text()
    assert (tmp_path / 'res' / protocol / 'table1.md').exists()
  # A second invocation finds both cells published and trains nothing.
  again = subprocess.run(['bash', os.path.join(ROOT, 'experiments', 'table1_grid.sh')],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert again.returncode == 0, again.stderr[-3000:]
  # No epoch line (lvae_tf.progress: "epoch 1/3 | ..."): nothing trained.
  assert re.search(r'^epoch \d+/', out.stdout, re.M | re.I), out.stdout[-2000:]
  assert not re.search(r'^epoch \d+/', again.stdout, re.M | re.I)
  assert 'already published' in again.stdout + again.stderr


@pytest.mark.slow
def test_nll_curve_points_are_the_kept_best_weights_measured_on_the_nll_subset(curve_runs):
  """Slow (shares the resume test's trained runs; fast cover: test_nll_curves.py). The curve's epoch-E point is the NLL of the best weights as of epoch E, on the first
  `nll_curve_images` of the NLL subset: with the whole subset and one pass it equals the final
  NLL of a run stopped at E (same weights, images, binarisation and noise)."""
  config, runs = curve_runs
  record, two = runs[3][1], runs[2][1]
  curve = record['metrics']['nll_curve']
  # The record describes the best weights (epoch 3), not the last kept checkpoint (epoch 2)
  # that the curve loaded last.
  assert record['metrics']['best_epoch'] == 3
  best, _ = train.load_trained_model(runs[3][0], 'best')
  assert record['metrics']['flow_parameters'] == best.flow_parameters()
  assert [p['epoch'] for p in curve] == [1, 2, 3]
  assert curve[-1]['final'] and curve[-1]['nll_mean'] == record['metrics']['nll_mean']
  history = {row['epoch']: row for row in record['history']}
  for point in curve[:2]:
    assert point['nll_test_images'] == 50 and len(point['nll_per_image']) == 50
    assert point['train_cpu_minutes'] == history[point['epoch']]['cpu_seconds'] / 60.
    assert point['best_epoch'] <= point['epoch']
  assert two['metrics']['best_epoch'] == curve[1]['best_epoch']
  np.testing.assert_allclose(curve[1]['nll_mean'], two['metrics']['nll_mean'], rtol=1e-6)
  np.testing.assert_allclose(curve[1]['nll_per_image'], two['metrics']['nll_per_image'],
                             atol=2e-4)  # per-image values are stored rounded to 1e-4
  # A smaller curve subset is drawn inside the NLL subset (the same permutation, cut shorter).
  small = train.nll_subset_indices(200, dataclasses.replace(config, nll_test_images=20))
  full = train.nll_subset_indices(200, config)
  assert set(small) <= set(full)
