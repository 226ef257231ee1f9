r"""Figure 3 of the paper as a benchmark: training/test time and memory, side by side.

For every registered flow variant (`lvae_tf.registry`: langevin, hvae-reference, hvae-cached,
vae) and K in `steps` (a flow without steps, the VAE, has K = 0 and is measured once), for
each precision in `precisions` and each XLA mode in `xla`, in ONE process (`run`):

* gradient evaluations per training step and per evaluation batch, read from the flow
  bijectors' `GradientCounter` over the warm-up calls (exact integers);
* training-step time at `train_batch` (Keras' own train function, the one `fit` runs, on an
  in-memory batch; after `warmup` untimed calls, `repeats` timed ones): wall-clock and process
  CPU seconds, median and IQR; time per epoch = median step x (`train_images` / batch).
  The timed calls are interleaved round-robin over all models (order reversed every round),
  so load from other processes falls on every model alike and the ratios stay fair;
* evaluation time per batch at `test_batch` (Keras' test function), likewise;
* peak memory (TF allocator, `reset_memory_stats`/`get_memory_info` on GPU:0 or CPU:0) of one
  training step and of one evaluation batch at `memory_batch`;
* the largest training batch within `budget_mib`: on a GPU a binary search, each trial a
  fresh subprocess with the device capped by a logical memory limit; on CPU an affine fit of
  measured peak memory against the batch (`fit_batches`) and a verification run at the
  found size. The method used is recorded.

The analysis (`analyse`) adds the ratios Langevin / HVAE reference and Langevin / HVAE cached
next to the gradient-count ratios K/2K and K/(K+1) (`compute_ratios`), a time cost model
`t = f + u * gradients` (`cost_model`) and a per-example memory model (`memory_model`) fitted
on the VAE and HVAE runs, and the targets the ratios are judged against (`evaluate_targets`).
`markdown` renders the report, `plot` draws the four-panel figure, `write_outputs` writes
`figure3.json`, `figure3.md` and `figure3.png` atomically.

Precision: each model is built in the precision of its run ('float32', or 'mixed_bfloat16':
bf16 encoder/decoder hidden layers, float32 flow and loss, `lvae_tf.models.FlowVAE`). The
report, ratios and models carry the precision of every run.

Nothing here imports TensorFlow until it measures (`measure_mode`, `run`): settings are
checked in a fraction of a second, and the analysis and rendering run on a report loaded from
JSON. Importing this package before TensorFlow sets `TF_ENABLE_ONEDNN_OPTS=1` (unless set), for
the CPU allocator statistics peak memory is read from (see `lvae_tf.benchmark`).
`experiments/figure3.py` is the command line.

#### Modules

```none
settings   the flows (from the registry), presets, validated Settings
measure    gradient counts, step times, peak memory, largest batch; run
analysis   ratios, time cost and memory models; analyse
targets    the targets the ratios are judged against
records    looking up the run records of a report
report     figure3.md (markdown) and the files (write_outputs)
plotting   the four-panel figure (plot)
```

This package re-exports their public API: `from lvae_tf import figure3; figure3.run(...)`.
"""

import os

# Read when TensorFlow is imported: the oneDNN CPU allocator keeps the peak-memory statistics.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

# pylint: disable=wrong-import-position
from lvae_tf import registry
from lvae_tf.figure3.analysis import analyse
from lvae_tf.figure3.analysis import compute_ratios
from lvae_tf.figure3.analysis import cost_model
from lvae_tf.figure3.analysis import memory_model
from lvae_tf.figure3.analysis import precision_ratios
from lvae_tf.figure3.measure import MeasurementError
from lvae_tf.figure3.measure import load_images
from lvae_tf.figure3.measure import measure_mode
from lvae_tf.figure3.measure import run
from lvae_tf.figure3.plotting import plot
from lvae_tf.figure3.report import markdown
from lvae_tf.figure3.report import write_outputs
from lvae_tf.figure3.settings import DATA
from lvae_tf.figure3.settings import LARGEST_BATCH_METHODS
from lvae_tf.figure3.settings import PRECISIONS
from lvae_tf.figure3.settings import PRESETS
from lvae_tf.figure3.settings import Settings
from lvae_tf.figure3.settings import XLA_MODES
from lvae_tf.figure3.settings import flow_order
from lvae_tf.figure3.settings import make_settings
from lvae_tf.figure3.targets import evaluate_targets
# pylint: enable=wrong-import-position

__all__ = [
    'FLOW_ORDER',
    'MeasurementError',
    'PRECISIONS',
    'PRESETS',
    'Settings',
    'TITLES',
    'analyse',
    'compute_ratios',
    'cost_model',
    'evaluate_targets',
    'flow_order',
    'load_images',
    'make_settings',
    'markdown',
    'measure_mode',
    'memory_model',
    'plot',
    'run',
    'write_outputs',
]


def __getattr__(name):
  if name == 'FLOW_ORDER':  # the flows registered now, `flow_order()`
    return flow_order()
  if name == 'TITLES':  # {label: display title} of the registered flows
    return {v.label: v.title for v in registry.variants()}
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
