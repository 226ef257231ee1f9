"""Every failure ends with a clear message and a state the next command can use (issue 10).

The promises of `python -m experiments.table1` (exit statuses in its module docstring):

* Ctrl-C (SIGINT) or SIGTERM, in training or evaluation: says so on stderr, keeps the last
  completed epoch's checkpoint, exits 130 / 143 without a traceback; the same command resumes.
* Disk full (a checkpoint, history line, record or table that cannot be written): names the path
  and the cause, exits 1 without a traceback; the previous checkpoint and record are intact.
* A corrupt latest checkpoint (truncated or zeroed file, empty `checkpoint` file): a warning
  names the bad file, the run resumes from the newest intact one; none intact: exit 2 naming the
  directory to move away. Nothing is restored from a bad file.
* `--table_only` on a read-only results directory: names the file, exits 1, tables unchanged.
* A malformed `TF_CONFIG`, whatever `--strategy`: exit 2 before TensorFlow loads.
* Temporaries of killed writes (`.tmp-*`, `ckpt-N_temp*`): removed by the next run; only the
  run's own, only those older than the process.
* A budget below what the checkpoint trained (`--max_epochs=1` after 2 epochs): exit 2, nothing
  written; a record never states a budget that did not produce it.
* Two runs in one run directory: the second exits 2 naming the first's pid and `run.lock`; a lock
  whose process is gone is broken.
* Kept fixed: deleting config.json then rerunning with another `--learning_rate` is refused;
  `--batch_size=500` (tiny), `--seed=-1`, `--steps=100000`, `--results_dir=` exit 2 writing
  nothing and the corrected command then works; a malformed record is skipped with a warning
  and fails neither a later run nor `--table_only`; `--step_size=0.2` given explicitly resumes
  a run made without it.

Tests marked slow run `experiments.table1 --preset=tiny` in subprocesses, on copies of one
trained run (the `trained` fixture); each names the fast test covering the same claim.
"""

import contextlib
import dataclasses
import errno
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
import weakref

import numpy as np
import pytest
import tensorflow as tf

from lvae_tf.cli import table1
from lvae_tf import config as config_lib
from lvae_tf import filesafety
from lvae_tf import results
from lvae_tf import train
from lvae_tf.filesafety import interrupts
from lvae_tf.filesafety import recovery
from lvae_tf.filesafety import runlock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = 'run'
# The shared run: Langevin K = 1 (so that --step_size matters), two epochs, no FID.
FLAGS = ['--preset=tiny', '--flow=langevin', '--steps=1', '--precision=float32',
         '--fid_samples=0', '--max_epochs=2', '--patience=0', '--nll_passes=1',
         f'--run_name={RUN}']
CONFIG = config_lib.Config.from_preset(
    'tiny', flow='langevin', num_steps=1, precision='float32', fid_samples=0, max_epochs=2,
    patience=0, nll_passes=1)
PROTOCOL = config_lib.protocol_name(CONFIG)
USAGE_ERRORS = {
    '--batch_size=500': 'batch_size 500 exceeds the 200 training images',
    '--seed=-1': 'seed must be in [0, 2**32), got -1',
    '--steps=100000': 'steps (K) must be in [0, 1000], got 100000',
}
OLD = time.time() - 3600.  # mtime of planted orphans: before any test process started


def _cli(root, *extra, results_dir=True):
  """The command a user runs: the shared run's flags under `root`, then `extra`."""
  res = [f'--results_dir={root}/res'] if results_dir else []
  return [sys.executable, '-m', 'experiments.table1', *FLAGS, f'--workdir={root}/runs', *res,
          *extra]


def _with_fault(fault, command):
  """`command` (from `_cli`) run through `table1.main` after the Python source `fault`."""
  return [sys.executable, '-c', '\n'.join([
      'import sys', textwrap.dedent(fault), 'from absl import app',
      'from lvae_tf import cli; from lvae_tf.cli import table1', f'sys.argv = ["table1"] + {command[3:]!r}',
      'app.run(table1.main, flags_parser=cli.parse_flags)'])]


def _env(**extra):
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1',
              **extra)


def _run(command, **env):
  return subprocess.run(command, cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                        timeout=900)


def _tree(path):
  """{relative path: (size, mtime)} of every file under `path`: what a command changed."""
  found = {}
  for directory, _, files in os.walk(path):
    for name in files:
      full = os.path.join(directory, name)
      st = os.stat(full)
      found[os.path.relpath(full, path)] = (st.st_size, st.st_mtime_ns)
  return found


def _temporaries(path):
  return [name for _, _, files in os.walk(path) for name in files if name.startswith('.tmp-')]


def _history_epochs(run_dir):
  with open(os.path.join(run_dir, 'history.jsonl')) as f:
    return [json.loads(line)['epoch'] for line in f if line.strip()]


def _no_traceback(out):
  assert 'Traceback' not in out.stderr, out.stderr[-3000:]


# -- The shared trained run. ------------------------------------------------------------------


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The tiny run, trained once by the command a user runs, in a directory where usage errors
  were made first and where killed writes and a malformed record had been left.

  Returns a namespace: `root` (holding `runs/run` and `res/`), `usage` (flag -> completed usage
  error), `after_usage` (files under `root` after them), `run` (the completed good command).
  """
  root = tmp_path_factory.mktemp('trained')
  usage = {flag: _run(_cli(root, flag)) for flag in USAGE_ERRORS}
  after_usage = sorted(os.listdir(root))
  run_dir, records = root / 'runs' / RUN, root / 'res' / PROTOCOL / 'records'
  # This machine's records directory, where the run's record is published.
  record_file = pathlib.Path(results.record_path(str(root / 'res'), PROTOCOL, RUN,
                                                 results.environment(),
                                                 dataclasses.asdict(CONFIG)))
  published = record_file.parent
  run_dir.mkdir(parents=True)
  published.mkdir(parents=True)
  planted = {
      'config_tmp': run_dir / '.tmp-k1ll3d00config.json',  # killed writing config.json
      'record_tmp': published / f'.tmp-k1ll3d00{record_file.name}',  # killed publishing it
      'table_tmp': records.parent / '.tmp-k1ll3d00table1.md',  # killed writing the table
      'other_tmp': published / '.tmp-k1ll3d00other.json',  # another run's: not ours to remove
      'fresh_tmp': published / f'.tmp-wr1t1ng0{RUN}.json',  # newer than the run: kept
  }
  for name, path in planted.items():
    path.write_text('{"half": ')
    if name != 'fresh_tmp':
      os.utime(path, (OLD, OLD))
  os.utime(planted['fresh_tmp'], (time.time() + 3600,) * 2)
  (records / 'bad.json').write_text('{"kind": "table1_run", "config": {"flow": ')  # truncated
  run = _run(_cli(root))
  assert run.returncode == 0, run.stderr[-3000:]
  return types.SimpleNamespace(root=root, usage=usage, after_usage=after_usage, run=run,
                               planted=planted)


def _copy(trained, tmp_path):
  """A private copy of the trained run directory (and results) under `tmp_path`."""
  shutil.copytree(trained.root / 'runs', tmp_path / 'runs')
  return tmp_path / 'runs' / RUN


@pytest.fixture
def processes():
  """Processes a test starts in the background; killed at teardown if still running."""
  started = []
  yield started
  for process in started:
    if process.poll() is None:
      process.kill()
      process.wait()


def _start(processes, command, tmp_path, name):
  out, err = open(tmp_path / f'{name}.out', 'w'), open(tmp_path / f'{name}.err', 'w')
  process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=out, stderr=err)
  process.out, process.err = tmp_path / f'{name}.out', tmp_path / f'{name}.err'
  processes.append(process)
  return process


def _wait_for(condition, process, timeout=600):
  deadline = time.time() + timeout
  while not condition():
    assert process.poll() is None, process.err.read_text()[-3000:]
    assert time.time() < deadline, 'timed out'
    time.sleep(0.05)


# -- 1. Ctrl-C and SIGTERM. --------------------------------------------------------------------


def test_signals_raise_interrupted_with_the_shell_exit_status():
  safety = signal.signal(signal.SIGTERM, lambda *_: None)  # never let SIGTERM end pytest
  try:
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
      with pytest.raises(interrupts.Interrupted) as info:
        with interrupts.handle_signals():
          os.kill(os.getpid(), signum)
          time.sleep(5)
      assert info.value.exit_status == status
      assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is not interrupts._handler  # restored
  finally:
    signal.signal(signal.SIGTERM, safety)


def test_a_deferred_section_is_never_cut_in_two():
  """`ResumableTraining.on_epoch_end` is such a section: history line and checkpoint together."""
  done = []

  @interrupts.deferred()
  def save_epoch():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)  # the signal arrives here ...
    done.append('history')
    done.append('checkpoint')

  with interrupts.handle_signals():
    with pytest.raises(interrupts.Interrupted):
      save_epoch()  # ... and is raised when the section returns
  assert done == ['history', 'checkpoint']


def test_a_signal_in_a_safe_points_section_waits_for_the_next_safe_point():
  """Training runs in one: raised at an arbitrary point, Ctrl-C landed inside TFP's half-built
  WeakStructRef once, which printed an AttributeError traceback on the way out."""
  steps = []
  with interrupts.handle_signals():
    with pytest.raises(interrupts.Interrupted) as caught:
      with interrupts.safe_points():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the signal arrives here and is held back ...
        steps.append('batch')
        interrupts.raise_pending()  # ... to the safe point
        steps.append('never')
    assert caught.value.exit_status == 130 and steps == ['batch']
    # No safe point before the section ends: raised as it ends.
    with pytest.raises(interrupts.Interrupted) as caught:
      with interrupts.safe_points():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        steps.append('section')
    assert caught.value.exit_status == 143 and steps == ['batch', 'section']
    # A second signal before the next safe point is raised at once (a stuck process stops).
    with pytest.raises(interrupts.Interrupted):
      with interrupts.safe_points():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        steps.append('first signal held')
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        steps.append('never')
    assert steps[-1] == 'first signal held'
    interrupts.raise_pending()  # nothing is left held back


def test_fit_is_interrupted_at_the_end_of_the_batch_the_signal_arrived_in():
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  model = keras.Sequential([keras.layers.Dense(1)])
  model.compile('sgd', 'mse')
  ended = []

  class SignalInBatch2(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      if batch == 2:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)

    def on_train_batch_end(self, batch, logs=None):
      ended.append(batch)

  x = np.zeros((64, 2), np.float32)
  with interrupts.handle_signals():
    with pytest.raises(interrupts.Interrupted):
      with interrupts.safe_points():
        model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0,
                  callbacks=[SignalInBatch2(), train.SafePoints()])
  assert ended == [0, 1, 2]


def _interrupted_mid_iteration(alive):
  """An `Interrupted` raised while a prefetching `tf.data` iterator is being consumed.

  `alive` gets a weak reference to the iterator; a reference cycle through the frame (as in
  Keras' training loop) means only a collection frees it once the traceback is dropped.
  """
  iterator = iter(tf.data.Dataset.range(10**6).map(
      lambda i: i * 2, num_parallel_calls=2).prefetch(4))
  alive.append(weakref.ref(iterator))
  cycle = {}
  cycle['self'] = cycle
  cycle['iterator'] = iterator
  next(iterator)
  raise interrupts.Interrupted(signal.SIGINT)


def test_an_interruption_exits_only_after_the_training_it_stopped_is_released():
  """A traceback kept the iterators' threads running while the process exited (CI saw SIGSEGV
  instead of exit 130 once): `table1._fail` drops it and collects before exiting."""
  alive = []
  try:
    _interrupted_mid_iteration(alive)
  except interrupts.Interrupted as e:
    error = e
  assert alive[0]() is not None  # held by the traceback
  with pytest.raises(SystemExit) as info:
    table1._fail(error, 'interrupted', status=error.exit_status)
  assert info.value.code == 130
  assert alive[0]() is None
  assert error.exit_status == 130 and str(error) == 'interrupted by SIGINT'


def test_interrupted_message_names_the_kept_checkpoint(tmp_path):
  latest = tmp_path / 'checkpoints' / 'latest'
  latest.mkdir(parents=True)
  error = interrupts.Interrupted(signal.SIGINT)
  assert 'no epoch was completed yet' in table1._interrupted(error, str(tmp_path))
  (latest / 'ckpt-5.index').write_bytes(b'')
  (latest / 'checkpoint').write_text('model_checkpoint_path: "ckpt-5"\n')
  message = table1._interrupted(error, str(tmp_path))
  assert f'interrupted by SIGINT: the checkpoint of the last completed epoch (epoch 5, ' \
         f'{latest / "ckpt-5"}) is kept. Run the same command to resume' in message


@pytest.mark.slow
def test_ctrl_c_in_training_keeps_the_last_epoch_and_the_same_command_resumes(
    trained, tmp_path, processes):
  """Slow (subprocess training; fast cover: test_signals_raise_interrupted_with_the_shell_exit_
  status, test_a_deferred_section_is_never_cut_in_two, test_interrupted_message_names_the_kept_
  checkpoint)."""
  run_dir = _copy(trained, tmp_path)
  command = _cli(tmp_path, '--max_epochs=40', results_dir=False)
  first = _start(processes, command, tmp_path, 'first')
  _wait_for(lambda: recovery.checkpoint_epoch(run_dir)[0] >= 3, first)
  first.send_signal(signal.SIGINT)  # Ctrl-C
  assert first.wait(300) == 130
  err = first.err.read_text()
  epoch, checkpoint = recovery.checkpoint_epoch(run_dir)
  assert 3 <= epoch < 40
  assert (f'error: interrupted by SIGINT: the checkpoint of the last completed epoch (epoch '
          f'{epoch}, {checkpoint}) is kept. Run the same command to resume') in err, err[-3000:]
  assert 'Traceback' not in err
  assert recovery.verify_checkpoint(checkpoint) is None
  assert _history_epochs(run_dir) == list(range(1, epoch + 1))
  assert not (run_dir / 'run.lock').exists() and not _temporaries(run_dir)

  second = _start(processes, command, tmp_path, 'second')  # the same command ...
  _wait_for(lambda: f'Resuming from epoch {epoch} ' in second.out.read_text(), second)
  second.send_signal(signal.SIGTERM)  # ... resumes; SIGTERM this time
  assert second.wait(300) == 143
  err = second.err.read_text()
  assert 'error: interrupted by SIGTERM: the checkpoint of the last completed epoch' in err
  assert 'Traceback' not in err
  assert recovery.checkpoint_epoch(run_dir)[0] >= epoch
  assert not (run_dir / 'run.lock').exists()


@pytest.mark.slow
def test_sigterm_during_evaluation_keeps_checkpoint_and_record(trained, tmp_path, processes):
  """Slow (subprocess training; fast cover: test_signals_raise_interrupted_with_the_shell_exit_
  status, test_interrupted_message_names_the_kept_checkpoint)."""
  run_dir = _copy(trained, tmp_path)
  record = (run_dir / 'record.json').read_bytes()
  process = _start(processes, _cli(tmp_path, '--nll_passes=50', results_dir=False), tmp_path,
                   'eval')
  _wait_for(lambda: 'NLL: pass 1/50' in process.out.read_text(), process)
  process.send_signal(signal.SIGTERM)
  assert process.wait(300) == 143
  err = process.err.read_text()
  assert (f'error: interrupted by SIGTERM: the checkpoint of the last completed epoch (epoch 2, '
          f'{run_dir}/checkpoints/latest/ckpt-2) is kept') in err, err[-3000:]
  assert 'Traceback' not in err
  assert (run_dir / 'record.json').read_bytes() == record
  assert not (run_dir / 'run.lock').exists() and not _temporaries(run_dir)


# -- 2. Disk full. -----------------------------------------------------------------------------


def _no_space(*_, **__):
  raise OSError(errno.ENOSPC, 'No space left on device')


def test_disk_full_writing_a_file_names_it_and_keeps_the_old_content(tmp_path, monkeypatch):
  path = tmp_path / 'record.json'
  path.write_text('{"previous": "record"}\n')
  monkeypatch.setattr(os, 'fsync', _no_space)
  with pytest.raises(filesafety.WriteError) as info:
    filesafety.write_json_atomic(str(path), {'new': 'record'})
  assert info.value.filename == str(path)  # the file meant, not its temporary
  assert info.value.errno == errno.ENOSPC and info.value.strerror == 'No space left on device'
  assert path.read_text() == '{"previous": "record"}\n'
  assert os.listdir(tmp_path) == ['record.json']


def test_disk_full_appending_history_cuts_the_half_line_back(tmp_path, monkeypatch):
  path = tmp_path / 'history.jsonl'
  path.write_text('{"epoch": 1}\n')
  write = os.write

  def half_then_full(fd, data):
    write(fd, bytes(data[:len(data) // 2]))
    _no_space()

  monkeypatch.setattr(os, 'write', half_then_full)
  with pytest.raises(filesafety.WriteError, match='No space left on device') as info:
    filesafety.append_text(str(path), '{"epoch": 2, "val_elbo": -100.0}\n')
  assert info.value.filename == str(path)
  assert path.read_text() == '{"epoch": 1}\n'


def _checkpoints(directory, values=(1., 2.)):
  """A `CheckpointManager` like 'latest' (max_to_keep=2), with checkpoints 1, 2, ... saved."""
  variable = tf.Variable(tf.zeros([1000]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(directory),
                                       max_to_keep=2)
  for number, value in enumerate(values, 1):
    variable.assign(tf.fill([1000], float(value)))
    manager.save(checkpoint_number=number)
  return manager


@pytest.mark.parametrize('error', [
    OSError(errno.ENOSPC, 'No space left on device'),
    # What TensorFlow raises on a full disk (measured on a full tmpfs).
    tf.errors.ResourceExhaustedError(
        None, None, 'ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; '
        'No space left on device')])
def test_disk_full_saving_a_checkpoint_names_it_and_keeps_the_previous(
    tmp_path, monkeypatch, error):
  manager = _checkpoints(tmp_path)

  def save(checkpoint_number=None, **_):
    (tmp_path / f'ckpt-{checkpoint_number}_temp').mkdir()  # what TensorFlow leaves
    raise error

  monkeypatch.setattr(manager, 'save', save)
  with pytest.raises(filesafety.WriteError) as info:
    recovery.save_checkpoint(manager, 3)
  assert info.value.filename == str(tmp_path / 'ckpt-3')
  assert info.value.strerror == 'No space left on device'
  assert info.value.errno == errno.ENOSPC
  assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / 'ckpt-2')
  assert recovery.verify_checkpoint(str(tmp_path / 'ckpt-2')) is None


DISK_FULL_AT_EPOCH_3 = '''
import tensorflow as tf
_save = tf.train.CheckpointManager.save
def _full(self, checkpoint_number=None, **kwargs):
  if checkpoint_number == 3 and self.directory.endswith('latest'):  # what TF raises
    raise tf.errors.ResourceExhaustedError(None, None, self.directory + (
        '/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; '
        'No space left on device'))
  return _save(self, checkpoint_number=checkpoint_number, **kwargs)
tf.train.CheckpointManager.save = _full
'''


@pytest.mark.slow
def test_disk_full_in_training_exits_1_naming_the_checkpoint_and_resumes_later(
    trained, tmp_path):
  """Slow (subprocess training; fast cover: test_disk_full_saving_a_checkpoint_names_it_and_
  keeps_the_previous, test_disk_full_appending_history_cuts_the_half_line_back)."""
  run_dir = _copy(trained, tmp_path)
  record = (run_dir / 'record.json').read_bytes()
  command = _cli(tmp_path, '--max_epochs=4', results_dir=False)
  out = _run(_with_fault(DISK_FULL_AT_EPOCH_3, command))
  assert out.returncode == 1, out.stderr[-3000:]
  assert (f'error: cannot write {run_dir}/checkpoints/latest/ckpt-3: No space left on device. '
          'Nothing was half-written') in out.stderr
  _no_traceback(out)
  assert recovery.checkpoint_epoch(run_dir) == (2, str(run_dir / 'checkpoints/latest/ckpt-2'))
  assert recovery.verify_checkpoint(str(run_dir / 'checkpoints/latest/ckpt-2')) is None
  assert (run_dir / 'record.json').read_bytes() == record
  assert not (run_dir / 'run.lock').exists()

  out = _run(command)  # space freed: the same command resumes
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'Resuming from epoch 2 ' in out.stdout
  assert _history_epochs(run_dir) == [1, 2, 3, 4]


# -- 3. Corrupt checkpoints. -------------------------------------------------------------------


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _zero(path):
  with open(path, 'r+b') as f:
    f.seek(100)
    f.write(bytes(64))


DATA = 'ckpt-2.data-00000-of-00001'


@pytest.mark.parametrize('damage,file,resumed', [
    (_truncate, DATA, 1),
    (_zero, DATA, 1),
    (_truncate, 'ckpt-2.index', 1),
    (lambda path: path.write_bytes(b''), 'ckpt-2.index', 1),
    (os.remove, 'ckpt-2.index', 1),
    (lambda path: path.write_bytes(b''), 'checkpoint', 2),  # empty state file
    (lambda path: path.write_text('\x00garbage {{'), 'checkpoint', 2),
])
def test_corrupt_latest_checkpoint_falls_back_with_a_warning(tmp_path, damage, file, resumed):
  latest = tmp_path / 'checkpoints' / 'latest'
  _checkpoints(latest)
  damage(latest / file)
  with pytest.warns(UserWarning, match=str(latest / file)) as warned:
    found = recovery.find_latest(str(tmp_path))
    found.repair()
  [message] = [str(w.message) for w in warned if 'Resuming from' in str(w.message)]
  assert (f'Resuming from the newest intact checkpoint, {latest}/ckpt-{resumed} (epoch '
          f'{resumed}); history.jsonl is cut back') in message
  assert found.epoch == resumed
  # A fresh manager (as ResumableTraining makes) restores the intact one, nothing else.
  variable = tf.Variable(tf.zeros([1000]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(latest),
                                       max_to_keep=2)
  assert manager.latest_checkpoint == str(latest / f'ckpt-{resumed}')
  manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  assert np.all(variable.numpy() == float(resumed))


def test_no_intact_checkpoint_exits_2_naming_the_directory_to_move_away(tmp_path):
  latest = tmp_path / 'checkpoints' / 'latest'
  _checkpoints(latest)
  _truncate(latest / DATA)
  _truncate(latest / 'ckpt-1.data-00000-of-00001')
  before = _tree(tmp_path)
  with pytest.raises(config_lib.ConfigError,
                     match=f'no intact checkpoint in {latest}: .*{DATA} is unreadable.*move '
                           f"'{tmp_path}' away"):
    recovery.find_latest(str(tmp_path))
  assert _tree(tmp_path) == before


@pytest.mark.slow
def test_truncated_latest_checkpoint_resumes_from_the_previous_epoch(trained, tmp_path):
  """Slow (subprocess training; fast cover: test_corrupt_latest_checkpoint_falls_back_with_a_
  warning, test_no_intact_checkpoint_exits_2_naming_the_directory_to_move_away)."""
  run_dir = _copy(trained, tmp_path)
  bad = run_dir / 'checkpoints' / 'latest' / DATA
  _truncate(bad)
  out = _run(_cli(tmp_path, results_dir=False))
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'{bad} is unreadable' in out.stderr
  assert 'Resuming from the newest intact checkpoint' in out.stderr
  assert 'Resuming from epoch 1 ' in out.stdout
  record = json.loads((run_dir / 'record.json').read_text())
  assert [r['epoch'] for r in record['history']] == [1, 2]
  assert record['metrics']['epochs_trained'] == 2
  assert recovery.verify_checkpoint(str(run_dir / 'checkpoints' / 'latest' / 'ckpt-2')) is None


# -- 4. Read-only results directory; TF_CONFIG. ------------------------------------------------


def _record(seed=0):
  config = dataclasses.replace(CONFIG, seed=seed)
  return {'kind': 'table1_run', 'run_name': config_lib.run_name(config),
          'protocol': PROTOCOL, 'config': dataclasses.asdict(config),
          'environment': {'device': 'CPU (test)'},
          'metrics': {'nll_mean': 90., 'nll_sem': 0.5, 'test_elbo': -95., 'epochs_trained': 2},
          'wall_seconds': {'train_total': 60.}}


@contextlib.contextmanager
def _read_only(path):
  """`path` made read-only (for root too, via `chattr +i`, which root must obey)."""
  os.chmod(path, 0o555)
  immutable = os.geteuid() == 0
  if immutable and (shutil.which('chattr') is None or subprocess.run(
      ['chattr', '+i', str(path)], capture_output=True).returncode):
    os.chmod(path, 0o755)
    pytest.skip('running as root, and chattr +i is not available here')
  try:
    yield
  finally:
    if immutable:
      subprocess.run(['chattr', '-i', str(path)], check=True)
    os.chmod(path, 0o755)


def test_table_only_on_a_read_only_results_dir_exits_1_naming_the_file(tmp_path):
  results.publish(_record(), str(tmp_path / 'res'))
  table = tmp_path / 'res' / PROTOCOL / 'table1.md'
  before = table.read_text()
  with _read_only(table.parent):
    out = _run([sys.executable, '-m', 'experiments.table1', '--table_only',
                f'--results_dir={tmp_path}/res'])
  assert out.returncode == 1, out.stderr
  assert f'error: cannot write {table}: ' in out.stderr
  assert f"The tables under '{tmp_path}/res' are unchanged" in out.stderr
  _no_traceback(out)
  assert table.read_text() == before


@pytest.mark.parametrize('strategy', ['multiworker', 'default'])
def test_malformed_tf_config_exits_2_before_tensorflow(tmp_path, strategy):
  out = _run(_cli(tmp_path, f'--strategy={strategy}'), TF_CONFIG='{"cluster": ')
  assert out.returncode == 2, out.stderr[-2000:]
  assert 'error: TF_CONFIG is not valid JSON' in out.stderr
  assert 'cuInit' not in out.stderr  # refused before TensorFlow was imported
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('spec,message', [
    ('[1, 2]', 'must be a JSON object'),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', 'cluster'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', 'index'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', 'task'),
])
def test_tf_config_of_multiworker_must_describe_the_cluster(spec, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.check_tf_config('multiworker', {'TF_CONFIG': spec})
  config_lib.check_tf_config('multiworker', {'TF_CONFIG': json.dumps(
      {'cluster': {'worker': ['a:1', 'b:1']}, 'task': {'type': 'worker', 'index': 1}})})
  config_lib.check_tf_config('multiworker', {'TF_CONFIG': ''})  # unset: single worker


# -- 5. Orphans of killed writes. --------------------------------------------------------------


def test_orphans_of_killed_writes_are_removed_only_ours_only_old(tmp_path):
  run_dir, latest = tmp_path / 'run', tmp_path / 'run' / 'checkpoints' / 'latest'
  best = run_dir / 'checkpoints' / 'best'
  _checkpoints(latest)
  best.mkdir()
  old = [run_dir / '.tmp-k1ll3d00config.json', run_dir / '.tmp-k1ll3d00.png',
         latest / 'ckpt-3_temp', best / 'checkpoint.tmp0123456789abcdef',
         latest / 'ckpt-3.index.tempstate123456789']
  kept = [run_dir / '.tmp-x', run_dir / 'notes.tmp-k1ll3d00a', run_dir / 'history.jsonl',
          latest / 'ckpt-4_temp', run_dir / '.tmp-wr1t1ng0record.json']
  for path in old + kept:
    if path.name.endswith('_temp'):
      path.mkdir()
      (path / 'part-00000-of-00001.index').write_text('half')
    else:
      path.write_text('half')
    if path in old:
      os.utime(path, (OLD, OLD))
  for path in (latest / 'ckpt-4_temp', run_dir / '.tmp-wr1t1ng0record.json'):
    os.utime(path, (time.time() + 3600,) * 2)  # a write started after this process: not ours
  removed = recovery.remove_orphans(str(run_dir))
  assert sorted(removed) == sorted(str(p) for p in old)
  assert all(p.exists() for p in kept) and not any(p.exists() for p in old)
  assert tf.train.latest_checkpoint(str(latest)) == str(latest / 'ckpt-2')


def test_publish_removes_its_own_old_temporaries_only(tmp_path):
  record = _record()
  records = tmp_path / PROTOCOL / 'records'
  records.mkdir(parents=True)
  own = records / f'.tmp-k1ll3d00{record["run_name"]}.json'
  table = tmp_path / PROTOCOL / '.tmp-k1ll3d00table1.md'
  other = records / '.tmp-k1ll3d00other-run.json'
  for path in (own, table, other):
    path.write_text('half')
    os.utime(path, (OLD, OLD))
  results.publish(record, str(tmp_path))
  assert not own.exists() and not table.exists() and other.exists()


@pytest.mark.slow
def test_the_next_run_removes_orphans_of_killed_writes(trained):
  """Slow (shares the trained run; fast cover: test_orphans_of_killed_writes_are_removed_only_
  ours_only_old, test_publish_removes_its_own_old_temporaries_only)."""
  planted = trained.planted
  for name in ('config_tmp', 'record_tmp', 'table_tmp'):
    assert not planted[name].exists(), name
  assert planted['other_tmp'].exists() and planted['fresh_tmp'].exists()
  assert not _temporaries(trained.root / 'runs')


# -- 6. A budget below the epochs trained. ----------------------------------------------------


def _fake_run(run_dir, config, epochs, val_elbo=None, seconds_per_epoch=30.):
  """A run directory as `train_and_evaluate` leaves it after `epochs` epochs (no model: small
  checkpoints), with its config.json and history."""
  new = train._check_workdir(str(run_dir), config)
  os.makedirs(run_dir)
  filesafety.write_json_atomic(os.path.join(run_dir, 'config.json'), new)
  _checkpoints(os.path.join(run_dir, 'checkpoints', 'latest'), values=range(1, epochs + 1))
  val_elbo = val_elbo or [-100. + e for e in range(1, epochs + 1)]
  filesafety.write_text_atomic(os.path.join(run_dir, 'history.jsonl'), ''.join(
      json.dumps({'epoch': e, 'val_elbo': v, 'train_seconds': e * seconds_per_epoch,
                  'cpu_seconds': e * seconds_per_epoch}) + '\n'
      for e, v in enumerate(val_elbo, 1)))


FAKE_DATA = types.SimpleNamespace(
    train_images=np.zeros([200, 28, 28], np.uint8), valid_images=np.zeros([50, 28, 28], np.uint8),
    test_images=np.zeros([200, 28, 28], np.uint8), source='zeros', binarized=False)


def test_smaller_max_epochs_than_trained_is_refused_writing_nothing(tmp_path):
  run_dir = tmp_path / RUN
  _fake_run(run_dir, dataclasses.replace(CONFIG, max_epochs=6), epochs=6)
  before = _tree(tmp_path)
  with pytest.raises(config_lib.ConfigError) as info:
    train.train_and_evaluate(dataclasses.replace(CONFIG, max_epochs=3), str(run_dir),
                             FAKE_DATA)
  assert str(info.value) == (
      f"'{run_dir}' already holds a checkpoint of 6 trained epochs, but with --max_epochs=3 "
      'training stops after epoch 3: its record would state a budget that did not produce it. '
      'Rerun with the budget it was trained with (its config.json: --max_epochs=6, '
      '--patience=0, --train_minutes=0.0, --budget_clock=wall) or a larger one, or use a new '
      '--run_name for this budget.')
  assert _tree(tmp_path) == before


@pytest.mark.parametrize('change,refused', [
    (dict(max_epochs=6), None),
    (dict(max_epochs=10), None),  # a larger budget continues training
    (dict(max_epochs=5), '--max_epochs=5'),
    (dict(patience=2), '--patience=2 training stops after epoch 4'),
    (dict(patience=4), None),  # stops after epoch 6: exactly what was trained
    (dict(train_minutes=1.5), '--train_minutes=1.5 (--budget_clock=wall) training stops after '
                              'epoch 3'),
    (dict(train_minutes=3.), None),
])
def test_budget_is_replayed_on_the_history(tmp_path, change, refused):
  """val_elbo improves for 2 epochs, then not; 30 s per epoch."""
  _fake_run(tmp_path / RUN, dataclasses.replace(CONFIG, max_epochs=6), epochs=6,
            val_elbo=[-100., -90., -95., -95., -95., -95.])
  config = dataclasses.replace(CONFIG, **{'max_epochs': 6, **change})
  if refused is None:
    recovery.check_budget(str(tmp_path / RUN), config, 6)
  else:
    with pytest.raises(config_lib.ConfigError, match=re.escape(refused)):
      recovery.check_budget(str(tmp_path / RUN), config, 6)


@pytest.mark.slow
def test_smaller_max_epochs_on_a_finished_run_exits_2(trained, tmp_path):
  """Slow (subprocess; fast cover: test_smaller_max_epochs_than_trained_is_refused_writing_
  nothing)."""
  run_dir = _copy(trained, tmp_path)
  before = _tree(tmp_path)
  out = _run(_cli(tmp_path, '--max_epochs=1', results_dir=False))
  assert out.returncode == 2, out.stderr[-3000:]
  assert (f"error: '{run_dir}' already holds a checkpoint of 2 trained epochs, but with "
          '--max_epochs=1 training stops after epoch 1') in out.stderr
  _no_traceback(out)
  assert _tree(tmp_path) == before


# -- 7. Two runs in one directory. -------------------------------------------------------------


def _lock_of(process_id, host=None):
  return json.dumps({'pid': process_id, 'host': host or socket.gethostname(),
                     'start_ticks': runlock._start_ticks(process_id), 'since': 'earlier'})


def test_a_live_lock_refuses_the_second_run_naming_pid_and_lock(tmp_path, processes):
  sleeper = subprocess.Popen(['sleep', '300'])
  processes.append(sleeper)
  (tmp_path / 'run.lock').write_text(_lock_of(sleeper.pid))
  with pytest.raises(runlock.RunLockedError) as info:
    with runlock.RunLock(str(tmp_path)):
      pass
  assert isinstance(info.value, config_lib.ConfigError)  # exit status 2
  assert (f"the run directory '{tmp_path}' is in use by another run (pid {sleeper.pid} on "
          f'host {socket.gethostname()}') in str(info.value)
  assert f'lock file {tmp_path}/run.lock' in str(info.value)
  assert json.loads((tmp_path / 'run.lock').read_text())['pid'] == sleeper.pid  # untouched


def test_a_lock_of_another_host_is_never_broken(tmp_path):
  (tmp_path / 'run.lock').write_text(_lock_of(1, host='elsewhere.example'))
  with pytest.raises(runlock.RunLockedError, match=f'pid 1 on host elsewhere.example.*delete '
                                                    f'{tmp_path}/run.lock'):
    runlock.RunLock(str(tmp_path)).__enter__()


@pytest.mark.parametrize('how', ['exited', 'killed, not yet reaped', 'pid reused'])
def test_a_stale_lock_is_broken_and_ours_released_on_exception(tmp_path, capfd, how):
  if how == 'exited':
    dead = subprocess.Popen(['true'])
    dead.wait()
    lock = _lock_of(dead.pid)
  elif how == 'killed, not yet reaped':
    dead = subprocess.Popen(['sleep', '300'])
    dead.kill()
    _wait_until_zombie(dead.pid)
    lock = _lock_of(dead.pid)
  else:  # our own pid, with another start time: the pid of a process that is gone, reused
    lock = json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'start_ticks': 1})
  (tmp_path / 'run.lock').write_text(lock)
  with pytest.raises(RuntimeError):
    with runlock.RunLock(str(tmp_path)):
      held = json.loads((tmp_path / 'run.lock').read_text())
      raise RuntimeError('the run failed')
  assert held['pid'] == os.getpid()
  assert not (tmp_path / 'run.lock').exists()  # released
  assert f'warning: removed the stale lock {tmp_path}/run.lock' in capfd.readouterr().err
  if how == 'killed, not yet reaped':
    dead.wait()


def _wait_until_zombie(pid):
  for _ in range(200):
    if runlock._state(pid) == 'Z':
      return
    time.sleep(0.01)
  raise AssertionError(f'{pid} did not become a zombie')


def test_train_and_evaluate_refuses_a_locked_run_directory_writing_nothing(tmp_path, processes):
  run_dir = tmp_path / RUN
  _fake_run(run_dir, CONFIG, epochs=1)
  sleeper = subprocess.Popen(['sleep', '300'])
  processes.append(sleeper)
  (run_dir / 'run.lock').write_text(_lock_of(sleeper.pid))
  before = _tree(tmp_path)
  with pytest.raises(runlock.RunLockedError, match=f'pid {sleeper.pid} '):
    train.train_and_evaluate(CONFIG, str(run_dir), FAKE_DATA)
  assert _tree(tmp_path) == before


@pytest.mark.slow
def test_a_second_identical_run_exits_2_while_the_first_trains(trained, tmp_path, processes):
  """Slow (subprocess training; fast cover: test_a_live_lock_refuses_the_second_run_naming_pid_
  and_lock, test_train_and_evaluate_refuses_a_locked_run_directory_writing_nothing)."""
  run_dir = _copy(trained, tmp_path)
  command = _cli(tmp_path, '--max_epochs=500', results_dir=False)
  first = _start(processes, command, tmp_path, 'first')
  _wait_for(lambda: recovery.checkpoint_epoch(run_dir)[0] >= 3, first)
  second = _run(command)
  assert second.returncode == 2, second.stderr[-3000:]
  assert (f"error: the run directory '{run_dir}' is in use by another run (pid {first.pid} "
          f'on host {socket.gethostname()}') in second.stderr
  assert f'lock file {run_dir}/run.lock' in second.stderr
  _no_traceback(second)
  assert first.poll() is None  # the first run goes on
  first.send_signal(signal.SIGINT)
  assert first.wait(300) == 130
  assert not (run_dir / 'run.lock').exists()


# -- Already fixed, kept fixed. ----------------------------------------------------------------


def test_checkpoints_without_config_json_are_refused(tmp_path):
  (tmp_path / 'checkpoints' / 'latest').mkdir(parents=True)
  with pytest.raises(config_lib.ConfigError, match='holds checkpoints but no config.json'):
    train._check_workdir(str(tmp_path),
                         dataclasses.replace(CONFIG, learning_rate=2e-3))


@pytest.mark.slow
def test_deleted_config_json_then_another_learning_rate_exits_2(trained, tmp_path):
  """Slow (subprocess; fast cover: test_checkpoints_without_config_json_are_refused)."""
  run_dir = _copy(trained, tmp_path)
  os.remove(run_dir / 'config.json')
  before = _tree(tmp_path)
  out = _run(_cli(tmp_path, '--learning_rate=0.002', results_dir=False))
  assert out.returncode == 2, out.stderr[-3000:]
  assert f"error: '{run_dir}' holds checkpoints but no config.json" in out.stderr
  _no_traceback(out)
  assert _tree(tmp_path) == before


@pytest.mark.parametrize('flag,message', [
    *USAGE_ERRORS.items(), ('--results_dir=', 'an output directory must not be empty')])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, flag, message):
  out = _run(_cli(tmp_path, flag))
  assert out.returncode == 2, out.stderr[-2000:]
  assert f'error: {message}' in out.stderr
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_the_corrected_command_works_after_usage_errors(trained):
  """Slow (shares the trained run; fast cover: test_usage_errors_exit_2_and_write_nothing)."""
  for flag, message in USAGE_ERRORS.items():
    assert trained.usage[flag].returncode == 2 and message in trained.usage[flag].stderr
  assert trained.after_usage == []
  assert trained.run.returncode == 0
  assert os.path.exists(results.record_path(str(trained.root / 'res'), PROTOCOL, RUN,
                                            results.environment(), dataclasses.asdict(CONFIG)))


def test_publish_and_table_only_skip_a_malformed_record_with_a_warning(tmp_path):
  records = tmp_path / PROTOCOL / 'records'
  records.mkdir(parents=True)
  (records / 'bad.json').write_text('{"kind": "table1_run", "config": {')
  with pytest.warns(UserWarning, match=f'skipping {records}/bad.json'):
    results.publish(_record(), str(tmp_path))
  out = _run([sys.executable, '-m', 'experiments.table1', '--table_only',
              f'--results_dir={tmp_path}'])
  assert out.returncode == 0, out.stderr
  assert f'skipping {records}/bad.json' in out.stderr
  assert f'wrote {tmp_path}/{PROTOCOL}/table1.md' in out.stdout


@pytest.mark.slow
def test_a_malformed_record_fails_neither_a_later_run_nor_table_only(trained):
  """Slow (shares the trained run; fast cover: test_publish_and_table_only_skip_a_malformed_
  record_with_a_warning)."""
  bad = trained.root / 'res' / PROTOCOL / 'records' / 'bad.json'
  assert f'skipping {bad}' in trained.run.stderr
  out = _run([sys.executable, '-m', 'experiments.table1', '--table_only',
              f'--results_dir={trained.root}/res'])
  assert out.returncode == 0 and f'skipping {bad}' in out.stderr
  assert 'Langevin-VAE K=1' in (trained.root / 'res' / PROTOCOL / 'table1.md').read_text()


def test_explicit_default_step_size_names_and_accepts_the_same_run(tmp_path):
  explicit = config_lib.Config.from_preset(
      'tiny', flow='langevin', num_steps=1, precision='float32', fid_samples=0, max_epochs=2,
      patience=0, nll_passes=1, step_size=0.2)
  assert config_lib.run_name(explicit) == config_lib.run_name(CONFIG)
  filesafety.write_json_atomic(str(tmp_path / 'config.json'),
                               train._check_workdir(str(tmp_path), CONFIG))
  assert train._check_workdir(str(tmp_path), explicit) is None  # accepted, nothing to write


@pytest.mark.slow
def test_explicit_default_step_size_resumes_a_run_made_without_it(trained, tmp_path):
  """Slow (subprocess; fast cover: test_explicit_default_step_size_names_and_accepts_the_same_
  run)."""
  run_dir = _copy(trained, tmp_path)
  out = _run(_cli(tmp_path, '--step_size=0.2', results_dir=False))
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'record: {run_dir}/record.json' in out.stdout
  assert json.loads((run_dir / 'record.json').read_text())['metrics']['epochs_trained'] == 2
