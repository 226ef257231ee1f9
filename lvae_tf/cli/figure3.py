r"""Figure 3 of the paper as a benchmark: training/test time and memory, side by side.

    python -m experiments.figure3                  # CPU preset (minutes on 2 cores)
    python -m experiments.figure3 --preset=paper   # the full grid (for a GPU)
    python -m experiments.figure3 --preset=tiny    # seconds, for CI; numbers meaningless

Measures every flow and K of the preset in one process (`lvae_tf.figure3.run`, which says what
is measured and how) and writes `<output_dir>/figure3.json`, `figure3.md` and `figure3.png`,
atomically. The JSON and markdown are rewritten after each XLA mode with `"complete": false`
until the end. A flag given on the command line overrides its preset value; bad flags exit
with status 2 and write nothing.
"""

import os

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from lvae_tf import errors  # pylint: disable=g-bad-import-order
from lvae_tf import cli  # pylint: disable=g-bad-import-order,g-import-not-at-top
from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
from lvae_tf import figure3  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

# Flags that are `lvae_tf.figure3.Settings` fields: given explicitly, they override the preset.
SETTINGS_FLAGS = ('steps', 'train_batch', 'test_batch', 'memory_batch', 'warmup', 'repeats',
                  'test_repeats', 'xla', 'xla_steps', 'xla_repeats', 'largest_batch_xla',
                  'largest_batch_method', 'fit_batches', 'budget_mib', 'data', 'flows',
                  'precisions', 'train_images')


def define_flags():
  """Defines the flags; called only when run as a script (not on import)."""
  flags.DEFINE_enum('preset', 'cpu', list(figure3.PRESETS),
                    'cpu: 2-core CPU, ~20 min; paper: full grid (GPU); tiny: CI.')
  flags.DEFINE_list('flows', list(figure3.FLOW_ORDER), 'Flows to measure.')
  flags.DEFINE_list('steps', None, 'Flow steps K (the VAE is always K = 0).')
  flags.DEFINE_integer('train_batch', None, 'Batch of the timed training steps.',
                       lower_bound=1)
  flags.DEFINE_integer('test_batch', None, 'Batch of the timed evaluation.',
                       lower_bound=1)
  flags.DEFINE_integer('memory_batch', None,
                       'Batch of the peak-memory probes (paper: 1200).',
                       lower_bound=1)
  flags.DEFINE_integer('warmup', None, 'Untimed calls before timing.',
                       lower_bound=1)
  flags.DEFINE_integer('repeats', None, 'Timed training steps per model.',
                       lower_bound=1)
  flags.DEFINE_integer('test_repeats', None,
                       'Timed evaluation batches per model.', lower_bound=1)
  flags.DEFINE_list('xla', None, "XLA modes to measure: 'off', 'on'.")
  flags.DEFINE_list('xla_steps', None,
                    'K values measured with XLA on (empty = all of --steps).')
  flags.DEFINE_integer('xla_repeats', None,
                       'Timed repeats (train and test) with XLA on.',
                       lower_bound=1)
  flags.DEFINE_list('largest_batch_xla', None,
                    "XLA modes in which to find the largest batch ('' = none).")
  flags.DEFINE_enum('largest_batch_method', None, list(figure3.LARGEST_BATCH_METHODS),
                    'auto: search on GPU (device capped, subprocess per trial), '
                    'fit on CPU (affine fit of peak memory + verification).')
  flags.DEFINE_list('fit_batches', None,
                    'Batches measured for the affine memory fit.')
  flags.DEFINE_integer('budget_mib', None, 'Memory budget (paper: 4 GiB).',
                       lower_bound=1)
  flags.DEFINE_list('precisions', ['float32'],
                    'Keras precision policies to measure: float32, mixed_bfloat16. '
                    'mixed_bfloat16 needs bfloat16 support in lvae_tf.models, which '
                    'builds float32 tensors today: with it the run stops with an error.')
  flags.DEFINE_integer('train_images', 50000,
                       'Images per training epoch (steps/epoch = this / batch).',
                       lower_bound=1)
  flags.DEFINE_enum('data', None, list(figure3.DATA),
                    'Batches of binarised MNIST, or random binary images (the '
                    'cost does not depend on the pixel values).')
  flags.DEFINE_string('output_dir', os.path.join('results', 'figure3'),
                      'Where figure3.json/.md/.png go.')
  flags.DEFINE_bool('plot', True, 'Write figure3.png.')


def settings_from_flags():
  """The preset's settings, overridden by the flags given on the command line; validated."""
  overrides = {name: FLAGS[name].value for name in SETTINGS_FLAGS
               if FLAGS[name].present}
  try:
    return figure3.make_settings(FLAGS.preset, **overrides)
  except ValueError as e:
    cli.fail(str(e))


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  if FLAGS.plot:
    cli.require_matplotlib('figure3.png (--noplot skips it)')
  settings = settings_from_flags()
  output_dir = FLAGS.output_dir
  try:
    config_lib.check_writable(output_dir, keep=False)
  except config_lib.ConfigError as e:
    cli.fail(str(e))
  try:
    report = figure3.run(
        settings, echo=lambda line: print(line, flush=True),
        on_update=lambda r: figure3.write_outputs(r, output_dir, with_plot=False))
  except figure3.MeasurementError as e:
    cli.fail(str(e), status=1)
  paths = figure3.write_outputs(report, output_dir, with_plot=FLAGS.plot)
  print(f'wrote {", ".join(paths)}\n')
  print(figure3.markdown(report))


def run():
  """Entry point of the `lvae-figure3` console script (same as `python -m experiments.figure3`)."""
  cli.use_module_doc(__doc__)
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
