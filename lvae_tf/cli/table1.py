r"""Table 1 of the paper: train one model, evaluate ELBO, NLL and FID/IS, record the run.

    python -m experiments.table1 --flow=langevin --steps=10            # the cpu protocol
    python -m experiments.table1 --flow=hvae --hvae_gradient=cached --steps=5 --preset=paper
    python -m experiments.table1 --flow=vae --preset=cpu --results_dir=results/table1  # publish
    python -m experiments.table1 --table_only --results_dir=results/table1

Every field of `lvae_tf.config.Config` is a flag (`--helpfull` lists them); flags given
override the preset. Each run trains in `--workdir/<run name>/` (config, checkpoints, history,
TensorBoard, `record.json`; started again with the same command it resumes). The run name is
`lvae_tf.config.run_name` unless `--run_name` chooses one.

`--run_name` is one path component (no '/', no '..', at most 100 characters).

Nothing is published unless `--results_dir` is given: then the record is copied to
`<results_dir>/<protocol>/records/<machine>/<run name>.json` (a `--run_name` of your own is
followed by the configuration's run name: a record of another configuration is never
replaced) and `<results_dir>/<protocol>/table1.md` is rebuilt from that protocol's records
(seeds averaged, protocols never mixed, each run counted once).

Every failure ends with a one-line `error: ...` on stderr (no traceback) and a state the same
command, run again, resumes from. Exit status:

* 0: done.
* 1: the run failed: training diverged (the last good checkpoint is kept, no record), or a file
  could not be written (disk full, read-only results directory: the message names it; the
  previous checkpoint, record and tables are intact).
* 2: usage error, nothing written: bad flags or `TF_CONFIG`, a run directory holding another
  configuration's checkpoint, no intact checkpoint to resume, a budget below the epochs already
  trained, or the run directory in use by another run (`run.lock`, naming its pid).
* 130 (Ctrl-C, SIGINT) and 143 (SIGTERM): interrupted; the checkpoint of the last completed
  epoch is kept (never half-written) and the same command resumes from it.
"""

import dataclasses
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from lvae_tf import cli  # pylint: disable=g-bad-import-order
from lvae_tf import config_flags  # pylint: disable=g-bad-import-order
from lvae_tf import errors  # pylint: disable=g-bad-import-order
from lvae_tf.filesafety import interrupts  # pylint: disable=g-bad-import-order
from lvae_tf.filesafety import recovery  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

config_flags.define_config_flags(default_preset='cpu')
config_flags.define_workdir_flag()
flags.adopt_module_key_flags(config_flags)  # --help lists them (lvae_tf.cli.help_text)
flags.DEFINE_string('run_name', None,
                    'Name of the run directory (default: lvae_tf.config.run_name).')
flags.DEFINE_string('results_dir', None,
                    'Publish the record and table here (e.g. results/table1); unset: the '
                    'record stays in the run directory only.')
flags.DEFINE_bool('table_only', False, 'Only rebuild the tables under --results_dir.')
flags.DEFINE_bool('print_run_name', False,
                  'Print the run name (and protocol) of this configuration and exit.')
flags.DEFINE_bool('skip_if_published', False,
                  'Exit at once if --results_dir already holds a record of this configuration '
                  'from this machine (whatever its run name).')


@errors.main_boundary
def main(argv):
  with interrupts.handle_signals():  # SIGINT, SIGTERM -> interrupts.Interrupted
    try:
      _main(argv)
      return
    except interrupts.Interrupted as e:  # before or after the run (during it: see _main)
      interrupted = e
    _fail(interrupted, f'interrupted by {interrupted.signal_name}: files are written whole or '
          'not at all; run the same command again.', status=interrupted.exit_status)


def _fail(error, message, status):
  """`cli.fail`, once what `error` unwound is gone (called outside the `except` that caught it).

  Its traceback holds the frames of the training it stopped, and with them the `tf.data`
  iterators whose threads would otherwise still run while the process exits (see
  `lvae_tf.filesafety.interrupts.release`).
  """
  interrupts.release(error)
  cli.fail(message, status=status)


def _cannot_write(error):
  """`cannot write <path>: <cause>` for a `filesafety.WriteError`, else the error itself."""
  if error.filename and error.strerror:
    return f'cannot write {error.filename}: {error.strerror}'
  return str(error)


def _interrupted(error, run_dir):
  epoch, checkpoint = recovery.checkpoint_epoch(run_dir)
  kept = (f'the checkpoint of the last completed epoch (epoch {epoch}, {checkpoint}) is kept'
          if checkpoint else f'no epoch was completed yet, nothing to keep in {run_dir}')
  return (f'interrupted by {error.signal_name}: {kept}. Run the same command to resume (a run '
          'whose training had finished redoes only the evaluation).')


def _main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # TF's checkpoint INFO lines are noise here
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  if FLAGS.table_only:
    if not FLAGS.results_dir:
      cli.fail('--table_only needs --results_dir (e.g. --results_dir=results/table1).')
    try:
      tables = results.write_tables(FLAGS.results_dir)
    except OSError as e:
      cli.fail(f'{_cannot_write(e)}. The tables under {FLAGS.results_dir!r} are unchanged. '
               f'{errors.advice(e)}', status=1)
    for path in tables:
      print(f'wrote {path}')
    if not tables:
      print(f'no records under {FLAGS.results_dir}')
    return
  try:  # Before TensorFlow is imported: bad input fails in a fraction of a second.
    config = config_flags.config_from_flags()
    config.validate()
    config_lib.check_tf_config(config.strategy)
    if FLAGS.run_name is not None:
      config_lib.check_run_name(FLAGS.run_name)
    config_lib.check_writable(FLAGS.workdir, keep=False)
    if FLAGS.results_dir is not None:
      config_lib.check_writable(FLAGS.results_dir, keep=False)
  except config_lib.ConfigError as e:
    cli.fail(str(e))
  from lvae_tf import data, models, train  # pylint: disable=g-import-not-at-top,multiple-imports
  config = train.resolve(config)
  name = FLAGS.run_name or config_lib.run_name(config)
  protocol = config_lib.protocol_name(config)
  if FLAGS.print_run_name:
    print(name, protocol)
    return
  published = FLAGS.skip_if_published and FLAGS.results_dir and results.find_published(
      FLAGS.results_dir, dataclasses.asdict(config), results.environment())
  if published:
    print(f'{name}: this configuration is already published for this machine ({published}), '
          'skipped.')
    return
  run_dir = os.path.join(FLAGS.workdir, name)
  try:
    _run(config, name, run_dir)
    return
  except (config_lib.ConfigError, data.DataError) as e:
    failure = e, str(e), 2
  except models.NonFiniteLossError as e:
    failure = e, str(e), 1
  except OSError as e:  # lvae_tf.filesafety.WriteError: disk full, permissions
    failure = e, ' '.join(filter(None, [
        f'{_cannot_write(e)}. Nothing was half-written: the checkpoint of the last completed '
        'epoch and the previous record are kept.', errors.advice(e),
        'Once that is fixed, the same command resumes.'])), 1
  except interrupts.Interrupted as e:
    failure = e, _interrupted(e, run_dir), e.exit_status
  _fail(*failure)


def _run(config, name, run_dir):
  """Trains and evaluates (`train.train_and_evaluate`), prints and publishes the record."""
  from lvae_tf import progress, results, train  # pylint: disable=g-import-not-at-top,multiple-imports
  record = train.train_and_evaluate(config, run_dir)
  if record['environment']['task'] != 'chief':
    return  # a non-chief worker of a multi-worker run: the chief writes the results
  print('\n' + progress.summary(
      record, run_dir, train.record_file(run_dir, train.Config.from_dict(record['config']))))
  if FLAGS.results_dir is not None:
    path, table = results.publish(record, FLAGS.results_dir)
    print(f'published: {path}\n\n{table}')


def run():
  """Entry point of the `lvae-table1` console script (same as `python -m experiments.table1`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
