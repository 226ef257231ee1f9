r"""Validation ELBO against training time and epochs for the runs of one Table 1 protocol.

    python -m experiments.convergence --results_dir=results/table1 --protocol=cpu-1a2b3c

Reads `<results_dir>/<protocol>/records/*.json` (each record holds its per-epoch history) and
writes, in `<results_dir>/<protocol>/`:

* `convergence.png`: VAE, Langevin-VAE K = 5 and HVAE K = 5, one line per seed, against
  wall-clock minutes, CPU minutes and epochs. A warm-started run's dashed line continues the
  line of the run it started from (found among all records under `--results_dir`), so its axes
  count the shared warm start too.
* `convergence.md`: the numbers behind the equal-epochs and equal-compute readings: the best
  validation ELBO after 1, 5, 10, ... epochs and after 5, 10, ... CPU minutes, per column (mean
  ± std over seeds) and each flow's difference to the VAE of the same seed
  (`lvae_tf.results.convergence_markdown`). Records from several machines get a table per
  machine, then, if a run recorded on two machines retraces itself epoch by epoch, one
  equal-epochs table pooling the seeds of all machines (an epoch is the same computation
  everywhere; only the CPU-time budget buys a different number of them).
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
    cli.fail('--protocol is required (a directory under --results_dir, e.g. cpu-1a2b3c).')
  directory = os.path.join(FLAGS.results_dir, FLAGS.protocol)
  # pylint: disable-next=g-import-not-at-top,multiple-imports
  from lvae_tf import filesafety, results, visualize
  records = results.load_records(os.path.join(directory, 'records'))
  if not records:
    cli.fail(f'no records under {directory}/records.')
  try:
    table = results.convergence_markdown(records)
  except ValueError as e:
    cli.fail(str(e))
  # Warm-started runs continue the line of the run they started from (any protocol).
  candidates = results.load_records(FLAGS.results_dir)
  for source in [visualize.find_source_record(r, candidates) for r in records]:
    if source and source not in records:
      records.append(source)
  path = os.path.join(directory, 'convergence.png')
  drawn = visualize.plot_convergence(records, path)
  filesafety.write_text_atomic(os.path.join(directory, 'convergence.md'), table)
  print(table)
  print(f'wrote {path} ({drawn} runs) and convergence.md')


def run():
  """Entry point of the `lvae-convergence` console script (same as `python -m experiments.convergence`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
