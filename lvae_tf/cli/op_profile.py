r"""Where a training step's time goes, per TensorFlow op type, in each precision.

    python -m experiments.op_profile                      # Langevin-VAE K = 5, batch 1000
    python -m experiments.op_profile --batch=100 --steps=10 --output_dir=runs/op_profile-b100

Builds the model of each precision (`lvae_tf.benchmark.StepBench`, the step `fit` runs), runs
`--warmup` untimed training steps of each, then, one precision after the other, `--calls`
steps under the TensorFlow profiler (`lvae_tf.benchmark.profile_op_seconds`), and writes
`<output_dir>/op_profile.json` and `op_profile.md`: seconds per step of each op type
(summed over threads, like CPU time; on a loaded machine it includes waits for a core, so
profile on an idle one), grouped into convolutions, matrix products and the rest
(elementwise ops, reductions, casts), and the float32 / bf16 ratio per op type. `--trace_dir`
keeps the profiler's traces (TensorBoard's profile plugin reads them). Step times here include
the profiler's overhead: `experiments.figure3 --preset=precision` measures throughput.
"""

import os
import tempfile
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-bad-import-order,g-import-not-at-top
from lvae_tf import errors  # pylint: disable=g-bad-import-order
from lvae_tf import cli
from lvae_tf import benchmark as bm
from lvae_tf import filesafety
from lvae_tf import results
# pylint: enable=g-bad-import-order,g-import-not-at-top

FLAGS = flags.FLAGS

# Op types by what runs them; everything else is 'other' (elementwise, reductions, casts).
GROUPS = (('convolutions', ('Conv2D', 'FusedConv2D', 'Conv2DBackpropInput',
                            'Conv2DBackpropFilter', 'Conv2DBackpropFilterWithBias')),
          ('matrix products', ('MatMul', 'FusedMatMul', 'BatchMatMulV2')))


def define_flags():
  flags.DEFINE_enum('flow', 'langevin', list(bm.FLOWS), 'Flow to profile.')
  flags.DEFINE_integer('steps', 5, 'Flow steps K.', lower_bound=0)
  flags.DEFINE_integer('batch', 1000, 'Training batch.', lower_bound=1)
  flags.DEFINE_list('precisions', list(bm.PRECISIONS), 'Precisions to profile.')
  flags.DEFINE_integer('warmup', 2, 'Untimed training steps before profiling.', lower_bound=1)
  flags.DEFINE_integer('calls', 3, 'Profiled training steps per precision.', lower_bound=1)
  flags.DEFINE_integer('top', 25, 'Op types listed in the markdown table.', lower_bound=1)
  flags.DEFINE_string('output_dir', 'runs/op_profile', 'Where op_profile.json/.md go.')
  flags.DEFINE_string('trace_dir', None,
                      'Keep the profiler traces here, one directory per precision '
                      '(default: discarded).')


def group_of(op):
  return next((name for name, ops in GROUPS if op in ops), 'other')


def _row(cells):
  return '| ' + ' | '.join(cells) + ' |'


def markdown(report):
  """The report as markdown: one column per precision, seconds per step in milliseconds."""
  settings = report['settings']
  precisions = [p['precision'] for p in report['profiles']]
  ops = {p['precision']: p['op_seconds'] for p in report['profiles']}
  columns = ([f'{p} (ms/step)' for p in precisions] +
             [f'{precisions[0]} / {p}' for p in precisions[1:]])

  def cells(values):
    """Milliseconds per precision, then the first precision's time over each other's."""
    return ([f'{1e3 * v:.1f}' for v in values] +
            [f'{values[0] / v:.2f}' if v > 0 and values[0] > 0 else '–' for v in values[1:]])

  env = report['environment']
  lines = [
      f"# Op profile: {settings['flow']} K={settings['steps']}, training step at batch "
      f"{settings['batch']}", '',
      f"Device: {env['device']}; TensorFlow {env['tensorflow']}; {env['date']}. "
      f"{settings['calls']} profiled steps per precision after {settings['warmup']} warm-up "
      "steps. Seconds of each op type's kernels summed over threads (like CPU time), per step "
      '(`lvae_tf.benchmark.op_seconds`); the ratio > 1 means the second precision is faster '
      'at that op.', '',
      _row(['group'] + columns), '|' + '---|' * (1 + len(columns))]
  for group in [g for g, _ in GROUPS] + ['other', 'all ops']:
    values = [sum(s for op, s in ops[p].items() if group in ('all ops', group_of(op)))
              for p in precisions]
    lines.append(_row([group] + cells(values)))
  wall = [p['step_seconds'] for p in report['profiles']]
  lines += [_row(['step, wall-clock (profiled)'] + cells(wall)), '',
            _row(['op type', 'group'] + columns), '|' + '---|' * (2 + len(columns))]
  every = sorted({op for p in precisions for op in ops[p]},
                 key=lambda op: -max(ops[p].get(op, 0.) for p in precisions))
  for op in every[:settings['top']]:
    lines.append(_row([op, group_of(op)] + cells([ops[p].get(op, 0.) for p in precisions])))
  if len(every) > settings['top']:
    lines.append(f"\n{len(every) - settings['top']} more op types in op_profile.json.")
  return '\n'.join(lines) + '\n'


@errors.main_boundary
def main(argv):
  del argv
  for p in FLAGS.precisions:
    if p not in bm.PRECISIONS:
      cli.fail(f'--precisions: unknown precision {p!r}; choose from {bm.PRECISIONS}.')
  if not FLAGS.precisions:
    cli.fail('--precisions: give at least one precision.')
  try:
    os.makedirs(FLAGS.output_dir, exist_ok=True)
  except OSError as e:
    cli.fail(f'--output_dir {FLAGS.output_dir}: cannot create it ({e.strerror}).')
  settings = dict(flow=FLAGS.flow, steps=FLAGS.steps, batch=FLAGS.batch, warmup=FLAGS.warmup,
                  calls=FLAGS.calls, top=FLAGS.top, precisions=FLAGS.precisions)
  benches = {p: bm.StepBench(bm.flow_config(FLAGS.flow, FLAGS.steps), precision=p)
             for p in FLAGS.precisions}
  for _ in range(FLAGS.warmup):
    for bench in benches.values():
      bench.train_step(FLAGS.batch)
  profiles = []
  for p, bench in benches.items():
    times = []

    def step(bench=bench, times=times):
      t0 = time.perf_counter()
      bench.train_step(FLAGS.batch)
      times.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as scratch:
      ops = bm.profile_op_seconds(step, os.path.join(FLAGS.trace_dir or scratch, p),
                                  FLAGS.calls)
    profiles.append({'precision': p, 'step_seconds': bm.summarize_times(times)['median'],
                     'op_seconds': dict(sorted(ops.items(), key=lambda kv: -kv[1]))})
    print(f'{p}: {sum(ops.values()):.3f} s of kernels per step')
  report = {'kind': 'op_profile', 'settings': settings,
            'environment': results.environment(), 'profiles': profiles}
  filesafety.write_json_atomic(os.path.join(FLAGS.output_dir, 'op_profile.json'), report)
  filesafety.write_text_atomic(os.path.join(FLAGS.output_dir, 'op_profile.md'), markdown(report))
  print(f'wrote {FLAGS.output_dir}/op_profile.json and op_profile.md')


def run():
  """Entry point of the `lvae-op-profile` console script (same as `python -m experiments.op_profile`)."""
  cli.use_module_doc(__doc__)
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
