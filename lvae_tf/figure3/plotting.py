"""The Figure 3 plot: four panels, time left and memory right (XLA off, float32)."""

from lvae_tf import registry
from lvae_tf import filesafety
from lvae_tf.figure3 import records
from lvae_tf.figure3 import settings as settings_lib


def _plot_value(record, key):
  """(median, q25, q75) of a dotted `key` of a record (a number gives itself thrice)."""
  v = records.value_at(record, *key.split('.'))
  if isinstance(v, dict):
    return v['median'], v.get('q25', v['median']), v.get('q75', v['median'])
  return v, v, v


def plot(report, path):
  """Writes the four-panel figure (time left, memory right; XLA off, float32) to `path`.

  Bars per flow and K with interquartile error bars; a flow without steps (the VAE) as a
  dashed line, or as a number when it is off the scale of the flows' bars. Colours and titles
  are the registered flows' (`lvae_tf.registry`). Written atomically as a PNG.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  runs = [r for r in report['runs']
          if not r['xla'] and records.precision_of(r) == settings_lib.PRECISIONS[0]]
  ks = sorted({r['num_steps'] for r in runs if settings_lib.has_steps(r['flow'])})
  flows = [f for f in settings_lib.flow_order() if any(r['flow'] == f for r in runs)]
  colors = {v.label: v.color for v in registry.variants()}
  panels = [
      ('train_epoch_seconds', 'training time per epoch (s)', 1.0),
      ('memory.train_peak_bytes', f'peak memory, training batch '
       f'{report["settings"]["memory_batch"]} (MiB)', 1 / 2**20),
      ('test_batch_seconds', 'evaluation time per batch (s)', 1.0),
      ('largest_batch.batch', f'largest training batch in '
       f'{report["settings"]["budget_mib"] / 1024:g} GiB', 1.0),
  ]
  fig, axes = plt.subplots(2, 2, figsize=(11, 7))
  bar_flows = [f for f in flows if settings_lib.has_steps(f)]
  width = 0.8 / max(1, len(bar_flows))

  for ax, (key, title, scale) in zip(axes.T.flatten(), panels):
    for i, flow in enumerate(bar_flows):
      xs, ys, lo, hi = [], [], [], []
      for j, k in enumerate(ks):
        r = records.find_run(runs, flow, k, False)
        med, q25, q75 = _plot_value(r, key) if r else (None, None, None)
        if med is None:
          continue
        xs.append(j + (i - (len(bar_flows) - 1) / 2) * width)
        ys.append(med * scale)
        lo.append((med - q25) * scale)
        hi.append((q75 - med) * scale)
      if xs:
        ax.bar(xs, ys, width, yerr=[lo, hi] if any(lo + hi) else None,
               capsize=2, color=colors.get(flow, 'tab:gray'), label=settings_lib.title(flow))
    for flow in (f for f in flows if not settings_lib.has_steps(f)):
      vae = records.find_run(runs, flow, 0, False)
      v = _plot_value(vae, key)[0] if vae is not None else None
      if v is None:
        continue
      top = max([p.get_height() for p in ax.patches] or [0.])
      if v * scale <= 1.5 * top or not top:
        ax.axhline(v * scale, color=colors.get(flow, 'tab:gray'), ls='--', lw=1,
                   label=f'{settings_lib.title(flow)} (no flow)')
      else:  # off the scale of the flows' bars: say it instead of drawing it
        ax.text(0.98, 0.95, f'{settings_lib.title(flow)} (no flow): {v * scale:,.0f}',
                transform=ax.transAxes, ha='right', va='top', fontsize=8,
                color=colors.get(flow, 'tab:gray'))
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([f'K = {k}' for k in ks])
    ax.set_title(title, fontsize=10)
  axes[0, 0].legend(fontsize=8)
  env = report['environment']
  fig.suptitle(f'Langevin-VAE vs HVAE: time (left) and memory (right), XLA off; '
               f'{env["device"]}', fontsize=11)
  fig.tight_layout()
  with filesafety.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)
