"""What a run shows (lvae_tf.progress, lvae_tf.cli's quiet TensorFlow start-up) and HParams."""

import glob
import io
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from lvae_tf import progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_epoch_bound_is_where_the_cpu_budget_runs_out():
  # The cpu preset: 1000 epochs, 60 CPU-minutes; at 90 CPU-s per epoch the budget ends in epoch
  # 40 (checked at each epoch's end: training stops after the first epoch that reaches it).
  assert progress.epoch_bound(1, 1000, 3600., 90., 90.) == (40, 'budget')
  assert progress.epoch_bound(10, 1000, 3600., 950., 95.) == (38, 'budget')
  # The epoch budget binds when it comes first, and when there is no time budget.
  assert progress.epoch_bound(1, 6, 3600., 90., 90.) == (6, 'epochs')
  assert progress.epoch_bound(3, 6, 0., 90., 30.) == (6, 'epochs')
  # Not timed yet: only the epoch budget is known.
  assert progress.epoch_bound(0, 1000, 3600., 0., None) == (1000, 'epochs')
  # Budget spent: the bound is the epoch just finished.
  assert progress.epoch_bound(41, 1000, 3600., 3690., 90.) == (41, 'budget')


class _State:
  """The attributes of `train.ResumableTraining` that `TrainingProgress` reads."""

  def __init__(self, budget_seconds, clock='cpu', patience=10):
    self.budget_seconds, self.budget_clock, self.patience = budget_seconds, clock, patience
    self.epoch = tf.Variable(0, dtype=tf.int64)
    self.best = tf.Variable(-np.inf, dtype=tf.float64)
    self.best_epoch = tf.Variable(-1, dtype=tf.int64)
    self.wait = tf.Variable(0, dtype=tf.int64)
    self.cpu_seconds = tf.Variable(0., dtype=tf.float64)
    self.train_seconds = tf.Variable(0., dtype=tf.float64)
    self.done = self.out_of_time = False

  def end_epoch(self, epoch, value, cpu):
    """What ResumableTraining.on_epoch_end does to the state."""
    self.cpu_seconds.assign_add(cpu)
    if value > self.best.numpy():
      self.best.assign(value)
      self.best_epoch.assign(epoch)
      self.wait.assign(0)
    else:
      self.wait.assign_add(1)
    self.epoch.assign(epoch + 1)


def test_training_progress_lines_show_budget_best_wait_and_eta():
  state = _State(budget_seconds=3600.)
  out = io.StringIO()
  callback = progress.TrainingProgress(state, max_epochs=1000, steps_per_epoch=500, verbose=2,
                                       stream=out)
  callback.set_model(types.SimpleNamespace(stop_training=False))
  callback.on_train_begin()
  for epoch, (value, cpu) in enumerate([(-100., 90.), (-95., 90.), (-96., 90.)]):
    callback.on_epoch_begin(epoch)
    state.end_epoch(epoch, value, cpu)
    callback.on_epoch_end(epoch, {'elbo': value - 1., 'val_elbo': value})
  lines = out.getvalue().splitlines()
  assert lines[0] == ('Training at most 1000 epochs, 60.0 CPU-min of training (0.0 used), '
                      'patience 10 epochs.')
  assert len(lines) == 4, lines  # one line per epoch, no bar: the stream is not a terminal
  assert lines[1].startswith('epoch 1/~40 | 1.5 of 60.0 CPU-min (58.5 left) | elbo -101.00 '
                             'val_elbo -100.00 | best val_elbo -100.00 (epoch 1), 0 epochs since'
                             ), lines[1]
  assert lines[3].startswith('epoch 3/~40 | 4.5 of 60.0 CPU-min (55.5 left) | elbo -97.00 '
                             'val_elbo -96.00 | best val_elbo -95.00 (epoch 2), 1 epoch since'
                             ), lines[3]
  assert re.search(r'\d+ s/epoch, ETA \d+ s$', lines[3]), lines[3]


def test_training_progress_counts_epochs_when_they_bind_and_is_silent_at_verbose_0():
  out = io.StringIO()
  state = _State(budget_seconds=0.)
  callback = progress.TrainingProgress(state, max_epochs=6, steps_per_epoch=3, verbose=2,
                                       stream=out)
  callback.set_model(types.SimpleNamespace(stop_training=False))
  callback.on_epoch_begin(0)
  state.end_epoch(0, -5., 1.)
  callback.on_epoch_end(0, {'val_elbo': -5.})
  assert out.getvalue().startswith('epoch 1/6 | 1 of 6 epochs (5 left) |'), out.getvalue()
  quiet = io.StringIO()
  callback = progress.TrainingProgress(state, 6, 3, verbose=0, stream=quiet)
  callback.set_model(types.SimpleNamespace(stop_training=False))
  callback.on_train_begin()
  callback.on_epoch_begin(1)
  callback.on_epoch_end(1, {'val_elbo': -5.})
  callback.on_train_end()
  assert quiet.getvalue() == ''


def _events(logdir):
  """{tag: (summary value, step)} of every event file under `logdir`."""
  found = {}
  for path in glob.glob(os.path.join(logdir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        found[value.tag] = (value, event.step)
  return found


def test_log_hparams_writes_the_config_and_final_metrics_for_the_hparams_dashboard(tmp_path):
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-import-not-at-top
  record = {'run_name': 'langevin-K2-tiny-seed1-abc123',
            'config': {'flow': 'langevin', 'num_steps': 2, 'learning_rate': 1e-3,
                       'damping': None, 'learn_flow': True},
            'metrics': {'test_elbo': -95.5, 'valid_elbo': -94.25, 'nll_mean': 90.125,
                        'nll_sem': 0.5, 'epochs_trained': 7, 'best_epoch': 6,
                        'classifier_fid': float('nan')}}
  logdir = str(tmp_path / 'hparams')
  progress.log_hparams(logdir, record)
  progress.log_hparams(logdir, record)  # a resumed run: replaced, one session
  assert len(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))) == 1
  events = _events(logdir)
  value, _ = events['_hparams_/session_start_info']
  assert value.metadata.plugin_data.plugin_name == 'hparams'
  data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
  start = data.session_start_info
  assert start.group_name == 'langevin-K2-tiny-seed1-abc123'
  hparams = {k: getattr(v, v.WhichOneof('kind')) for k, v in start.hparams.items()}
  assert hparams == {'flow': 'langevin', 'num_steps': 2., 'learning_rate': 1e-3,
                     'damping': 'unset', 'learn_flow': True}
  for name in ('test_elbo', 'valid_elbo', 'nll_mean', 'nll_sem', 'epochs_trained',
               'best_epoch'):
    value, step = events[name]
    assert tf.make_ndarray(value.tensor) == pytest.approx(record['metrics'][name]), name
    assert step == 7
  assert 'classifier_fid' not in events  # not finite: left out


@pytest.mark.slow
def test_cli_tiny_run_console_output(tmp_path):
  """Slow (a tiny run through the command line; fast cover: the tests above)."""
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env.update(PYTHONPATH=ROOT, MPLCONFIGDIR=str(tmp_path / 'mpl'))
  out = subprocess.run([sys.executable, '-m', 'experiments.table1', '--preset=tiny',
                        '--flow=langevin', '--steps=2', '--workdir=runs'], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=1200, check=False)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  text = out.stdout
  for epoch in (1, 2):  # the tiny preset: 2 epochs, no time budget
    line = re.search(rf'^epoch {epoch}/2 \| {epoch} of 2 epochs \({2 - epoch} left\) \| .*$',
                     text, re.MULTILINE)
    assert line, text
    assert re.search(r'\| best val_elbo -\d+\.\d\d \(epoch \d\), \d epochs? since \| \d+ s/epoch, '
                     r'ETA \d+ s$', line.group(0)), line.group(0)
  for expected in ('Test and validation ELBO (200 and 50 images) ...',
                   'NLL (50 test images, S = 6, 2 pass(es)) ...', 'NLL: pass 2/2, batch 2/2',
                   'Classifier FID/IS on 100 samples ...'):
    assert expected in text, (expected, text)
  run_dir = os.path.join('runs', os.listdir(tmp_path / 'runs')[0])
  assert f'record: {run_dir}/record.json' in text
  assert f'images: {run_dir}/samples.png  {run_dir}/reconstructions.png' in text
  assert f'tensorboard --logdir {run_dir}/tensorboard' in text
  record = json.loads((tmp_path / run_dir / 'record.json').read_text())
  assert f'NLL {record["metrics"]["nll_mean"]:.2f}' in text
  for stream in (out.stdout, out.stderr):
    assert 'Traceback' not in stream
    assert not re.search(r'^[EIW]0000 ', stream, re.MULTILINE), stream[-3000:]
    assert 'cuInit' not in stream and 'absl::InitializeLog' not in stream, stream[-3000:]
  events = _events(str(tmp_path / run_dir / 'tensorboard' / 'hparams'))
  value, _ = events['nll_mean']
  assert tf.make_ndarray(value.tensor) == pytest.approx(record['metrics']['nll_mean'])


def test_tensorflow_start_up_log_is_shown_only_when_asked():
  """`--verbose=3`, absl's -v, or TF_CPP_MIN_LOG_LEVEL in the environment show TensorFlow's
  start-up log; the default verbosity and --verbose=0..2 keep it hidden."""
  from lvae_tf import cli  # pylint: disable=g-import-not-at-top
  for argv in (['--verbose=3'], ['-v', '1'], ['--verbosity=0'], ['--preset=tiny', '--verbose=3']):
    assert cli.wants_tensorflow_log(argv, environ={}), argv
  for argv in ([], ['--verbose=2'], ['--verbose=1'], ['--verbose=30'], ['--preset=tiny']):
    assert not cli.wants_tensorflow_log(argv, environ={}), argv
  assert cli.wants_tensorflow_log([], environ={'TF_CPP_MIN_LOG_LEVEL': '0'})


def test_summary_names_the_record_file_it_was_given(tmp_path):
  record = {'run_name': 'r', 'config': {'nll_samples': 6, 'nll_passes': 2},
            'metrics': {'test_elbo': -100., 'nll_mean': 95.5, 'nll_sem': 1.25,
                        'nll_test_images': 50, 'epochs_trained': 2, 'best_epoch': 2,
                        'stopped_by': 'max_epochs'}}
  (tmp_path / 'samples.png').write_bytes(b'')
  text = progress.summary(record, str(tmp_path))
  assert f'record: {tmp_path}/record.json' in text
  assert 'NLL 95.50 ± 1.25 (standard error; S = 6, 50 test images, 2 pass(es))' in text
  assert f'images: {tmp_path}/samples.png\n' in text  # only the PNGs that exist
  other = progress.summary(record, str(tmp_path), str(tmp_path / 'record-eval-1234abcd.json'))
  assert f'record: {tmp_path}/record-eval-1234abcd.json' in other
