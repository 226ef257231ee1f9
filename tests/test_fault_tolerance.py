"""No run loses work or writes garbage: SIGKILL and resume, divergence, bad input."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from lvae_tf import data
from lvae_tf import models
from lvae_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = 'run'


def _cli_args(tmp, *extra):
  return [sys.executable, '-m', 'experiments.table1', '--flow=langevin',
          '--steps=2', '--preset=tiny', '--max_epochs=8', '--patience=0',
          '--deterministic', f'--workdir={tmp}/runs', f'--results_dir={tmp}/res',
          f'--run_name={RUN}', *extra]


def _published(tmp):
  # A run name of the user's is published as <name>--<the configuration's run name>.json.
  paths = list((tmp / 'res').glob(f'*/records/**/{RUN}--*.json'))
  assert len(paths) == 1, paths
  return json.loads(paths[0].read_text())


def _env(**extra):
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', **extra)


def _run(args, **env):
  return subprocess.run(args, cwd=ROOT, env=_env(**env), capture_output=True,
                        text=True, timeout=600)


def _latest_epoch(tmp):
  path = tf.train.latest_checkpoint(
      os.path.join(tmp, 'runs', RUN, 'checkpoints', 'latest'))
  return int(path.rsplit('-', 1)[1]) if path else 0


@pytest.mark.slow
def test_sigkill_mid_training_then_same_command_matches_uninterrupted(
    tmp_path):
  """Slow (two subprocess trainings; fast cover:
  test_train.py::test_resume_gives_identical_weights)."""
  reference_dir, killed_dir = tmp_path / 'reference', tmp_path / 'killed'
  reference = _run(_cli_args(reference_dir))
  assert reference.returncode == 0, reference.stderr[-3000:]

  process = subprocess.Popen(_cli_args(killed_dir), cwd=ROOT, env=_env(),
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while _latest_epoch(killed_dir) < 3 and time.time() < deadline:
    assert process.poll() is None, 'finished before it could be killed'
    time.sleep(0.05)
  os.kill(process.pid, signal.SIGKILL)  # lands anywhere in epochs 4..8
  process.wait()
  killed_at = _latest_epoch(killed_dir)
  assert 3 <= killed_at < 8
  assert not (killed_dir / 'res').exists()  # no half-made results

  resumed = _run(_cli_args(killed_dir))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'Resuming from epoch {killed_at}' in resumed.stdout
  a, b = _published(reference_dir), _published(killed_dir)
  assert [r['epoch'] for r in b['history']] == list(range(1, 9))  # no epoch lost or doubled
  assert b['metrics']['train_steps'] == a['metrics']['train_steps']
  for key in ('test_elbo', 'valid_elbo', 'nll_mean', 'best_epoch'):
    assert a['metrics'][key] == b['metrics'][key], key  # same weights, same numbers


@pytest.fixture(scope='module')
def mnist():
  return data.load_mnist()


def test_nonfinite_loss_stops_keeps_last_good_checkpoint(mnist, tiny_vae_copy, monkeypatch):
  config, workdir = tiny_vae_copy.config, tiny_vae_copy.workdir  # one epoch trained
  os.remove(os.path.join(workdir, 'record.json'))
  latest = os.path.join(workdir, 'checkpoints', 'latest')
  good = tf.train.latest_checkpoint(latest)

  elbo = models.FlowVAE.elbo
  monkeypatch.setattr(models.FlowVAE, 'elbo',
                      lambda self, *a, **k: elbo(self, *a, **k) * np.nan)
  with pytest.raises(models.NonFiniteLossError,
                     match=r'at step 4 .*step size or learning rate'):
    train.train_and_evaluate(dataclasses.replace(config, max_epochs=2),
                             workdir, mnist)
  assert tf.train.latest_checkpoint(latest) == good
  reader = tf.train.load_checkpoint(good)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == 'f':
      assert np.all(np.isfinite(value)), name
  assert not os.path.exists(os.path.join(workdir, 'record.json'))


@pytest.mark.slow
def test_cli_divergence_exits_nonzero_and_writes_no_record(tmp_path):
  """Slow (subprocess training; fast cover:
  test_train.py::test_divergence_stops_with_clear_error_and_no_record)."""
  out = _run(_cli_args(tmp_path, '--learning_rate=1e12', '--max_epochs=2'))
  assert out.returncode == 1, out.stderr[-2000:]
  assert 'Training loss became nan' in out.stderr
  assert not list((tmp_path / 'res').glob('*/records/**/*'))
  assert not list((tmp_path / 'runs').glob('*/record.json'))


@pytest.mark.slow
def test_cli_missing_or_corrupt_data_exit_2(tmp_path):
  """Slow (CLI subprocesses; fast cover: the message tests in tests/test_data.py)."""
  out = _run(_cli_args(tmp_path), LVAE_TF_MNIST_PATH=str(tmp_path / 'nope.npz'))
  assert out.returncode == 2
  assert 'nope.npz' in out.stderr and 'lvae_tf.fetch_mnist' in out.stderr
  corrupt = tmp_path / 'mnist.npz'
  corrupt.write_bytes(b'not mnist at all')
  out = _run(_cli_args(tmp_path), LVAE_TF_MNIST_PATH=str(corrupt))
  assert out.returncode == 2
  assert 'sha256' in out.stderr
  assert sorted(os.listdir(tmp_path)) == ['mnist.npz']  # nothing written


def test_cli_unwritable_output_exits_2(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('a file where a directory should be')
  out = _run(_cli_args(tmp_path, f'--results_dir={blocker}/res'))
  assert out.returncode == 2
  assert 'not writable' in out.stderr
  assert sorted(os.listdir(tmp_path)) == ['file']


def test_nonfinite_images_rejected_with_validation():
  """Eager: `data.check_images` sees the values (ValueError); traced, `validate_args` asserts."""
  model = models.LangevinVAE(num_steps=1, latent_dim=2, validate_args=True)
  traced = tf.function(model)
  x = np.zeros([2, 28, 28, 1], np.float32)
  x[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match='1 NaN'):
    model(tf.constant(x))
  with pytest.raises(tf.errors.InvalidArgumentError, match='NaN or Inf'):
    traced(tf.constant(x))
  x[0, 0, 0, 0] = 2.
  with pytest.raises(ValueError, match=r'values in \[0, 2\]'):
    model(tf.constant(x))
  with pytest.raises(tf.errors.InvalidArgumentError, match='> 1'):
    traced(tf.constant(x))
