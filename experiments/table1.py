r"""Table 1 of the paper: train one model, evaluate ELBO and NLL, regenerate the table.

    python -m experiments.table1 --flow=langevin --steps=10 --preset=quick
    python -m experiments.table1 --flow=hvae --hvae_gradient=cached --steps=5
    python -m experiments.table1 --table_only      # rebuild results/table1/table1.md

Each run trains in `--workdir/<run name>/` (checkpoints, TensorBoard; started again with the
same command it resumes), writes one JSON record to `--results_dir/records/` and rebuilds
`--results_dir/table1.md` from every record there. Flags given explicitly override the preset.
Bad flags exit with status 2 and write nothing.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from experiments import cli  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

flags.DEFINE_enum('flow', 'langevin', ['langevin', 'hvae', 'vae'],
                  'Flow of the model (vae = no flow, K = 0).')
flags.DEFINE_integer('steps', 10, 'Flow steps K (0 for vae).', lower_bound=0)
flags.DEFINE_enum('hvae_gradient', 'reference', ['reference', 'cached'],
                  'HVAE leapfrog gradients: reference (2K) or cached (K+1).')
flags.DEFINE_enum('tempering', 'fixed', ['fixed', 'free', 'none'],
                  'HVAE tempering scheme.')
flags.DEFINE_enum('preset', 'quick', ['paper', 'quick', 'tiny'],
                  'paper: the paper protocol (GPU); quick: ~10 min on 2 CPU '
                  'cores; tiny: seconds, for smoke tests (numbers meaningless).')
flags.DEFINE_integer('batch_size', None, 'Training batch size.', lower_bound=1)
flags.DEFINE_integer('max_epochs', None, 'Epoch budget.', lower_bound=1)
flags.DEFINE_integer('steps_per_epoch', None,
                     'Training steps between validation checks.', lower_bound=1)
flags.DEFINE_integer('patience', None,
                     'Epochs without validation improvement before stopping.',
                     lower_bound=0)
flags.DEFINE_float('learning_rate', None, 'Adamax learning rate.',
                   lower_bound=0.)
flags.DEFINE_float('step_size', None, 'Initial flow step size, in (0, 0.5).')
flags.DEFINE_float('damping', None, 'Initial Langevin damping nu, > 0.')
flags.DEFINE_bool('learn_flow', None, 'Learn step sizes/damping/temperature.')
flags.DEFINE_enum('activation', None, ['softplus', 'relu', 'elu', 'tanh'],
                  'Hidden activation of encoder and decoder.')
flags.DEFINE_integer('nll_samples', None, 'Importance samples per test image.',
                     lower_bound=1)
flags.DEFINE_integer('nll_passes', None, 'Passes over the test set for NLL.',
                     lower_bound=1)
flags.DEFINE_integer('nll_test_images', None,
                     'Test images used for NLL (0 = all).', lower_bound=0)
flags.DEFINE_integer('fid_samples', None,
                     'Generated images for classifier FID/IS (0 = skip).',
                     lower_bound=0)
flags.DEFINE_integer('seed', None, 'Random seed.')
flags.DEFINE_bool('jit_compile', None, 'Compile train/test steps with XLA.')
flags.DEFINE_bool('deterministic', None, 'Enable TF op determinism.')
flags.DEFINE_enum('strategy', None, ['default', 'mirrored', 'multiworker'],
                  'tf.distribute strategy (multiworker reads TF_CONFIG).')
flags.DEFINE_string('workdir', 'runs', 'Root of per-run work directories.')
flags.DEFINE_string('results_dir', os.path.join('results', 'table1'),
                    'Where records and table1.md go.')
flags.DEFINE_bool('table_only', False, 'Only rebuild the table from records.')

# Flag name -> Config field, for flags that override the preset when given.
_OVERRIDES = {
    'batch_size': 'batch_size', 'max_epochs': 'max_epochs',
    'steps_per_epoch': 'steps_per_epoch', 'patience': 'patience',
    'learning_rate': 'learning_rate', 'step_size': 'step_size',
    'damping': 'damping', 'learn_flow': 'learn_flow',
    'activation': 'activation', 'nll_samples': 'nll_samples',
    'nll_passes': 'nll_passes', 'nll_test_images': 'nll_test_images',
    'fid_samples': 'fid_samples', 'seed': 'seed', 'jit_compile': 'jit_compile',
    'deterministic': 'deterministic', 'strategy': 'strategy',
}




def config_from_flags():
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  steps = FLAGS.steps
  if FLAGS.flow == 'vae' and not FLAGS['steps'].present:
    steps = 0
  config = config_lib.Config(flow=FLAGS.flow, num_steps=steps,
                             hvae_gradient=FLAGS.hvae_gradient,
                             tempering=FLAGS.tempering, preset=FLAGS.preset,
                             **config_lib.PRESETS[FLAGS.preset])
  for flag, field in _OVERRIDES.items():
    if FLAGS[flag].value is not None:
      setattr(config, field, FLAGS[flag].value)
  return config


def run_name(config):
  flow = config.flow
  if flow == 'hvae':
    flow += f'-{config.hvae_gradient}'
  return f'{flow}-K{config.num_steps}-{config.preset}-seed{config.seed}'


def write_table(results_dir):
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  records = results.load_records(os.path.join(results_dir, 'records'))
  if not records:
    return None
  table = results.table1_markdown(records)
  results.write_text_atomic(os.path.join(results_dir, 'table1.md'), table)
  return table


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # TF's checkpoint INFO lines are noise here
  if FLAGS.table_only:
    table = write_table(FLAGS.results_dir)
    print(table or f'no records under {FLAGS.results_dir}/records')
    return
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_from_flags()
  try:  # Before TensorFlow is imported: bad input fails in a fraction of a second.
    config.validate()
    config_lib.check_writable(FLAGS.workdir, keep=False)
    config_lib.check_writable(os.path.join(FLAGS.results_dir, 'records'),
                              keep=False)
  except config_lib.ConfigError as e:
    cli.fail(str(e))
  from lvae_tf import data, models, results, train  # pylint: disable=g-import-not-at-top,multiple-imports
  name = run_name(config)
  try:
    record = train.train_and_evaluate(config, os.path.join(FLAGS.workdir, name))
  except (config_lib.ConfigError, data.DataError) as e:
    cli.fail(str(e))
  except models.NonFiniteLossError as e:
    cli.fail(str(e), status=1)
  if record['environment']['task'] != 'chief':
    return  # a non-chief worker of a multi-worker run: the chief writes the results
  record_path = os.path.join(FLAGS.results_dir, 'records', f'{name}.json')
  results.write_json_atomic(record_path, record)
  m = record['metrics']
  print(f'\n{name}: test ELBO {m["test_elbo"]:.2f}, NLL {m["nll_mean"]:.2f} '
        f'± {m["nll_std"]:.2f} ({config.nll_samples} samples, '
        f'{m["nll_test_images"]} images, {config.nll_passes} passes)')
  print(f'record: {record_path}\n')
  print(write_table(FLAGS.results_dir))


def run():
  """Entry point of the `lvae-table1` console script (same as `python -m experiments.table1`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
