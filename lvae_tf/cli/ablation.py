r"""A table of published runs that differ in a few configuration fields (an ablation).

    python -m experiments.ablation --results_dir=results/damping_ablation \
        --vary=damping,damping_shape

Reads every record under `--results_dir` (all protocols: the varied fields are part of the
protocol) and writes `<results_dir>/ablation.md`: one row per combination of the `--vary`
values, mean ± std over seeds, and the difference to the first row (the defaults' row when
present) paired by seed (`lvae_tf.results.ablation_markdown`). Records that differ in anything
else are refused.
"""

import os

from absl import app
from absl import flags

from lvae_tf import errors  # pylint: disable=g-bad-import-order
from lvae_tf import cli  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

flags.DEFINE_string('results_dir', os.path.join('results', 'damping_ablation'),
                    'Root of the published records of the ablation.')
flags.DEFINE_list('vary', ['damping', 'damping_shape'], 'Config fields the runs differ in.')


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  from lvae_tf import filesafety, results  # pylint: disable=g-import-not-at-top,multiple-imports
  records = results.load_records(FLAGS.results_dir)
  if not records:
    cli.fail(f'no records under {FLAGS.results_dir}.')
  try:
    table = results.ablation_markdown(records, FLAGS.vary)
  except ValueError as e:
    cli.fail(str(e))
  path = os.path.join(FLAGS.results_dir, 'ablation.md')
  filesafety.write_text_atomic(path, table)
  print(table)
  print(f'wrote {path} ({len(records)} runs)')


def run():
  """Entry point of the `lvae-ablation` console script (same as `python -m experiments.ablation`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
