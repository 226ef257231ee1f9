"""Measuring Figure 3: gradient counts, step times, peak memory and the largest batch.

Everything runs in one process (`run`); `measure_mode` measures one XLA mode and precision.
TensorFlow is imported only here, when measuring (`lvae_tf.figure3` sets
`TF_ENABLE_ONEDNN_OPTS=1` before, for the CPU allocator statistics peak memory is read from).
"""

import gc
import os
import time

from lvae_tf import results
from lvae_tf.figure3 import analysis
from lvae_tf.figure3 import settings as settings_lib


class MeasurementError(RuntimeError):
  """This machine or model cannot measure what the settings ask (e.g. a precision)."""


def _grid(settings, xla):
  """(flow, K) of every model measured in one XLA mode, in `flow_order()`."""
  steps = settings.xla_steps if xla == 'on' else settings.steps
  runs = []
  for flow in settings_lib.flow_order():
    if flow not in settings.flows:
      continue
    for k in (steps if settings_lib.has_steps(flow) else [0]):
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
    if precision == settings_lib.PRECISIONS[0]:
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
  tag = f'xla {xla}' + ('' if precision == settings_lib.PRECISIONS[0] else f', {precision}')
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
        on_update(analysis.analyse(report))
  report['complete'] = True
  report['load']['end'] = list(os.getloadavg())
  report['wall_seconds'] = time.perf_counter() - t_start
  return analysis.analyse(report)
