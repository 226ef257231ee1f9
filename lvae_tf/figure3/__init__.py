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
JSON. Importing this module before TensorFlow sets `TF_ENABLE_ONEDNN_OPTS=1` (unless set), for
the CPU allocator statistics peak memory is read from (see `lvae_tf.benchmark`).
`experiments/figure3.py` is the command line.
"""

import dataclasses
import gc
import os
import time
from typing import Tuple

# Read when TensorFlow is imported: the oneDNN CPU allocator keeps the peak-memory statistics.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

from lvae_tf import config as config_lib  # pylint: disable=wrong-import-position
from lvae_tf import registry  # pylint: disable=wrong-import-position
from lvae_tf import results  # pylint: disable=wrong-import-position

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



def flow_order():
  """The registered flow variants' labels: flows with steps, then those without (the VAE)."""
  order = [v for v in registry.variants() if registry.flow(v.flow).has_steps]
  order += [v for v in registry.variants() if not registry.flow(v.flow).has_steps]
  return tuple(v.label for v in order)


def __getattr__(name):
  if name == 'FLOW_ORDER':  # the flows registered now, `flow_order()`
    return flow_order()
  if name == 'TITLES':  # {label: display title} of the registered flows
    return {v.label: v.title for v in registry.variants()}
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _title(label):
  """A flow variant's display title (its label if it is no longer registered)."""
  return next((v.title for v in registry.variants() if v.label == label), label)


def _has_steps(label):
  return next((registry.flow(v.flow).has_steps for v in registry.variants()
               if v.label == label), True)


XLA_MODES = ('off', 'on')
# Training precisions (`lvae_tf.config.CHOICES`, without 'auto'); the first is the one the
# plot and the targets use.
PRECISIONS = tuple(p for p in config_lib.CHOICES['precision'] if p != 'auto')
LARGEST_BATCH_METHODS = ('auto', 'fit', 'search')
DATA = ('mnist', 'random')


class MeasurementError(RuntimeError):
  """This machine or model cannot measure what the settings ask (e.g. a precision)."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything that defines a Figure 3 run; `make_settings` builds a validated one.

  Attributes:
    steps: flow steps K (the VAE is always K = 0).
    train_batch: batch of the timed training steps.
    test_batch: batch of the timed evaluation.
    memory_batch: batch of the peak-memory probes (paper: 1200).
    warmup: untimed calls before timing (the first, which traces, included).
    repeats: timed training steps per model.
    test_repeats: timed evaluation batches per model.
    xla: XLA modes to measure, 'off' and/or 'on'.
    xla_steps: K values measured with XLA on (all of `steps` if empty).
    xla_repeats: timed repeats (train and test) with XLA on.
    largest_batch_xla: XLA modes in which to find the largest batch (none if empty).
    largest_batch_method: 'search' (GPU: device capped, a subprocess per trial), 'fit' (affine
      fit of peak memory + verification) or 'auto' (search on a GPU, fit on the CPU).
    fit_batches: batches measured for the affine memory fit (>= 2 distinct).
    budget_mib: memory budget of the largest batch (paper: 4 GiB).
    data: 'mnist' (binarised training images) or 'random' (random binary images; the cost
      does not depend on the pixel values).
    flows: flows to measure, a subset of `flow_order()` (default: the flows registered when
      this module was imported).
    precisions: Keras precision policies to measure (`PRECISIONS`); 'mixed_bfloat16' needs
      model support (see the module docstring).
    train_images: images per training epoch (steps per epoch = this / `train_batch`).
    preset: name of the preset the settings came from.
  """
  steps: Tuple[int, ...] = (1, 5, 10)
  train_batch: int = 1000
  test_batch: int = 1000
  memory_batch: int = 1200
  warmup: int = 2
  repeats: int = 5
  test_repeats: int = 5
  xla: Tuple[str, ...] = ('off',)
  xla_steps: Tuple[int, ...] = ()
  xla_repeats: int = 5
  largest_batch_xla: Tuple[str, ...] = ('off',)
  largest_batch_method: str = 'auto'
  fit_batches: Tuple[int, ...] = (300, 600, 1200)
  budget_mib: int = 4096
  data: str = 'mnist'
  flows: Tuple[str, ...] = flow_order()
  precisions: Tuple[str, ...] = ('float32',)
  train_images: int = 50000
  preset: str = 'custom'

  def validate(self):
    """Raises `ValueError` naming the first bad field and its value."""
    def need(cond, message):
      if not cond:
        raise ValueError(message)
    for f in self.flows:
      need(f in flow_order(), f'unknown flow {f!r}; choose from {flow_order()}.')
    need(self.flows, 'flows: measure at least one flow.')
    for m in self.xla + self.largest_batch_xla:
      need(m in XLA_MODES, f"XLA modes are 'off' and 'on', got {m!r}.")
    for p in self.precisions:
      need(p in PRECISIONS, f'unknown precision {p!r}; choose from {PRECISIONS}.')
    need(self.precisions, 'precisions: measure at least one precision.')
    need(self.steps and min(self.steps) >= 1,
         f'steps must be K >= 1 values, got {list(self.steps)}.')
    need(not self.xla_steps or min(self.xla_steps) >= 1,
         f'xla_steps must be K >= 1 values, got {list(self.xla_steps)}.')
    need(len(set(self.fit_batches)) >= 2,
         f'fit_batches needs >= 2 distinct batches, got {list(self.fit_batches)}.')
    need(min(self.fit_batches) >= 1,
         f'fit_batches must be >= 1, got {list(self.fit_batches)}.')
    need(self.largest_batch_method in LARGEST_BATCH_METHODS,
         f'largest_batch_method must be one of {LARGEST_BATCH_METHODS}, got '
         f'{self.largest_batch_method!r}.')
    need(self.data in DATA, f'data must be one of {DATA}, got {self.data!r}.')
    for name in ('train_batch', 'test_batch', 'memory_batch', 'warmup', 'repeats',
                 'test_repeats', 'xla_repeats', 'budget_mib', 'train_images'):
      need(getattr(self, name) >= 1, f'{name} must be >= 1, got {getattr(self, name)}.')

  def to_dict(self):
    """The settings as JSON data (tuples as lists), as `figure3.json` records them."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}


# Settings per preset; `make_settings` overrides any of them.
PRESETS = {
    # The whole grid, paper batches, both XLA modes everywhere: for a GPU.
    'paper': dict(steps=(1, 5, 10), train_batch=1000, test_batch=1000,
                  memory_batch=1200, warmup=2, repeats=5, test_repeats=5,
                  xla=('off', 'on'), xla_steps=(), xla_repeats=5,
                  largest_batch_xla=('off', 'on'), fit_batches=(300, 600, 1200),
                  budget_mib=4096, largest_batch_method='auto', data='mnist',
                  precisions=('float32',)),
    # The same grid sized for a 2-core CPU: XLA (slow to compile a K = 10 step, and slower to
    # run than no XLA on CPU: docs/results/figure3.md) only for K = 1 and 10, with fewer
    # repeats, and no largest-batch search under XLA.
    'cpu': dict(steps=(1, 5, 10), train_batch=1000, test_batch=1000,
                memory_batch=1200, warmup=2, repeats=5, test_repeats=5,
                xla=('off', 'on'), xla_steps=(1, 10), xla_repeats=3,
                largest_batch_xla=('off',), fit_batches=(300, 600, 1200),
                budget_mib=4096, largest_batch_method='auto', data='mnist',
                precisions=('float32',)),
    # bf16 against float32, side by side (results/figure3/precision-b*): Langevin-VAE K = 5
    # and 10, training and evaluation time only (no largest-batch search); run it at
    # --train_batch=1000 and at --train_batch=100.
    'precision': dict(steps=(5, 10), train_batch=1000, test_batch=1000, memory_batch=1000,
                      warmup=1, repeats=3, test_repeats=3, xla=('off',), xla_steps=(),
                      xla_repeats=3, largest_batch_xla=(), fit_batches=(300, 600),
                      budget_mib=4096, largest_batch_method='auto', data='mnist',
                      flows=('langevin',), precisions=PRECISIONS),
    # Seconds, for CI: K = 2 (so 2K = 4 and K + 1 = 3 differ), small batches and budget.
    'tiny': dict(steps=(2,), train_batch=16, test_batch=16, memory_batch=32,
                 warmup=1, repeats=2, test_repeats=2, xla=('off',), xla_steps=(),
                 xla_repeats=2, largest_batch_xla=('off',), fit_batches=(48, 96),
                 budget_mib=96, largest_batch_method='auto', data='random',
                 precisions=('float32',)),
}

_INT_LISTS = ('steps', 'xla_steps', 'fit_batches')
_WORD_LISTS = ('xla', 'largest_batch_xla', 'flows', 'precisions')


def _as_list(value):
  """A sequence, or a comma-separated string, as a list of non-empty stripped strings."""
  items = value if isinstance(value, (list, tuple)) else str(value).split(',')
  return [str(x).strip() for x in items if str(x).strip()]


def make_settings(preset='cpu', **overrides):
  """The settings of `preset` with `overrides`, validated.

  Args:
    preset: a name in `PRESETS`.
    **overrides: `Settings` fields; `None` keeps the preset's value. The list fields also
      take comma-separated strings ('1,5,10'), and an empty `xla_steps` means all of `steps`.

  Returns:
    A `Settings` with `xla_steps` filled in.

  Raises:
    ValueError: an unknown preset or field, or a bad value (the message names it).
  """
  if preset not in PRESETS:
    raise ValueError(f'unknown preset {preset!r}; choose from {tuple(PRESETS)}.')
  names = {f.name for f in dataclasses.fields(Settings)} - {'preset'}
  unknown = sorted(set(overrides) - names)
  if unknown:
    raise ValueError(f'unknown settings {unknown}; choose from {sorted(names)}.')
  values = dict(PRESETS[preset])
  values.update({k: v for k, v in overrides.items() if v is not None})
  try:
    for name in _INT_LISTS:
      if name in values:
        values[name] = tuple(int(x) for x in _as_list(values[name]))
  except ValueError as e:
    raise ValueError(f'bad integer list: {e}') from None
  for name in _WORD_LISTS:
    if name in values:
      values[name] = tuple(_as_list(values[name]))
  settings = Settings(preset=preset, **values)
  settings.validate()
  return dataclasses.replace(settings,
                             xla_steps=settings.xla_steps or settings.steps)


# -- Measuring. -------------------------------------------------------------------


def _grid(settings, xla):
  """(flow, K) of every model measured in one XLA mode, in `flow_order()`."""
  steps = settings.xla_steps if xla == 'on' else settings.steps
  runs = []
  for flow in flow_order():
    if flow not in settings.flows:
      continue
    for k in (steps if _has_steps(flow) else [0]):
      runs.append((flow, k))
  return runs


def load_images(kind, n=5000, seed=0):
  """`n` binary images, float32 `(n, 28, 28, 1)`, and their source.

  Args:
    kind: 'mnist' (the first `n` training images, binarised) or 'random' (pixels on with
      probability 0.13, about MNIST's mean).
    n: number of images.
    seed: binarisation / random seed.

  Returns:
    (images, source): the array and where it came from (the MNIST source, or 'random').
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  if kind == 'mnist':
    from lvae_tf import data  # pylint: disable=g-import-not-at-top
    mnist = data.load_mnist()
    x = data.binarize(mnist.train_images[:n], seed=(seed, 7)).numpy()
    return x[..., None].astype(np.float32), mnist.source
  rng = np.random.default_rng(seed)
  return (rng.random((n, 28, 28, 1)) < 0.13).astype(np.float32), 'random'


def _timed(fn):
  t0, c0 = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - t0, time.process_time() - c0


def _interleaved(benches, call, warmup, repeats, log):
  """Times `call(bench)` round-robin; returns {key: (wall list, cpu list, warm list)}.

  Python's garbage collector is run before and disabled during the rounds (as `timeit`
  does): a full collection over the traced graphs' objects takes seconds and would land
  in a random timed call.
  """
  keys = list(benches)
  out = {k: ([], [], []) for k in keys}
  t0 = time.perf_counter()
  gc.collect()
  log(f'  gc.collect() {time.perf_counter() - t0:.1f} s')
  gc.disable()
  try:
    for r in range(warmup + repeats):
      order = keys if r % 2 == 0 else keys[::-1]
      for key in order:
        wall, cpu = _timed(lambda: call(benches[key]))  # pylint: disable=cell-var-from-loop
        if r < warmup:
          out[key][2].append(wall)
        else:
          out[key][0].append(wall)
          out[key][1].append(cpu)
      log(f'  round {r + 1}/{warmup + repeats} '
          f'({"warm-up" if r < warmup else "timed"}) done')
  finally:
    gc.enable()
  return out


def _build_and_warm(flow, k, jit, images, precision, train_batch, test_batch):
  """A `StepBench` after its first training step and evaluation batch, and their record.

  The first calls trace (and under XLA compile) the functions; the gradient counts are read
  over them. A model that cannot be built or run in `precision` raises `MeasurementError`.
  """
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  try:
    t0 = time.perf_counter()
    bench = bm.StepBench(bm.flow_config(flow, k), jit_compile=jit, images=images,
                         precision=precision)
    bench.counter.reset()
    bench.train_step(train_batch)
    first_train = time.perf_counter() - t0
    train_grads = int(bench.counter.count.numpy())
    t0 = time.perf_counter()
    bench.counter.reset()
    bench.test_step(test_batch)
    first_test = time.perf_counter() - t0
    test_grads = int(bench.counter.count.numpy())
  except (TypeError, ValueError) as e:
    if precision == PRECISIONS[0]:
      raise
    message = str(e).strip().splitlines()[-1].strip()  # Keras puts the cause last
    raise MeasurementError(
        f'{flow} K={k} cannot run in {precision}: lvae_tf.models does not support this '
        f'precision yet. {message}') from e
  return bench, {
      'flow': flow, 'num_steps': k, 'xla': jit, 'precision': precision,
      'gradients_per_train_step': train_grads,
      'gradients_per_test_batch': test_grads,
      'expected_gradients': bm.expected_gradients(flow, k),
      'first_call_seconds': {'train': first_train, 'test': first_test},
  }


def _largest_batch(settings, bench, key, known, jit, device, log):
  """The largest training batch of one model within the budget (method of `settings`)."""
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  method = settings.largest_batch_method
  if method == 'auto':
    method = 'search' if device.startswith('GPU') else 'fit'
  budget = settings.budget_mib * 2**20
  t0 = time.perf_counter()

  def probe(b):
    if b not in known:
      known[b] = bench.train_peak(b, device)
      bench.forget_batch(b)
    return known[b]

  if method == 'fit':
    result = bm.largest_batch_by_fit(probe, budget, settings.fit_batches)
  else:
    # Bracket +-10% around the estimate from this process's measured peaks, then
    # bisect to 1%: each trial is a fresh process with the device capped.
    fit_b = sorted(set(settings.fit_batches) | set(known))
    a, c, _ = bm.fit_affine(fit_b, [probe(b) for b in fit_b])
    guess = max(1, int((budget - a) / c))
    result = bm.largest_batch_by_search(
        key[0], key[1], budget_mib=settings.budget_mib, jit_compile=jit,
        low=max(1, int(0.9 * guess)), high=int(1.1 * guess) + 1,
        granularity=max(1, guess // 100), precision=bench.precision)
    result['estimate_from_fit'] = guess
  result['seconds'] = time.perf_counter() - t0
  log(f'  {key[0]} K={key[1]}: {result["batch"]} '
      f'({result["method"]}, {result["seconds"]:.0f} s)')
  return result


def measure_mode(settings, xla, images, log=print, precision='float32'):
  """All measurements of one XLA mode and precision.

  Args:
    settings: `Settings`.
    xla: 'off' or 'on'.
    images: float32 binary images `(n, 28, 28, 1)` (e.g. from `load_images`).
    log: `str -> None` for progress lines.
    precision: Keras precision policy the models are built under (`PRECISIONS`).

  Returns:
    A list of run records (dicts), one per (flow, K) of the grid.

  Raises:
    MeasurementError: no allocator statistics on the device, or a model that cannot be built
      in `precision`.
  """
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top

  jit = xla == 'on'
  repeats = settings.xla_repeats if jit else settings.repeats
  test_repeats = settings.xla_repeats if jit else settings.test_repeats
  tb, eb, mb = settings.train_batch, settings.test_batch, settings.memory_batch
  tag = f'xla {xla}' + ('' if precision == PRECISIONS[0] else f', {precision}')
  device = bm.memory_device()
  try:  # no allocator statistics: fail now, not after the timing
    bm.peak_memory(lambda: None, device)
  except RuntimeError as e:
    raise MeasurementError(str(e)) from e
  benches, records = {}, {}
  for flow, k in _grid(settings, xla):
    log(f'[{tag}] build + warm up {flow} K={k}')
    bench, record = _build_and_warm(flow, k, jit, images, precision, tb, eb)
    benches[(flow, k)], records[(flow, k)] = bench, record
    log(f'  gradients/step train {record["gradients_per_train_step"]}, test '
        f'{record["gradients_per_test_batch"]}; first calls '
        f'{record["first_call_seconds"]["train"]:.1f} s + '
        f'{record["first_call_seconds"]["test"]:.1f} s')

  log(f'[{tag}] timing training steps at batch {tb}, '
      f'{settings.warmup} warm-up + {repeats} timed, interleaved')
  timings = _interleaved(benches, lambda b: b.train_step(tb), settings.warmup - 1,
                         repeats, log)
  steps_per_epoch = settings.train_images / tb
  for key, (wall, cpu, warm) in timings.items():
    w, c = bm.summarize_times(wall), bm.summarize_times(cpu)
    records[key]['train_step_seconds'] = dict(w, times=wall, warmup_times=warm)
    records[key]['train_step_cpu_seconds'] = dict(c, times=cpu)
    records[key]['train_epoch_seconds'] = {
        'median': w['median'] * steps_per_epoch,
        'q25': w['q25'] * steps_per_epoch, 'q75': w['q75'] * steps_per_epoch,
        'steps_per_epoch': steps_per_epoch}

  log(f'[{tag}] timing evaluation batches at batch {eb}')
  timings = _interleaved(benches, lambda b: b.test_step(eb), settings.warmup - 1,
                         test_repeats, log)
  for key, (wall, cpu, warm) in timings.items():
    records[key]['test_batch_seconds'] = dict(bm.summarize_times(wall),
                                              times=wall, warmup_times=warm)
    records[key]['test_batch_cpu_seconds'] = dict(bm.summarize_times(cpu),
                                                  times=cpu)
  for bench in benches.values():
    bench.forget_batch(tb)
    bench.forget_batch(eb)

  log(f'[{tag}] peak memory at batch {mb} on {device}')
  for key, bench in benches.items():
    train_mem = bench.train_memory(mb, device)
    test_mem = bench.test_memory(mb, device)
    records[key]['memory'] = {
        'device': device, 'batch': mb,
        'train_peak_bytes': train_mem['peak_bytes'],
        'test_peak_bytes': test_mem['peak_bytes'],
        'train': train_mem, 'test': test_mem}
    log(f'  {key[0]} K={key[1]}: train {train_mem["peak_bytes"] / 2**20:.0f} '
        f'MiB, eval {test_mem["peak_bytes"] / 2**20:.0f} MiB')

  if xla in settings.largest_batch_xla:
    log(f'[{tag}] largest batch within {settings.budget_mib} MiB '
        f'({settings.largest_batch_method})')
    for key, bench in benches.items():
      known = {mb: records[key]['memory']['train_peak_bytes']}
      records[key]['largest_batch'] = _largest_batch(settings, bench, key, known,
                                                     jit, device, log)

  del benches
  gc.collect()
  keras.backend.clear_session()
  return list(records.values())


def run(settings, echo=print, on_update=None):
  """Measures every precision and XLA mode of `settings`, in one process; returns the report.

  Args:
    settings: `Settings` (e.g. from `make_settings`).
    echo: `str -> None` for progress lines, each prefixed with the elapsed seconds.
    on_update: called with the analysed, partial report (`complete` False) after each
      precision and XLA mode, e.g. to write it, so a long run that dies keeps what it
      measured.

  Returns:
    The analysed report (`analyse`), `complete` True: settings, environment, data source,
    load averages, run records, ratios, targets, cost and memory models, notes.
  """
  t_start = time.perf_counter()
  load_samples = []

  def log(message):
    elapsed = time.perf_counter() - t_start
    load_samples.append([round(elapsed, 1), os.getloadavg()[0]])
    echo(f'[{elapsed:7.1f} s] {message}')

  images, source = load_images(settings.data)
  report = {
      'kind': 'figure3', 'complete': False, 'settings': settings.to_dict(),
      'environment': dict(results.environment(),
                          tf_enable_onednn_opts=os.environ.get('TF_ENABLE_ONEDNN_OPTS')),
      'data_source': source,
      'load': {'start': list(os.getloadavg()), 'cpu_count': os.cpu_count(),
               'samples_seconds_load1': load_samples},
      'runs': [], 'notes': [],
  }
  if 'on' in settings.xla and settings.xla_steps != settings.steps:
    report['notes'].append(
        f'XLA on was measured for K in {list(settings.xla_steps)} only '
        f'(with {settings.xla_repeats} timed repeats), to fit the CPU budget.')
  for precision in settings.precisions:
    for xla in settings.xla:
      report['runs'] += measure_mode(settings, xla, images, log, precision)
      report['load']['end'] = list(os.getloadavg())
      report['wall_seconds'] = time.perf_counter() - t_start
      if on_update is not None:
        on_update(analyse(report))
  report['complete'] = True
  report['load']['end'] = list(os.getloadavg())
  report['wall_seconds'] = time.perf_counter() - t_start
  return analyse(report)


# -- Analysis: ratios, cost and memory models, targets. ---------------------------


def _precision(record):
  """A record's precision; reports written before precisions existed are float32."""
  return record.get('precision', PRECISIONS[0])


def _find(runs, flow, k, xla, precision=PRECISIONS[0]):
  for r in runs:
    if (r['flow'] == flow and r['num_steps'] == k and r['xla'] == xla and
        _precision(r) == precision):
      return r
  return None


def _get(record, *path):
  v = record
  for p in path:
    if v is None or p not in v:
      return None
    v = v[p]
  return v


def _ratio(a, b):
  if a is None or b is None or not b:
    return None
  return a / b


def _modes(runs):
  """(precision, xla) of the runs: precisions in `PRECISIONS` order, XLA off first."""
  modes = {(_precision(r), r['xla']) for r in runs}
  order = {p: i for i, p in enumerate(PRECISIONS)}
  return sorted(modes, key=lambda m: (order.get(m[0], len(order)), m[0], m[1]))


def _mode_key(xla, precision=PRECISIONS[0]):
  """'xla_off', 'xla_on', 'xla_off_mixed_bfloat16', ...: keys of the fitted models."""
  return ('xla_on' if xla else 'xla_off') + (
      '' if precision == PRECISIONS[0] else f'_{precision}')


def _fit_line(points):
  """Least-squares (intercept, slope) through (x, y) points."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  x, y = np.array(points, dtype=float).T
  slope, intercept = np.polyfit(x, y, 1)
  return float(intercept), float(slope)


def _subjects():
  """What Figure 3 compares: `[(subject variant, {name: baseline variant})]`.

  A subject is each variant of a flow with `paired_with` (Langevin), its baselines every
  variant of the flows it is paired with (HVAE), named by the variant's value ('reference',
  'cached'): the suffix of the ratio keys.
  """
  out = []
  for spec in registry.flows():
    baselines = {v.value or v.label: v for other in spec.paired_with
                 if other in registry.flow_names() for v in registry.flow(other).variants}
    out += [(v, baselines) for v in spec.variants if baselines]
  return out


def _fitted(runs):
  """The runs the cost and memory models are fitted on (all but the subjects', `_subjects`)."""
  subjects = {v.label for v, _ in _subjects()}
  return [r for r in runs if r['flow'] not in subjects]


def _fitted_on(runs):
  """'vae, hvae-reference, hvae-cached': the flows of `runs`, in registration order."""
  labels = [v.label for v in registry.variants()]
  present = {r['flow'] for r in runs}
  return ', '.join([l for l in labels if l in present] + sorted(present - set(labels)))


def cost_model(runs, xla, key='train_step_seconds', precision=PRECISIONS[0]):
  """Fits `t = fixed + per_gradient * gradients` on the VAE and HVAE runs (not on Langevin).

  The runs fitted are those of every flow but the compared ones (`_subjects`).

  Args:
    runs: run records.
    xla: the XLA mode (bool) of the runs to fit.
    key: the timing, 'train_step_seconds' (wall-clock) or 'train_step_cpu_seconds'.
    precision: the precision of the runs to fit.

  Returns:
    dict `fixed_seconds`, `per_gradient_seconds`, `fitted_on`, `points`; None without two
    distinct gradient counts.
  """
  fitted = [r for r in _fitted(runs)
            if r['xla'] == xla and _precision(r) == precision and key in r]
  pts = [(r['gradients_per_train_step'], r[key]['median']) for r in fitted]
  if len({g for g, _ in pts}) < 2:
    return None
  intercept, slope = _fit_line(pts)
  return {'fixed_seconds': intercept, 'per_gradient_seconds': slope,
          'fitted_on': _fitted_on(fitted),
          'points': [[float(a), float(b)] for a, b in pts]}


def memory_model(runs, xla, precision=PRECISIONS[0]):
  """Fits the per-example slope of peak memory: `slope = f + u * gradients` (VAE, HVAE runs).

  The slopes come from the largest-batch fits. With `f` (bytes per example outside the
  flow: encoder, final decoder pass, loss, the batch) and `u` (bytes per example kept per
  gradient evaluation for the backward pass), the largest-batch ratio Langevin / HVAE
  reference is at most `(2K u + f) / (K u + f)`, below 2 for any `f > 0`.

  Returns:
    dict `fixed_bytes_per_example`, `bytes_per_example_per_gradient`, `fitted_on`, `points`;
    None without two distinct gradient counts.
  """
  fitted = [r for r in _fitted(runs)
            if r['xla'] == xla and _precision(r) == precision and
            'slope_bytes_per_example' in (r.get('largest_batch') or {})]
  pts = [(r['gradients_per_train_step'],
          r['largest_batch']['slope_bytes_per_example']) for r in fitted]
  if len({g for g, _ in pts}) < 2:
    return None
  intercept, slope = _fit_line(pts)
  return {'fixed_bytes_per_example': intercept,
          'bytes_per_example_per_gradient': slope,
          'fitted_on': _fitted_on(fitted),
          'points': [[float(a), float(c)] for a, c in pts]}


def _measured_ratios(row, lang, others):
  """Langevin / other for time, CPU time, memory and largest batch, into `row`."""
  paths = {'train_time': ('train_step_seconds', 'median'),
           'train_cpu_time': ('train_step_cpu_seconds', 'median'),
           'test_time': ('test_batch_seconds', 'median'),
           'train_memory': ('memory', 'train_peak_bytes'),
           'test_memory': ('memory', 'test_peak_bytes'),
           'largest_batch': ('largest_batch', 'batch')}
  for name, other in others.items():
    if other is None:
      continue
    for quantity, path in paths.items():
      row[f'{quantity}_{name}'] = _ratio(_get(lang, *path), _get(other, *path))


def compute_ratios(runs):
  """Langevin / HVAE ratios per (K, XLA mode, precision), with what the models predict.

  The subjects and baselines come from the registry (`_subjects`): Langevin against HVAE
  reference and cached, the ratio keys ending in the baseline's name. Every row has the
  gradient-count ratios K/2K and K/(K+1) (the flows' `gradients`); the measured ratios against
  each HVAE that was run; the time ratios the cost model predicts,
  `(f + K u) / (f + (K+1) u)` (cached) and `(f + K u) / (f + 2K u)` (reference), for
  wall-clock and CPU time; and the memory model's bounds on the largest-batch ratios. With
  more than one subject flow, a row names its subject (`flow`).
  """
  out = []
  subjects = _subjects()
  for precision, xla in _modes(runs):
    models = {'': cost_model(runs, xla, precision=precision),
              '_cpu': cost_model(runs, xla, key='train_step_cpu_seconds',
                                 precision=precision)}
    mem_model = memory_model(runs, xla, precision=precision)
    for subject, baselines in subjects:
      for k in sorted({r['num_steps'] for r in runs if r['flow'] == subject.label and
                       r['xla'] == xla and _precision(r) == precision}):
        gs, gb = subject.gradients(k), {n: v.gradients(k) for n, v in baselines.items()}
        row = {'num_steps': k, 'xla': xla, 'precision': precision,
               **({'flow': subject.label} if len(subjects) > 1 else {}),
               **{f'gradient_ratio_{n}': _ratio(gs, g) for n, g in gb.items()}}
        _measured_ratios(
            row, _find(runs, subject.label, k, xla, precision),
            {n: _find(runs, v.label, k, xla, precision) for n, v in baselines.items()})
        for suffix, m in models.items():
          if m is not None:
            f, u = m['fixed_seconds'], m['per_gradient_seconds']
            for n, g in gb.items():
              row[f'predicted_train{suffix}_time_{n}'] = (f + gs * u) / (f + g * u)
        if mem_model is not None:
          f = mem_model['fixed_bytes_per_example']
          u = mem_model['bytes_per_example_per_gradient']
          for n, g in gb.items():
            row[f'largest_batch_bound_{n}'] = (g * u + f) / (gs * u + f)
        out.append(row)
  return out


def evaluate_targets(ratios, k=10):
  """The targets Figure 3 is judged against, on the ratios at K = `k` (else the largest K), XLA off.

  Only float32 rows are judged. Each target is `{'value', 'met', 'target'}` (`met` None
  when there is no value); `num_steps` is the K judged.
  """
  rows = [r for r in ratios
          if not r['xla'] and r.get('precision', PRECISIONS[0]) == PRECISIONS[0]]
  if not rows:
    return {}
  row = next((r for r in rows if r['num_steps'] == k),
             max(rows, key=lambda r: r['num_steps']))
  k = row['num_steps']
  def target(value, ok, text):
    return {'value': value, 'met': None if value is None else bool(ok(value)),
            'target': text}
  def near(pred):
    return lambda v: pred is not None and abs(v / pred - 1) <= 0.05
  def near_text(pred):
    return ('within 5% of K/(K+1) plus fixed costs = ' + f'{pred:.3f}'
            if pred is not None else 'needs the cost model')
  pred = row.get('predicted_train_time_cached')
  pred_cpu = row.get('predicted_train_cpu_time_cached')
  t = {
      'train_time_langevin_over_reference': target(
          row.get('train_time_reference'), lambda v: v <= 0.55, '<= 0.55'),
      'train_time_langevin_over_cached': target(
          row.get('train_time_cached'), near(pred), near_text(pred)),
      'train_cpu_time_langevin_over_reference': target(
          row.get('train_cpu_time_reference'), lambda v: v <= 0.55, '<= 0.55'),
      'train_cpu_time_langevin_over_cached': target(
          row.get('train_cpu_time_cached'), near(pred_cpu), near_text(pred_cpu)),
      'train_memory_langevin_over_reference': target(
          row.get('train_memory_reference'), lambda v: v <= 0.6, '<= 0.6'),
      'largest_batch_langevin_over_reference': target(
          row.get('largest_batch_reference'), lambda v: v >= 2, '>= 2'),
  }
  t['num_steps'] = k
  return t


def precision_ratios(runs):
  """bf16 throughput over float32 (float32 step time / bf16 step time), per flow, K and XLA.

  Returns:
    A list of `{'flow', 'num_steps', 'xla', 'train_time', 'train_cpu_time', 'test_time'}`
    for every model measured in both precisions (`train_time` 2.0 = bf16 trains twice as
    fast); empty when only one precision was measured.
  """
  out = []
  low = PRECISIONS[1]
  for r in runs:
    if _precision(r) != PRECISIONS[0]:
      continue
    other = _find(runs, r['flow'], r['num_steps'], r['xla'], low)
    if other is None:
      continue
    out.append({
        'flow': r['flow'], 'num_steps': r['num_steps'], 'xla': r['xla'],
        'precision': low,
        'train_time': _ratio(_get(r, 'train_step_seconds', 'median'),
                             _get(other, 'train_step_seconds', 'median')),
        'train_cpu_time': _ratio(_get(r, 'train_step_cpu_seconds', 'median'),
                                 _get(other, 'train_step_cpu_seconds', 'median')),
        'test_time': _ratio(_get(r, 'test_batch_seconds', 'median'),
                            _get(other, 'test_batch_seconds', 'median')),
    })
  return out


def analyse(report):
  """Adds `ratios`, `precision_ratios`, `targets`, `memory_model` and `cost_model`."""
  runs = report['runs']
  report['ratios'] = compute_ratios(runs)
  report['precision_ratios'] = precision_ratios(runs)
  report['targets'] = evaluate_targets(report['ratios'])
  modes = _modes(runs)
  report['memory_model'] = {_mode_key(x, p): memory_model(runs, x, p) for p, x in modes}
  report['cost_model'] = {
      _mode_key(x, p): {
          'wall': cost_model(runs, x, precision=p),
          'cpu': cost_model(runs, x, key='train_step_cpu_seconds', precision=p)}
      for p, x in modes}
  return report


# -- Markdown. --------------------------------------------------------------------


def _fmt(v, digits=2, unit=''):
  if v is None:
    return '–'
  return f'{v:.{digits}f}{unit}'


def _mean_load(load):
  samples = [v for _, v in load.get('samples_seconds_load1', [])]
  return sum(samples) / len(samples) if samples else float('nan')


def _mode_text(record):
  """The XLA cell of a table row: 'off', 'on', or e.g. 'off, mixed_bfloat16'."""
  precision = record.get('precision', PRECISIONS[0])
  return ('on' if record['xla'] else 'off') + (
      '' if precision == PRECISIONS[0] else f', {precision}')


def _header(report):
  env, load, s = report['environment'], report['load'], report['settings']
  lines = ['# Figure 3: time and memory of Langevin-VAE vs HVAE', '']
  lines.append(
      f'Device: {env["device"]}; TensorFlow {env["tensorflow"]}, TFP '
      f'{env["tensorflow_probability"]}; {env["date"]}. Load average (1 min) '
      f'{load["start"][0]:.2f} at the start, {load["end"][0]:.2f} at the end, '
      f'{_mean_load(load):.2f} on average over the run (our own process adds '
      f'up to ~2), {load["cpu_count"]} logical CPUs. Preset `{s["preset"]}`'
      f'{"" if report["complete"] else " (INCOMPLETE run)"}.')
  precisions = s.get('precisions', [PRECISIONS[0]])
  lines += ['', (
      f'Training step at batch {s["train_batch"]} (median of {s["repeats"]} '
      f'timed steps after {s["warmup"]} warm-up, interleaved over models; '
      f'epoch = {s["train_images"]} images), evaluation batch {s["test_batch"]}, '
      f'peak memory at batch {s["memory_batch"]}, largest batch within '
      f'{s["budget_mib"]} MiB. ' + (
          f'XLA on: K in {s["xla_steps"]}, {s["xla_repeats"]} timed repeats.'
          if 'on' in s.get('xla', ['off', 'on']) else 'XLA off only.')) + (
          '' if list(precisions) == [PRECISIONS[0]]
          else f' Precisions: {", ".join(precisions)}.')]
  return lines


def _ratios_section(report):
  lines = ['', '## Ratios Langevin / HVAE', '',
           '| K | XLA | train time / ref | K/2K | train time / cached | K/(K+1) '
           '| predicted with fixed costs | CPU time / ref | CPU time / cached '
           '| predicted (CPU) | test time / ref | test time / cached '
           '| train peak mem / ref | / cached | largest batch / ref '
           '| bound (memory model) | largest batch / cached |',
           '|' + '---|' * 17]
  columns = ('train_time_reference', 'gradient_ratio_reference', 'train_time_cached',
             'gradient_ratio_cached', 'predicted_train_time_cached',
             'train_cpu_time_reference', 'train_cpu_time_cached',
             'predicted_train_cpu_time_cached', 'test_time_reference',
             'test_time_cached', 'train_memory_reference', 'train_memory_cached',
             'largest_batch_reference', 'largest_batch_bound_reference',
             'largest_batch_cached')
  for r in report['ratios']:
    cells = [str(r['num_steps']), _mode_text(r)] + [_fmt(r.get(c)) for c in columns]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines += ['',
            '"predicted with fixed costs": `(f + K u) / (f + (K+1) u)` with the '
            'fixed time `f` and the time per gradient `u` fitted by least squares '
            'on the VAE and HVAE runs only (not on Langevin), for wall-clock and '
            'for CPU time. Paper (GPU): '
            '~17 vs ~24 s/epoch (ratio ~0.71), ~23% less memory at batch 1200 '
            '(ratio ~0.77), about 2x the batch in 4 GiB.', '']
  mm = (report.get('memory_model') or {}).get('xla_off')
  if mm:
    f, u = (mm['fixed_bytes_per_example'] / 1024,
            mm['bytes_per_example_per_gradient'] / 1024)
    lines += [
        f'Memory model (XLA off, fitted on the VAE and HVAE runs\' peak-memory '
        f'slopes): each example costs f = {f:.0f} KiB outside the flow '
        f'(encoder, final decoder pass, loss, the batch) plus u = {u:.0f} KiB '
        'per gradient evaluation kept for the backward pass. The largest-batch '
        'ratio Langevin / HVAE reference is then at most (2K u + f) / (K u + f) '
        '("bound" column): below 2 for any f > 0, so a 2x larger batch at the '
        'same K would need Langevin to store less per gradient than HVAE.', '']
  return lines


def _precision_section(report):
  rows = report.get('precision_ratios') or []
  if not rows:
    return []
  lines = ['', f'## {PRECISIONS[1]} throughput over {PRECISIONS[0]}', '',
           '(float32 step time / bf16 step time, measured side by side; > 1 means bf16 is '
           'faster)', '', '| flow | K | XLA | train (wall) | train (CPU) | eval (wall) |',
           '|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f"| {_title(r['flow'])} | {r['num_steps']} | "
                 f"{'on' if r['xla'] else 'off'} | {_fmt(r['train_time'])} | "
                 f"{_fmt(r['train_cpu_time'])} | {_fmt(r['test_time'])} |")
  return lines + ['']


def _targets_section(report):
  targets = report.get('targets') or {}
  if not targets:
    return []
  lines = [f'## Targets (K = {targets["num_steps"]}, XLA off)', '']
  if targets['num_steps'] != 10:
    lines += ['The targets are set for K = 10; this run has no K = 10, so they '
              f'are shown at K = {targets["num_steps"]} for form only.', '']
  lines += ['| target | measured | wanted | met |', '|---|---|---|---|']
  for name, t in targets.items():
    if name == 'num_steps':
      continue
    met = {True: 'yes', False: 'NO', None: '–'}[t['met']]
    lines.append(f'| {name} | {_fmt(t["value"], 3)} | {t["target"]} | {met} |')
  lines.append('')
  return lines


def _mib(value):
  return None if value is None else value / 2**20


def _runs_section(report):
  lines = ['## Runs', '',
           '| flow | K | XLA | grads / train step | grads / eval batch '
           '| train s/step (IQR) | train s/epoch | CPU s/step | eval s/batch (IQR) '
           '| train peak MiB | eval peak MiB | largest batch (method) |',
           '|' + '---|' * 12]
  for r in report['runs']:
    ts, cpu = r.get('train_step_seconds', {}), r.get('train_step_cpu_seconds', {})
    es, mem = r.get('test_batch_seconds', {}), r.get('memory', {})
    lb = r.get('largest_batch')
    lb_text = '–' if lb is None else (
        f'{lb["batch"]} ({lb["method"]}'
        f'{"" if lb.get("verified", True) else ", NOT verified"})')
    lines.append(
        f'| {_title(r["flow"])} | {r["num_steps"]} | {_mode_text(r)} '
        f'| {r["gradients_per_train_step"]} | {r["gradients_per_test_batch"]} '
        f'| {_fmt(ts.get("median"), 3)} ({_fmt(ts.get("iqr"), 3)}) '
        f'| {_fmt(_get(r, "train_epoch_seconds", "median"), 1)} '
        f'| {_fmt(cpu.get("median"), 3)} '
        f'| {_fmt(es.get("median"), 3)} ({_fmt(es.get("iqr"), 3)}) '
        f'| {_fmt(_mib(mem.get("train_peak_bytes")), 0)} '
        f'| {_fmt(_mib(mem.get("test_peak_bytes")), 0)} '
        f'| {lb_text} |')
  lines += ['', 'Times are wall-clock unless marked CPU (process CPU seconds, '
            'all threads: much less sensitive to other processes\' load than '
            'wall-clock). Gradient counts are the target-gradient evaluations '
            'each step runs, read from the bijectors\' `GradientCounter` (under '
            'XLA the compiler may merge identical ones, see the notes). Peak '
            'memory: TensorFlow\'s allocator peak on the device during one '
            'call, minus what was allocated before it, plus the model\'s '
            'weights and optimizer slots (what a process holding only this '
            'model would peak at). Largest batch: the largest measured batch '
            'whose peak fits the budget.']
  return lines


def _notes(report):
  """The report's notes, plus one per XLA-on K where XLA merged HVAE's duplicate gradient."""
  runs, notes = report['runs'], list(report.get('notes') or [])
  for r in report['ratios']:
    if not r['xla'] or r['num_steps'] <= 1:
      continue
    precision = r.get('precision', PRECISIONS[0])
    ref = _find(runs, 'hvae-reference', r['num_steps'], True, precision)
    cached = _find(runs, 'hvae-cached', r['num_steps'], True, precision)
    m = _ratio(_get(ref, 'memory', 'train_peak_bytes'),
               _get(cached, 'memory', 'train_peak_bytes'))
    if m is not None and m < 1.1:
      notes.append(
          f'XLA on, K = {r["num_steps"]}: the reference HVAE needs only '
          f'{m:.2f}x the training memory of the cached one (XLA off: 2K vs '
          'K+1 gradients\' worth). XLA merges the duplicated start-of-step '
          'gradient (same z, same weights as the previous end-of-step one) by '
          'common-subexpression elimination, so under XLA "reference" is no '
          'longer a 2K-gradient baseline, although the counter (which counts '
          'requested evaluations) still reads 2K.')
  return [''] + [f'* {n}' for n in notes] if notes else []


def markdown(report):
  """`figure3.md`: header, ratio table, memory model, targets, per-run table, notes.

  Args:
    report: an analysed report (`run`, or `analyse` of a loaded `figure3.json`).
  """
  lines = (_header(report) + _ratios_section(report) + _precision_section(report) +
           _targets_section(report) + _runs_section(report) + _notes(report))
  return '\n'.join(lines) + '\n'


# -- Plot and files. --------------------------------------------------------------


def _plot_value(record, key):
  """(median, q25, q75) of a dotted `key` of a record (a number gives itself thrice)."""
  v = _get(record, *key.split('.'))
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

  runs = [r for r in report['runs'] if not r['xla'] and _precision(r) == PRECISIONS[0]]
  ks = sorted({r['num_steps'] for r in runs if _has_steps(r['flow'])})
  flows = [f for f in flow_order() if any(r['flow'] == f for r in runs)]
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
  bar_flows = [f for f in flows if _has_steps(f)]
  width = 0.8 / max(1, len(bar_flows))

  for ax, (key, title, scale) in zip(axes.T.flatten(), panels):
    for i, flow in enumerate(bar_flows):
      xs, ys, lo, hi = [], [], [], []
      for j, k in enumerate(ks):
        r = _find(runs, flow, k, False)
        med, q25, q75 = _plot_value(r, key) if r else (None, None, None)
        if med is None:
          continue
        xs.append(j + (i - (len(bar_flows) - 1) / 2) * width)
        ys.append(med * scale)
        lo.append((med - q25) * scale)
        hi.append((q75 - med) * scale)
      if xs:
        ax.bar(xs, ys, width, yerr=[lo, hi] if any(lo + hi) else None,
               capsize=2, color=colors.get(flow, 'tab:gray'), label=_title(flow))
    for flow in (f for f in flows if not _has_steps(f)):
      vae = _find(runs, flow, 0, False)
      v = _plot_value(vae, key)[0] if vae is not None else None
      if v is None:
        continue
      top = max([p.get_height() for p in ax.patches] or [0.])
      if v * scale <= 1.5 * top or not top:
        ax.axhline(v * scale, color=colors.get(flow, 'tab:gray'), ls='--', lw=1,
                   label=f'{_title(flow)} (no flow)')
      else:  # off the scale of the flows' bars: say it instead of drawing it
        ax.text(0.98, 0.95, f'{_title(flow)} (no flow): {v * scale:,.0f}',
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
  with results.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)


def write_outputs(report, output_dir, with_plot=True):
  """Analyses `report` and writes `figure3.json`, `figure3.md` (and `figure3.png`) atomically.

  Returns:
    The paths written.
  """
  analyse(report)
  paths = [os.path.join(output_dir, 'figure3.json'), os.path.join(output_dir, 'figure3.md')]
  results.write_json_atomic(paths[0], report)
  results.write_text_atomic(paths[1], markdown(report))
  if with_plot:
    paths.append(os.path.join(output_dir, 'figure3.png'))
    plot(report, paths[-1])
  return paths
