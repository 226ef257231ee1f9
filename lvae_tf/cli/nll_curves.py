r"""NLL at equal epochs and the NLL curve figure, for the runs of one Table 1 protocol.

    python -m experiments.nll_curves --results_dir=results/table1 --protocol=cpu-7d1379

Reads `<results_dir>/<protocol>/records/**/*.json`; the records that hold `metrics.nll_curve`
(runs of a preset with `nll_curve_images`, e.g. `cpu`) give, in `<results_dir>/<protocol>/`:

* `equal_epochs.md`: for each machine and K, the NLL of VAE, Langevin-VAE and HVAE at the
  largest kept epoch every model of that K reached, and their differences paired by seed, with
  95 % t intervals over seeds (`lvae_tf.nll_curves.equal_epochs_markdown`).
* `nll_curve.png`: NLL against epochs and against training CPU-minutes, mean over seeds with
  their range (`lvae_tf.nll_curves.plot_nll_curves`).
"""

import os

from absl import app
from absl import flags

from lvae_tf import errors  # pylint: disable=g-bad-import-order
from lvae_tf import cli  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

flags.DEFINE_string('results_dir', os.path.join('results', 'table1'),
                    'Root of the published records.')
flags.DEFINE_string('protocol', None, 'Protocol directory under --results_dir.')


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  if not FLAGS.protocol:
    cli.fail('--protocol is required (a directory under --results_dir, e.g. cpu-7d1379).')
  directory = os.path.join(FLAGS.results_dir, FLAGS.protocol)
  from lvae_tf import filesafety, nll_curves, results  # pylint: disable=g-import-not-at-top,multiple-imports
  records = results.unique_runs(results.load_records(os.path.join(directory, 'records')))
  records = [r for r in records if nll_curves.kept_points(r)]
  if not records:
    cli.fail(f'no record with an NLL curve (metrics.nll_curve) under {directory}/records.')
  table = nll_curves.equal_epochs_markdown(records)
  path = nll_curves.plot_nll_curves(records, os.path.join(directory, 'nll_curve.png'))
  filesafety.write_text_atomic(os.path.join(directory, 'equal_epochs.md'), table)
  print(table)
  print(f'wrote {path} and equal_epochs.md ({len(records)} runs)')


def run():
  """Entry point of the `lvae-nll-curves` console script (`python -m experiments.nll_curves`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
