"""Pictures of a run: sample and reconstruction grids (PNG and TensorBoard), flow parameters.

`RunImages` is a Keras callback: after every validation epoch it writes to TensorBoard

* `images/samples`: Bernoulli means `sigmoid(decoder(z))` for fixed draws `z ~ N(0, I)` (the
  same `z` every epoch, so the images show the model changing, not the noise);
* `images/reconstructions`: fixed validation images (top half of the grid) above their
  reconstructions through encoder, flow and decoder (bottom half);
* the learned flow parameters: histograms of the per-dimension step sizes and damping, and
  their means, and the HVAE's initial temperature, as scalars.

`write_run_pngs` writes the same two grids as `samples.png` and `reconstructions.png` into a
run directory (atomically), from the model that is evaluated.
"""

import math
import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import filesafety
from lvae_tf import registry
from lvae_tf import results

__all__ = ['RunImages', 'convergence_curves', 'find_source_record', 'plot_convergence',
           'save_grid_png', 'tile_images', 'warm_start_source', 'write_run_pngs']


def tile_images(images, num_cols, pad=2, pad_value=1.):
  """`(n, 28, 28[, 1])` images in [0, 1] -> one `(H, W)` grid, row by row, padded."""
  images = np.asarray(images, np.float32)
  images = images.reshape(images.shape[:3])
  n, h, w = images.shape
  num_rows = math.ceil(n / num_cols)
  grid = np.full((num_rows * (h + pad) + pad, num_cols * (w + pad) + pad),
                 pad_value, np.float32)
  for i, image in enumerate(images):
    r, c = divmod(i, num_cols)
    top, left = pad + r * (h + pad), pad + c * (w + pad)
    grid[top:top + h, left:left + w] = image
  return grid


def save_grid_png(grid, path):
  """Writes a `(H, W)` grid in [0, 1] as a grey PNG, atomically.

  Uses `matplotlib.image`, not `pyplot`: the caller's plotting backend (e.g. a notebook's
  inline one) is left alone.
  """
  from matplotlib import image as mpimg  # pylint: disable=g-import-not-at-top
  with filesafety.atomic_path(path, suffix='.png') as tmp:
    mpimg.imsave(tmp, np.clip(grid, 0., 1.), cmap='gray', vmin=0., vmax=1., format='png')


def _grids(model, images, num_samples, seed):
  samples = model.sample_images(num_samples, seed=(seed, 7)).numpy()
  x = images.astype(np.float32) / 255. if images.dtype == np.uint8 else images.astype(
      np.float32)
  if x.ndim == 3:
    x = x[..., None]
  recon = model.reconstruct(tf.constant(x), seed=(seed, 8)).numpy()
  sample_grid = tile_images(samples, math.ceil(math.sqrt(num_samples)))
  # Two rows of originals above two rows of their reconstructions.
  recon_grid = tile_images(np.concatenate([x, recon]), max(1, math.ceil(len(x) / 2)))
  return sample_grid, recon_grid


def write_run_pngs(model, images, run_dir, seed=0, num_samples=64):
  """Writes `samples.png` and `reconstructions.png` into `run_dir`; returns their paths.

  Args:
    model: a `FlowVAE`.
    images: validation images, uint8 `(n, 28, 28)` (grey levels, shown as they are) or float
      in [0, 1]; an even number keeps the grid rectangular.
    run_dir: directory to write into.
    seed: seed of the prior draws and the reconstruction noise.
    num_samples: samples in the sample grid.
  """
  sample_grid, recon_grid = _grids(model, np.asarray(images), num_samples, seed)
  paths = (os.path.join(run_dir, 'samples.png'), os.path.join(run_dir, 'reconstructions.png'))
  save_grid_png(sample_grid, paths[0])
  save_grid_png(recon_grid, paths[1])
  return paths


class RunImages(keras.callbacks.Callback):
  """Sample and reconstruction grids and flow parameters to TensorBoard, every epoch.

  Args:
    logdir: TensorBoard directory (a subdirectory `images` is used).
    images: validation images to reconstruct, uint8 `(n, 28, 28)`.
    seed: seed of the fixed prior draws and reconstruction noise.
    num_samples: samples per grid.
  """

  def __init__(self, logdir, images, seed=0, num_samples=64):
    super().__init__()
    self.images = np.asarray(images)
    self.seed = seed
    self.num_samples = num_samples
    self.writer = tf.summary.create_file_writer(os.path.join(logdir, 'images'))

  def on_epoch_end(self, epoch, logs=None):
    sample_grid, recon_grid = _grids(self.model, self.images, self.num_samples, self.seed)
    step = epoch + 1
    with self.writer.as_default():
      tf.summary.image('images/samples', sample_grid[None, ..., None], step=step)
      tf.summary.image('images/reconstructions', recon_grid[None, ..., None], step=step)
      for name in ('step_size', 'damping', 'initial_temperature'):
        value = getattr(self.model, name, None)
        if value is None:
          continue
        value = tf.convert_to_tensor(value)
        if value.shape.rank:
          tf.summary.histogram(f'flow/{name}', value, step=step)
        tf.summary.scalar(f'flow/{name}_mean', tf.reduce_mean(value), step=step)
    self.writer.flush()


def warm_start_source(record):
  """`(source run name, checkpoint number)` of a warm-started record, else None."""
  checkpoint = record.get('warm_start_checkpoint')
  if not checkpoint:
    return None
  parts = os.path.normpath(checkpoint).split(os.sep)
  # <workdir>/<run>/checkpoints/best/ckpt-N; ckpt-N holds the weights after epoch N.
  if len(parts) < 4 or not parts[-1].startswith('ckpt-'):
    return None
  return parts[-4], int(parts[-1][len('ckpt-'):])


def find_source_record(record, candidates):
  """The record among `candidates` that `record` was warm-started from, else None.

  Run names do not hash the training budget (a budget is where a run stops, not what it
  trains), so records of one run trained to different budgets share a name. The source is the
  one whose history holds the checkpoint's epoch and, among those, the one whose best epoch it
  is: the checkpoint under `checkpoints/best/` was written at its run's best epoch.
  """
  source = warm_start_source(record)
  if not source:
    return None
  name, epoch = source
  matches = [r for r in candidates if r.get('run_name') == name and any(
      h['epoch'] == epoch for h in r.get('history') or [])]
  best = [r for r in matches if (r.get('metrics') or {}).get('best_epoch') == epoch]
  return (best or matches or [None])[0]


# K of the flows the convergence figure draws by default (flows without steps: K = 0).
CONVERGENCE_K = 5


def convergence_columns(num_steps=CONVERGENCE_K):
  """`(flow, K)` of every registered flow: ('vae', 0), ('langevin', 5), ('hvae', 5), ..."""
  return tuple((s.name, num_steps if s.has_steps else 0) for s in registry.flows())


def convergence_curves(records, columns=None):
  """The lines of the convergence figure, one per run of `columns` (`convergence_columns()`).

  A warm-started run's line continues its source run's: its wall seconds, CPU seconds and
  epochs are shifted by what the source had spent when it wrote the checkpoint the run started
  from, so that its x axes count the whole compute behind it. The source must be among
  `records` (any protocol; `find_source_record`); otherwise the line starts at 0 and is
  marked `unshifted`.

  Returns:
    A list of dicts: `column` (flow, K), `warm` (bool), `unshifted` (bool), `record`,
    `wall_minutes`, `cpu_minutes`, `epochs`, `val_elbo` (lists, one entry per epoch).
  """
  columns = convergence_columns() if columns is None else columns
  curves = []
  for record in sorted(records, key=lambda r: (r['config']['flow'], bool(r['config'].get(
      'warm_start')), r['config']['seed'])):
    c = record['config']
    column = (c['flow'], c['num_steps'])
    history = record.get('history') or []
    if column not in columns or not history:
      continue
    source = warm_start_source(record)
    offset, unshifted = {'train_seconds': 0., 'cpu_seconds': 0., 'epoch': 0}, False
    if source:
      source_record = find_source_record(record, records)
      if source_record:
        offset = next(h for h in source_record['history'] if h['epoch'] == source[1])
      else:
        unshifted = True
    curves.append({
        'column': column, 'warm': bool(source), 'unshifted': unshifted, 'record': record,
        'wall_minutes': [(h['train_seconds'] + offset['train_seconds']) / 60. for h in history],
        'cpu_minutes': [(h['cpu_seconds'] + offset['cpu_seconds']) / 60. for h in history],
        'epochs': [h['epoch'] + offset['epoch'] for h in history],
        'val_elbo': [h['val_elbo'] for h in history]})
  return curves


def _line_key(curve):
  """(flow label, K) of a convergence line: the HVAE variants get a line (and colour) each."""
  return registry.flow_label(curve['record']['config']), curve['column'][1]


def _title(label):
  return next((v.title for v in registry.variants() if v.label == label), label)


def _line_colours(curves):
  """`{(label, K): colour}`: the registered flow's colour (`FlowVariant.color`), unless two
  lines would share one (one flow at several K): then a colour per line from a palette."""
  variants = {v.label: (i, v.color) for i, v in enumerate(registry.variants())}
  keys = sorted({_line_key(c) for c in curves},
                key=lambda key: (variants.get(key[0], (len(variants),))[0], key))
  colours = {key: variants.get(key[0], (0, 'tab:gray'))[1] for key in keys}
  if len(set(colours.values())) < len(colours):
    palette = ('tab:grey', 'tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple',
               'tab:brown', 'tab:pink', 'tab:olive', 'tab:cyan')
    colours = {key: palette[i % len(palette)] for i, key in enumerate(keys)}
  return colours


def plot_convergence(records, path, columns=None):
  """Validation ELBO against training seconds and against epochs, one line per run.

  Warm-started runs are dashed and continue their source run's line (`convergence_curves`).

  Args:
    records: Table 1 run records (each with its per-epoch `history`), of one protocol plus
      the runs its warm-started runs started from.
    path: PNG to write (atomically).
    columns: `(flow, K)` pairs to draw (default `convergence_columns()`); other records are
      ignored.

  Returns:
    The number of runs drawn.
  """
  # A Figure with its own Agg canvas, not pyplot: no global backend or figure state changes.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  curves = convergence_curves(records, columns)
  colours = _line_colours(curves)
  # Runs of several machines: a CPU-minute buys different compute on each, so each machine
  # gets its own row of panels (its wall and CPU minutes are not the others').
  machines = results.machine_labels([c['record'] for c in curves])
  rows = list(machines) or [None]
  height = 1.0 + 3.3 * len(rows)  # inches: title and axis labels, then 3.3 a row
  fig = Figure(figsize=(16, height))
  FigureCanvasAgg(fig)
  axes = fig.subplots(len(rows), 3, sharey=True, sharex='col', squeeze=False)
  labelled = set()
  for curve in curves:
    flow_label, k = _line_key(curve)
    key = (flow_label, k, curve['warm'])
    name = f'{_title(flow_label)} K={k}'
    if curve['warm']:
      name += ' (warm start' + (', source not shown)' if curve['unshifted'] else ')')
    label = None if key in labelled else name
    labelled.add(key)
    row = axes[rows.index(results.machine_of(curve['record']) if machines else None)]
    for ax, x in zip(row, (curve['wall_minutes'], curve['cpu_minutes'], curve['epochs'])):
      ax.plot(x, curve['val_elbo'], color=colours[_line_key(curve)], label=label, lw=1.2,
              alpha=0.85, ls='--' if curve['warm'] else '-')
  # From scratch the VAE trains 5-10 times the flows' epochs in the same budget: on a log axis
  # both the flows' first epochs and the VAE's last ones stay readable. Warm-started runs
  # continue late epochs, which a linear axis shows better.
  log_epochs = curves and not any(curve['warm'] for curve in curves)
  for ax, xlabel in zip(axes[-1], ('training wall-clock minutes', 'training CPU minutes',
                                   'epochs (500 steps; log scale)' if log_epochs
                                   else 'epochs (500 steps)')):
    ax.set_xlabel(xlabel)
  for row, machine in zip(axes, rows):
    row[0].set_ylabel('validation ELBO (nats)')
    for ax in row:
      ax.grid(alpha=0.3)
    if machine:
      row[1].set_title(f'machine {machines[machine]}: {machine}', fontsize=8)
  if log_epochs:
    axes[0][2].set_xscale('log')
  if curves:
    low = min(min(curve['val_elbo']) for curve in curves)
    high = max(max(curve['val_elbo']) for curve in curves)
    axes[0][0].set_ylim(max(low, high - 25.), high + 1.)
    handles, labels = [], []
    for ax in axes[:, 0]:  # a label is set on the first line of its kind, in any row
      for handle, label in zip(*ax.get_legend_handles_labels()):
        handles.append(handle)
        labels.append(label)
    order = sorted(range(len(labels)), key=labels.__getitem__)
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc='center right',
               fontsize=8)
  protocols = sorted({r.get('protocol', '?') for r in (c['record'] for c in curves)})
  fig.suptitle(f'Validation ELBO while training (protocol {", ".join(protocols)}; one line '
               'per seed' + ('; a row per machine' if machines else '') + ')'
               if curves else 'no records', fontsize=10)
  fig.subplots_adjust(left=0.05, right=0.83, top=1 - 0.7 / height, bottom=0.6 / height,
                      wspace=0.08, hspace=0.25)
  with filesafety.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, format='png', dpi=110)
  return len(curves)
