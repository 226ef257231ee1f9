r"""Figure 2 of the paper: sample grids of Langevin-VAE beside HVAE (K = 5).

    python -m experiments.figure2 --seed=0             # the cpu-preset runs of seed 0
    python -m experiments.figure2 --preset=paper --output=results/figure2-paper.png
    python -m experiments.figure2 --langevin_run=runs/a --hvae_run=runs/b

Loads the best checkpoint of two runs trained by `experiments.table1`: by default the runs that
`experiments.table1` trains with the same configuration flags (`--preset`, `--steps` (default
5 here), `--seed`, ...) and `--flow=langevin` / `--flow=hvae` (`lvae_tf.config.run_name`),
draws `--num_images` latents `z ~ N(0, I)` (the same draws for both models) and shows
the Bernoulli means `sigmoid(decoder(z))` as two grids, each titled with the flow, K, the
preset and the run's test NLL from its `record.json` (if present). The PNG is written
atomically (temporary file + `os.replace`).

A missing or incomplete run directory exits with status 2, names the path and the command that
trains it, and writes nothing; so do bad flags.
"""

import dataclasses
import json
import math
import os

from absl import app
from absl import flags

from lvae_tf import cli  # pylint: disable=g-bad-import-order
from lvae_tf import config_flags  # pylint: disable=g-bad-import-order
from lvae_tf import errors  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

config_flags.define_config_flags(default_preset='cpu')
config_flags.define_workdir_flag()
flags.adopt_module_key_flags(config_flags)  # --help lists them (lvae_tf.cli.help_text)
flags.DEFINE_string('langevin_run', None,
                    'Langevin-VAE run directory (default: the run experiments.table1 trains '
                    'with the same flags and --flow=langevin).')
flags.DEFINE_string('hvae_run', None,
                    'HVAE run directory (default: the run experiments.table1 trains with the '
                    'same flags and --flow=hvae).')
flags.DEFINE_enum('checkpoint', 'best', ['best', 'latest'],
                  'Which checkpoint of each run to load.')
flags.DEFINE_integer('num_images', 64, 'Samples per model.', lower_bound=1,
                     upper_bound=1024)
flags.DEFINE_integer('sample_seed', 0, 'Seed of the prior draws (shared by both models).')
flags.DEFINE_string('output', os.path.join('results', 'figure2.png'),
                    'Output PNG path.')
flags.DEFINE_integer('dpi', 150, 'Resolution of the PNG.', lower_bound=10)

# Side of the figure -> (flow, title).
SIDES = (('langevin', 'Langevin-VAE'), ('hvae', 'HVAE'))


class RunError(Exception):
  """A run directory that cannot be used (missing, incomplete, or the wrong flow)."""




def train_command(config):
  """The experiments.table1 command that trains `config`'s run."""
  return (f'python -m experiments.table1 --preset={config.preset} --flow={config.flow} '
          f'--steps={config.num_steps} --seed={config.seed}' +
          (f' --hvae_gradient={config.hvae_gradient}' if config.flow == 'hvae' else ''))


def check_run_dir(run_dir, checkpoint, command):
  """Raises `RunError` (naming `run_dir` and `command`) unless it holds a trained run."""
  hint = f'Train it with:\n  {command}'
  if not os.path.isdir(run_dir):
    raise RunError(f'run directory {run_dir!r} does not exist. {hint}')
  if not os.path.isfile(os.path.join(run_dir, 'config.json')):
    raise RunError(f'{run_dir!r} has no config.json: not a run directory of '
                   f'experiments.table1. {hint}')
  ckpt_dir = os.path.join(run_dir, 'checkpoints', checkpoint)
  if not os.path.isfile(os.path.join(ckpt_dir, 'checkpoint')):
    raise RunError(f'{run_dir!r} has no {checkpoint!r} checkpoint (expected '
                   f'{ckpt_dir}/checkpoint; the run may not have finished an '
                   f'epoch). Finish it with the command that started it, e.g.:'
                   f'\n  {command}')


def read_nll(run_dir):
  """The run's test-NLL metrics from `record.json` (a dict), or `None` if unavailable."""
  path = os.path.join(run_dir, 'record.json')
  try:
    with open(path) as f:
      metrics = json.load(f)['metrics']
    float(metrics['nll_mean'])
  except (OSError, ValueError, KeyError, TypeError):
    return None
  return metrics


def panel_title(title, config, nll):
  """Title lines: model, K and preset; the test NLL from the record and how it was estimated."""
  head = f'{title}, K = {config.num_steps} ({config.preset} preset)'
  if nll is None:
    return f'{head}\nno record.json:\ntest NLL not available'
  passes = nll.get('nll_per_pass') or [nll['nll_mean']]
  spread = f' ± {nll.get("nll_std", 0.):.2f}' if len(passes) > 1 else ''
  images = nll.get('nll_test_images')
  on = f', {images} images' if images else ''
  runs = f', {len(passes)} passes' if len(passes) > 1 else ''
  return (f'{head}\ntest NLL {nll["nll_mean"]:.2f}{spread} nats\n'
          f'(S = {config.nll_samples} importance samples{on}{runs})')


def save_figure_atomic(fig, path, dpi):
  """Saves a matplotlib figure as PNG via a temporary file + `os.replace`."""
  from lvae_tf import filesafety  # pylint: disable=g-import-not-at-top
  with filesafety.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, format='png', dpi=dpi, bbox_inches='tight')


def make_figure(panels, num_cols):
  """One row of sample grids; `panels` is a list of `(title, images)`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  grids = [visualize.tile_images(images, num_cols) for _, images in panels]
  aspect = grids[0].shape[0] / grids[0].shape[1]
  fig, axes = plt.subplots(1, len(panels), squeeze=False,
                           figsize=(4.2 * len(panels), 4.2 * aspect + 0.8))
  for ax, (title, _), grid in zip(axes[0], panels, grids):
    ax.imshow(grid, cmap='gray', vmin=0., vmax=1., interpolation='nearest')
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
  fig.suptitle('Samples: Bernoulli means sigmoid(decoder(z)), z ~ N(0, I), '
               'the same z in both grids', fontsize=9, y=0.02, va='bottom')
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  return fig


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  cli.require_matplotlib('figure2')
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from lvae_tf import train  # pylint: disable=g-import-not-at-top
  runs = {'langevin': FLAGS.langevin_run, 'hvae': FLAGS.hvae_run}
  plan = []  # check both runs before loading either: nothing is written on failure
  try:
    base = config_flags.config_from_flags()
    if not FLAGS['steps'].present:
      base = dataclasses.replace(base, num_steps=5)  # the paper's Figure 2
    for flow, title in SIDES:
      config = train.resolve(dataclasses.replace(base, flow=flow))
      config.validate()
      run_dir = runs[flow] or os.path.join(FLAGS.workdir, config_lib.run_name(config))
      command = train_command(config)
      check_run_dir(run_dir, FLAGS.checkpoint, command)
      plan.append((flow, title, run_dir, command))
    config_lib.check_output_file(FLAGS.output)
  except (RunError, config_lib.ConfigError) as e:
    cli.fail(str(e))

  panels = []
  for flow, title, run_dir, command in plan:
    try:
      model, config = train.load_trained_model(run_dir, which=FLAGS.checkpoint)
    except (FileNotFoundError, train.ConfigError, TypeError, ValueError) as e:
      cli.fail(f'cannot load {run_dir!r}: {e}\nRetrain it with:\n  {command}')
    if config.flow != flow:
      cli.fail(f'{run_dir!r} holds a {config.flow!r} model, expected {flow!r} '
               f'(swapped --langevin_run / --hvae_run?).')
    images = model.sample_images(FLAGS.num_images, seed=(FLAGS.sample_seed, 0))
    panels.append((panel_title(title, config, read_nll(run_dir)),
                   images.numpy()))
    print(f'{title}: {run_dir} ({FLAGS.checkpoint} checkpoint)')

  fig = make_figure(panels, num_cols=math.ceil(math.sqrt(FLAGS.num_images)))
  save_figure_atomic(fig, FLAGS.output, FLAGS.dpi)
  print(f'wrote {FLAGS.output}')


def run():
  """Entry point of the `lvae-figure2` console script (same as `python -m experiments.figure2`)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
