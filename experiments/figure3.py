r"""Figure 3 of the paper as a benchmark: training/test time and memory, side by side.

    python -m experiments.figure3                  # CPU preset (~20 min on 2 cores)
    python -m experiments.figure3 --preset=paper   # the full grid (for a GPU)
    python -m experiments.figure3 --preset=tiny    # seconds, for CI; numbers meaningless

For every flow in {langevin, hvae-reference, hvae-cached, vae} and K in --steps (the VAE has
K = 0 and is measured once), and for each XLA mode in --xla, in ONE process:

* gradient evaluations per training step and per evaluation batch, read from the flow
  bijectors' `GradientCounter` over the warm-up calls (exact integers);
* training-step time at --train_batch (Keras' own train function, the one `fit` runs, on an
  in-memory batch; after --warmup untimed calls, --repeats timed ones): wall-clock and process
  CPU seconds, median and IQR; time per epoch = median step x (--train_images / batch).
  The timed calls are interleaved round-robin over all models (order reversed every round),
  so load from other processes falls on every model alike and the ratios stay fair;
* evaluation time per batch at --test_batch (Keras' test function), likewise;
* peak memory (TF allocator, `reset_memory_stats`/`get_memory_info` on GPU:0 or CPU:0) of one
  training step and of one evaluation batch at --memory_batch;
* the largest training batch within --budget_mib: on a GPU a binary search, each trial a
  fresh subprocess with the device capped by a logical memory limit; on CPU an affine fit of
  measured peak memory against the batch (--fit_batches) and a verification run at the
  found size. The method used is recorded.

Writes `<output_dir>/figure3.json`, `figure3.md` (per-run table, ratios Langevin / HVAE
reference and Langevin / HVAE cached next to the gradient-count ratios K/2K and K/(K+1),
the targets) and `figure3.png`, atomically. The JSON is rewritten after each XLA mode with
`"complete": false` until the end.
"""

import gc
import os
import time

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from experiments import cli  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

FLOW_ORDER = ('langevin', 'hvae-reference', 'hvae-cached', 'vae')
TITLES = {'langevin': 'Langevin-VAE', 'hvae-reference': 'HVAE (2K grads)',
          'hvae-cached': 'HVAE cached (K+1)', 'vae': 'VAE'}

# Settings per preset; a flag given on the command line overrides its preset value.
PRESETS = {
    # The whole grid, paper batches, both XLA modes everywhere: for a GPU.
    'paper': dict(steps='1,5,10', train_batch=1000, test_batch=1000,
                  memory_batch=1200, warmup=2, repeats=5, test_repeats=5,
                  xla='off,on', xla_steps='', xla_repeats=5,
                  largest_batch_xla='off,on', fit_batches='300,600,1200',
                  budget_mib=4096, largest_batch_method='auto', data='mnist'),
    # The same grid on a 2-core CPU in ~12 minutes when the machine is otherwise idle:
    # XLA (20-60 s to compile a K = 10 step, 3-4x slower to run on CPU) only for K = 1
    # and 10, with fewer repeats, and no largest-batch search under XLA.
    'cpu': dict(steps='1,5,10', train_batch=1000, test_batch=1000,
                memory_batch=1200, warmup=2, repeats=5, test_repeats=5,
                xla='off,on', xla_steps='1,10', xla_repeats=3,
                largest_batch_xla='off', fit_batches='300,600,1200',
                budget_mib=4096, largest_batch_method='auto', data='mnist'),
    # Seconds, for CI: K = 2 (so 2K = 4 and K + 1 = 3 differ), small batches and budget.
    'tiny': dict(steps='2', train_batch=16, test_batch=16, memory_batch=32,
                 warmup=1, repeats=2, test_repeats=2, xla='off', xla_steps='',
                 data='random',
                 xla_repeats=2, largest_batch_xla='off', fit_batches='48,96',
                 budget_mib=96, largest_batch_method='auto'),
}


def define_flags():
  """Defines the flags; called only when run as a script (not on import)."""
  flags.DEFINE_enum('preset', 'cpu', list(PRESETS),
                    'cpu: 2-core CPU, ~20 min; paper: full grid (GPU); tiny: CI.')
  flags.DEFINE_list('flows', list(FLOW_ORDER), 'Flows to measure.')
  flags.DEFINE_list('steps', None, 'Flow steps K (the VAE is always K = 0).')
  flags.DEFINE_integer('train_batch', None, 'Batch of the timed training steps.',
                       lower_bound=1)
  flags.DEFINE_integer('test_batch', None, 'Batch of the timed evaluation.',
                       lower_bound=1)
  flags.DEFINE_integer('memory_batch', None,
                       'Batch of the peak-memory probes (paper: 1200).',
                       lower_bound=1)
  flags.DEFINE_integer('warmup', None, 'Untimed calls before timing.',
                       lower_bound=1)
  flags.DEFINE_integer('repeats', None, 'Timed training steps per model.',
                       lower_bound=1)
  flags.DEFINE_integer('test_repeats', None,
                       'Timed evaluation batches per model.', lower_bound=1)
  flags.DEFINE_list('xla', None, "XLA modes to measure: 'off', 'on'.")
  flags.DEFINE_list('xla_steps', None,
                    'K values measured with XLA on (empty = all of --steps).')
  flags.DEFINE_integer('xla_repeats', None,
                       'Timed repeats (train and test) with XLA on.',
                       lower_bound=1)
  flags.DEFINE_list('largest_batch_xla', None,
                    "XLA modes in which to find the largest batch ('' = none).")
  flags.DEFINE_enum('largest_batch_method', None, ['auto', 'fit', 'search'],
                    'auto: search on GPU (device capped, subprocess per trial), '
                    'fit on CPU (affine fit of peak memory + verification).')
  flags.DEFINE_list('fit_batches', None,
                    'Batches measured for the affine memory fit.')
  flags.DEFINE_integer('budget_mib', None, 'Memory budget (paper: 4 GiB).',
                       lower_bound=1)
  flags.DEFINE_integer('train_images', 50000,
                       'Images per training epoch (steps/epoch = this / batch).',
                       lower_bound=1)
  flags.DEFINE_enum('data', None, ['mnist', 'random'],
                    'Batches of binarised MNIST, or random binary images (the '
                    'cost does not depend on the pixel values).')
  flags.DEFINE_string('output_dir', os.path.join('results', 'figure3'),
                      'Where figure3.json/.md/.png go.')
  flags.DEFINE_bool('plot', True, 'Write figure3.png.')


def settings_from_flags():
  """The preset, overridden by flags given explicitly; validated."""
  s = dict(PRESETS[FLAGS.preset])
  for name in s:  # every preset field is a flag whose default is None
    if FLAGS[name].value is not None:
      s[name] = FLAGS[name].value
  def ints(v):
    v = v if isinstance(v, (list, tuple)) else str(v).split(',')
    return [int(x) for x in v if str(x).strip() != '']
  def words(v):
    v = v if isinstance(v, (list, tuple)) else str(v).split(',')
    return [str(x).strip() for x in v if str(x).strip()]
  try:
    s['steps'] = ints(s['steps'])
    s['xla_steps'] = ints(s['xla_steps']) or list(s['steps'])
    s['fit_batches'] = ints(s['fit_batches'])
  except ValueError as e:
    cli.fail(f'bad integer list: {e}')
  s['xla'] = words(s['xla'])
  s['largest_batch_xla'] = words(s['largest_batch_xla'])
  s['flows'] = words(FLAGS.flows)
  for f in s['flows']:
    if f not in FLOW_ORDER:
      cli.fail(f'unknown flow {f!r}; choose from {FLOW_ORDER}.')
  for m in s['xla'] + s['largest_batch_xla']:
    if m not in ('off', 'on'):
      cli.fail(f"XLA modes are 'off' and 'on', got {m!r}.")
  if not s['steps'] or min(s['steps']) < 1:
    cli.fail(f'--steps must be K >= 1 values, got {s["steps"]}.')
  if len(set(s['fit_batches'])) < 2:
    cli.fail(f'--fit_batches needs >= 2 distinct batches, got {s["fit_batches"]}.')
  s['train_images'] = FLAGS.train_images
  s['preset'] = FLAGS.preset
  return s


# -- Measuring. ----------------------------------------------------------------


def _grid(settings, xla):
  steps = settings['xla_steps'] if xla == 'on' else settings['steps']
  runs = []
  for flow in FLOW_ORDER:
    if flow not in settings['flows']:
      continue
    for k in ([0] if flow == 'vae' else steps):
      runs.append((flow, k))
  return runs


def _images(kind, n=5000, seed=0):
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
    _rounds(benches, call, warmup, repeats, log, keys, out)
  finally:
    gc.enable()
  return out


def _rounds(benches, call, warmup, repeats, log, keys, out):
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


def measure_mode(settings, xla, images, log):
  """All measurements of one XLA mode; returns a list of run records."""
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top

  jit = xla == 'on'
  repeats = settings['xla_repeats'] if jit else settings['repeats']
  test_repeats = settings['xla_repeats'] if jit else settings['test_repeats']
  tb, eb, mb = (settings['train_batch'], settings['test_batch'],
                settings['memory_batch'])
  device = bm.memory_device()
  benches, records = {}, {}
  for flow, k in _grid(settings, xla):
    log(f'[xla {xla}] build + warm up {flow} K={k}')
    t0 = time.perf_counter()
    bench = bm.StepBench(bm.flow_config(flow, k), jit_compile=jit,
                         images=images)
    bench.counter.reset()
    bench.train_step(tb)  # trace (+ compile) and first run
    first_train = time.perf_counter() - t0
    train_grads = int(bench.counter.count.numpy())
    t0 = time.perf_counter()
    bench.counter.reset()
    bench.test_step(eb)
    first_test = time.perf_counter() - t0
    test_grads = int(bench.counter.count.numpy())
    benches[(flow, k)] = bench
    records[(flow, k)] = {
        'flow': flow, 'num_steps': k, 'xla': jit,
        'gradients_per_train_step': train_grads,
        'gradients_per_test_batch': test_grads,
        'expected_gradients': bm.expected_gradients(flow, k),
        'first_call_seconds': {'train': first_train, 'test': first_test},
    }
    log(f'  gradients/step train {train_grads}, test {test_grads}; first calls '
        f'{first_train:.1f} s + {first_test:.1f} s')

  log(f'[xla {xla}] timing training steps at batch {tb}, '
      f'{settings["warmup"]} warm-up + {repeats} timed, interleaved')
  timings = _interleaved(benches, lambda b: b.train_step(tb),
                         settings['warmup'] - 1, repeats, log)
  steps_per_epoch = settings['train_images'] / tb
  for key, (wall, cpu, warm) in timings.items():
    w, c = bm.summarize_times(wall), bm.summarize_times(cpu)
    records[key]['train_step_seconds'] = dict(w, times=wall, warmup_times=warm)
    records[key]['train_step_cpu_seconds'] = dict(c, times=cpu)
    records[key]['train_epoch_seconds'] = {
        'median': w['median'] * steps_per_epoch,
        'q25': w['q25'] * steps_per_epoch, 'q75': w['q75'] * steps_per_epoch,
        'steps_per_epoch': steps_per_epoch}

  log(f'[xla {xla}] timing evaluation batches at batch {eb}')
  timings = _interleaved(benches, lambda b: b.test_step(eb),
                         settings['warmup'] - 1, test_repeats, log)
  for key, (wall, cpu, warm) in timings.items():
    records[key]['test_batch_seconds'] = dict(bm.summarize_times(wall),
                                              times=wall, warmup_times=warm)
    records[key]['test_batch_cpu_seconds'] = dict(bm.summarize_times(cpu),
                                                  times=cpu)
  for bench in benches.values():
    bench.forget_batch(tb)
    bench.forget_batch(eb)

  log(f'[xla {xla}] peak memory at batch {mb} on {device}')
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

  if xla in settings['largest_batch_xla']:
    method = settings['largest_batch_method']
    if method == 'auto':
      method = 'search' if device.startswith('GPU') else 'fit'
    budget = settings['budget_mib'] * 2**20
    log(f'[xla {xla}] largest batch within {settings["budget_mib"]} MiB '
        f'({method})')
    for key, bench in benches.items():
      t0 = time.perf_counter()
      known = {mb: records[key]['memory']['train_peak_bytes']}

      def probe(b, bench=bench, known=known):
        if b not in known:
          known[b] = bench.train_peak(b, device)
          bench.forget_batch(b)
        return known[b]

      if method == 'fit':
        result = bm.largest_batch_by_fit(probe, budget,
                                         settings['fit_batches'])
      else:
        # Bracket +-10% around the estimate from this process's measured peaks, then
        # bisect to 1%: each trial is a fresh process with the device capped.
        fit_b = sorted(set(settings['fit_batches']) | {mb})
        a, c, _ = bm.fit_affine(fit_b, [probe(b) for b in fit_b])
        guess = max(1, int((budget - a) / c))
        result = bm.largest_batch_by_search(
            key[0], key[1], budget_mib=settings['budget_mib'],
            jit_compile=jit, low=max(1, int(0.9 * guess)),
            high=int(1.1 * guess) + 1, granularity=max(1, guess // 100))
        result['estimate_from_fit'] = guess
      result['seconds'] = time.perf_counter() - t0
      records[key]['largest_batch'] = result
      log(f'  {key[0]} K={key[1]}: {result["batch"]} '
          f'({result["method"]}, {result["seconds"]:.0f} s)')

  del benches
  gc.collect()
  keras.backend.clear_session()
  return list(records.values())


# -- Ratios, targets and output. --------------------------------------------------


def _find(runs, flow, k, xla):
  for r in runs:
    if r['flow'] == flow and r['num_steps'] == k and r['xla'] == xla:
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


def cost_model(runs, xla, key='train_step_seconds'):
  """Fits `t = fixed + per_gradient * g` on the VAE and HVAE runs (not on Langevin)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  pts = [(r['gradients_per_train_step'], r[key]['median']) for r in runs
         if r['xla'] == xla and r['flow'] != 'langevin' and key in r]
  if len({g for g, _ in pts}) < 2:
    return None
  g, t = np.array(pts, dtype=float).T
  slope, intercept = np.polyfit(g, t, 1)
  return {'fixed_seconds': float(intercept),
          'per_gradient_seconds': float(slope),
          'fitted_on': 'vae, hvae-reference, hvae-cached',
          'points': [[float(a), float(b)] for a, b in pts]}


def memory_model(runs, xla):
  """Fits the per-example slope of peak memory: `slope = f + u * gradients` (VAE, HVAE runs).

  The slopes come from the largest-batch fits. With `f` (bytes per example outside the
  flow: encoder, final decoder pass, loss, the batch) and `u` (bytes per example kept per
  gradient evaluation for the backward pass), the largest-batch ratio Langevin / HVAE
  reference is at most `(2K u + f) / (K u + f)`, below 2 for any `f > 0`.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  pts = [(r['gradients_per_train_step'],
          r['largest_batch']['slope_bytes_per_example']) for r in runs
         if r['xla'] == xla and r['flow'] != 'langevin' and
         'slope_bytes_per_example' in (r.get('largest_batch') or {})]
  if len({g for g, _ in pts}) < 2:
    return None
  g, b = np.array(pts, dtype=float).T
  slope, intercept = np.polyfit(g, b, 1)
  return {'fixed_bytes_per_example': float(intercept),
          'bytes_per_example_per_gradient': float(slope),
          'fitted_on': 'vae, hvae-reference, hvae-cached',
          'points': [[float(a), float(c)] for a, c in pts]}


def compute_ratios(runs):
  """Langevin / HVAE ratios per (K, XLA mode), with the gradient-count ratios."""
  out = []
  for xla in sorted({r['xla'] for r in runs}):
    model = cost_model(runs, xla)
    cpu_model = cost_model(runs, xla, key='train_step_cpu_seconds')
    mem_model = memory_model(runs, xla)
    for k in sorted({r['num_steps'] for r in runs if r['flow'] == 'langevin'
                     and r['xla'] == xla}):
      lang = _find(runs, 'langevin', k, xla)
      ref = _find(runs, 'hvae-reference', k, xla)
      cached = _find(runs, 'hvae-cached', k, xla)
      row = {'num_steps': k, 'xla': xla,
             'gradient_ratio_reference': k / (2 * k),
             'gradient_ratio_cached': k / (k + 1)}
      for name, other in (('reference', ref), ('cached', cached)):
        if other is None:
          continue
        row[f'train_time_{name}'] = _ratio(
            _get(lang, 'train_step_seconds', 'median'),
            _get(other, 'train_step_seconds', 'median'))
        row[f'train_cpu_time_{name}'] = _ratio(
            _get(lang, 'train_step_cpu_seconds', 'median'),
            _get(other, 'train_step_cpu_seconds', 'median'))
        row[f'test_time_{name}'] = _ratio(
            _get(lang, 'test_batch_seconds', 'median'),
            _get(other, 'test_batch_seconds', 'median'))
        row[f'train_memory_{name}'] = _ratio(
            _get(lang, 'memory', 'train_peak_bytes'),
            _get(other, 'memory', 'train_peak_bytes'))
        row[f'test_memory_{name}'] = _ratio(
            _get(lang, 'memory', 'test_peak_bytes'),
            _get(other, 'memory', 'test_peak_bytes'))
        row[f'largest_batch_{name}'] = _ratio(
            _get(lang, 'largest_batch', 'batch'),
            _get(other, 'largest_batch', 'batch'))
      for suffix, m in (('', model), ('_cpu', cpu_model)):
        if m is not None:
          f, u = m['fixed_seconds'], m['per_gradient_seconds']
          row[f'predicted_train{suffix}_time_cached'] = (
              (f + k * u) / (f + (k + 1) * u))
          row[f'predicted_train{suffix}_time_reference'] = (
              (f + k * u) / (f + 2 * k * u))
      if mem_model is not None:
        f = mem_model['fixed_bytes_per_example']
        u = mem_model['bytes_per_example_per_gradient']
        row['largest_batch_bound_reference'] = (2 * k * u + f) / (k * u + f)
        row['largest_batch_bound_cached'] = ((k + 1) * u + f) / (k * u + f)
      out.append(row)
  return out


def evaluate_targets(ratios, k=10):
  """The issue's targets, judged on the ratios at K = `k` (else the largest K), XLA off."""
  rows = [r for r in ratios if not r['xla']]
  if not rows:
    return {}
  row = next((r for r in rows if r['num_steps'] == k),
             max(rows, key=lambda r: r['num_steps']))
  k = row['num_steps']
  def target(value, ok, text):
    return {'value': value, 'met': None if value is None else bool(ok(value)),
            'target': text}
  def near(pred):
    return (lambda v: pred is not None and abs(v / pred - 1) <= 0.05)
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
          row.get('train_cpu_time_cached'), near(pred_cpu),
          near_text(pred_cpu)),
      'train_memory_langevin_over_reference': target(
          row.get('train_memory_reference'), lambda v: v <= 0.6, '<= 0.6'),
      'largest_batch_langevin_over_reference': target(
          row.get('largest_batch_reference'), lambda v: v >= 2, '>= 2'),
  }
  t['num_steps'] = k
  return t


def _fmt(v, digits=2, unit=''):
  if v is None:
    return '–'
  return f'{v:.{digits}f}{unit}'


def _mean_load(load):
  samples = [v for _, v in load.get('samples_seconds_load1', [])]
  return sum(samples) / len(samples) if samples else float('nan')


def markdown(report):
  runs, ratios = report['runs'], report['ratios']
  env, load = report['environment'], report['load']
  s = report['settings']
  lines = ['# Figure 3: time and memory of Langevin-VAE vs HVAE', '']
  lines.append(
      f'Device: {env["device"]}; TensorFlow {env["tensorflow"]}, TFP '
      f'{env["tensorflow_probability"]}; {env["date"]}. Load average (1 min) '
      f'{load["start"][0]:.2f} at the start, {load["end"][0]:.2f} at the end, '
      f'{_mean_load(load):.2f} on average over the run (our own process adds '
      f'up to ~2), {load["cpu_count"]} logical CPUs. Preset `{s["preset"]}`'
      f'{"" if report["complete"] else " (INCOMPLETE run)"}.')
  lines.append('')
  lines.append(
      f'Training step at batch {s["train_batch"]} (median of {s["repeats"]} '
      f'timed steps after {s["warmup"]} warm-up, interleaved over models; '
      f'epoch = {s["train_images"]} images), evaluation batch {s["test_batch"]}, '
      f'peak memory at batch {s["memory_batch"]}, largest batch within '
      f'{s["budget_mib"]} MiB. XLA on: K in {s["xla_steps"]}, '
      f'{s["xla_repeats"]} timed repeats.')
  lines += ['', '## Ratios Langevin / HVAE', '',
            '| K | XLA | train time / ref | K/2K | train time / cached | K/(K+1) '
            '| predicted with fixed costs | CPU time / ref | CPU time / cached '
            '| predicted (CPU) | test time / ref | test time / cached '
            '| train peak mem / ref | / cached | largest batch / ref '
            '| bound (memory model) | largest batch / cached |',
            '|' + '---|' * 17]
  for r in ratios:
    lines.append(
        f'| {r["num_steps"]} | {"on" if r["xla"] else "off"} '
        f'| {_fmt(r.get("train_time_reference"))} '
        f'| {_fmt(r["gradient_ratio_reference"])} '
        f'| {_fmt(r.get("train_time_cached"))} '
        f'| {_fmt(r["gradient_ratio_cached"])} '
        f'| {_fmt(r.get("predicted_train_time_cached"))} '
        f'| {_fmt(r.get("train_cpu_time_reference"))} '
        f'| {_fmt(r.get("train_cpu_time_cached"))} '
        f'| {_fmt(r.get("predicted_train_cpu_time_cached"))} '
        f'| {_fmt(r.get("test_time_reference"))} '
        f'| {_fmt(r.get("test_time_cached"))} '
        f'| {_fmt(r.get("train_memory_reference"))} '
        f'| {_fmt(r.get("train_memory_cached"))} '
        f'| {_fmt(r.get("largest_batch_reference"))} '
        f'| {_fmt(r.get("largest_batch_bound_reference"))} '
        f'| {_fmt(r.get("largest_batch_cached"))} |')
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
  targets = report.get('targets') or {}
  if targets:
    lines += [f'## Targets (K = {targets["num_steps"]}, XLA off)', '']
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
  lines += ['## Runs', '',
            '| flow | K | XLA | grads / train step | grads / eval batch '
            '| train s/step (IQR) | train s/epoch | CPU s/step | eval s/batch (IQR) '
            '| train peak MiB | eval peak MiB | largest batch (method) |',
            '|' + '---|' * 12]
  for r in runs:
    ts, cpu = r.get('train_step_seconds', {}), r.get('train_step_cpu_seconds', {})
    es, mem = r.get('test_batch_seconds', {}), r.get('memory', {})
    lb = r.get('largest_batch')
    lb_text = '–' if lb is None else (
        f'{lb["batch"]} ({lb["method"]}'
        f'{"" if lb.get("verified", True) else ", NOT verified"})')
    lines.append(
        f'| {TITLES[r["flow"]]} | {r["num_steps"]} | '
        f'{"on" if r["xla"] else "off"} | {r["gradients_per_train_step"]} '
        f'| {r["gradients_per_test_batch"]} '
        f'| {_fmt(ts.get("median"), 3)} ({_fmt(ts.get("iqr"), 3)}) '
        f'| {_fmt(_get(r, "train_epoch_seconds", "median"), 1)} '
        f'| {_fmt(cpu.get("median"), 3)} '
        f'| {_fmt(es.get("median"), 3)} ({_fmt(es.get("iqr"), 3)}) '
        f'| {_fmt(_get(mem, "train_peak_bytes") and mem["train_peak_bytes"] / 2**20, 0)} '
        f'| {_fmt(_get(mem, "test_peak_bytes") and mem["test_peak_bytes"] / 2**20, 0)} '
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
  notes = list(report.get('notes') or [])
  for r in ratios:
    ref = _find(runs, 'hvae-reference', r['num_steps'], True)
    cached = _find(runs, 'hvae-cached', r['num_steps'], True)
    m = _ratio(_get(ref, 'memory', 'train_peak_bytes'),
               _get(cached, 'memory', 'train_peak_bytes'))
    if r['xla'] and r['num_steps'] > 1 and m is not None and m < 1.1:
      notes.append(
          f'XLA on, K = {r["num_steps"]}: the reference HVAE needs only '
          f'{m:.2f}x the training memory of the cached one (XLA off: 2K vs '
          'K+1 gradients\' worth). XLA merges the duplicated start-of-step '
          'gradient (same z, same weights as the previous end-of-step one) by '
          'common-subexpression elimination, so under XLA "reference" is no '
          'longer a 2K-gradient baseline, although the counter (which counts '
          'requested evaluations) still reads 2K.')
  if notes:
    lines += [''] + [f'* {n}' for n in notes]
  return '\n'.join(lines) + '\n'


def plot(report, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  runs = [r for r in report['runs'] if not r['xla']]
  ks = sorted({r['num_steps'] for r in runs if r['flow'] != 'vae'})
  flows = [f for f in FLOW_ORDER if any(r['flow'] == f for r in runs)]
  colors = {'langevin': '#d62728', 'hvae-reference': '#1f77b4',
            'hvae-cached': '#7fb2e5', 'vae': '#7f7f7f'}
  panels = [
      ('train_epoch_seconds', 'training time per epoch (s)', 1.0),
      ('memory.train_peak_bytes', f'peak memory, training batch '
       f'{report["settings"]["memory_batch"]} (MiB)', 1 / 2**20),
      ('test_batch_seconds', 'evaluation time per batch (s)', 1.0),
      ('largest_batch.batch', f'largest training batch in '
       f'{report["settings"]["budget_mib"] / 1024:g} GiB', 1.0),
  ]
  fig, axes = plt.subplots(2, 2, figsize=(11, 7))
  bar_flows = [f for f in flows if f != 'vae']
  width = 0.8 / max(1, len(bar_flows))

  def value(r, key):
    v = _get(r, *key.split('.'))
    if isinstance(v, dict):
      return v['median'], v.get('q25', v['median']), v.get('q75', v['median'])
    return v, v, v

  for ax, (key, title, scale) in zip(axes.T.flatten(), panels):
    for i, flow in enumerate(bar_flows):
      xs, ys, lo, hi = [], [], [], []
      for j, k in enumerate(ks):
        r = _find(runs, flow, k, False)
        med, q25, q75 = value(r, key) if r else (None, None, None)
        if med is None:
          continue
        xs.append(j + (i - (len(bar_flows) - 1) / 2) * width)
        ys.append(med * scale)
        lo.append((med - q25) * scale)
        hi.append((q75 - med) * scale)
      if xs:
        ax.bar(xs, ys, width, yerr=[lo, hi] if any(lo + hi) else None,
               capsize=2, color=colors[flow], label=TITLES[flow])
    vae = _find(runs, 'vae', 0, False)
    v = value(vae, key)[0] if vae is not None else None
    if v is not None:
      top = max([p.get_height() for p in ax.patches] or [0.])
      if v * scale <= 1.5 * top or not top:
        ax.axhline(v * scale, color=colors['vae'], ls='--', lw=1,
                   label='VAE (no flow)')
      else:  # off the scale of the flows' bars: say it instead of drawing it
        ax.text(0.98, 0.95, f'VAE (no flow): {v * scale:,.0f}',
                transform=ax.transAxes, ha='right', va='top', fontsize=8,
                color=colors['vae'])
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([f'K = {k}' for k in ks])
    ax.set_title(title, fontsize=10)
  axes[0, 0].legend(fontsize=8)
  env = report['environment']
  fig.suptitle(f'Langevin-VAE vs HVAE: time (left) and memory (right), XLA off; '
               f'{env["device"]}', fontsize=11)
  fig.tight_layout()
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  with results.atomic_path(path, suffix='.png') as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)


def write_outputs(report, output_dir, with_plot):
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  report['ratios'] = compute_ratios(report['runs'])
  report['targets'] = evaluate_targets(report['ratios'])
  report['memory_model'] = {
      ('xla_on' if x else 'xla_off'): memory_model(report['runs'], x)
      for x in sorted({r['xla'] for r in report['runs']})}
  report['cost_model'] = {
      ('xla_on' if x else 'xla_off'): {
          'wall': cost_model(report['runs'], x),
          'cpu': cost_model(report['runs'], x, key='train_step_cpu_seconds')}
      for x in sorted({r['xla'] for r in report['runs']})}
  results.write_json_atomic(os.path.join(output_dir, 'figure3.json'), report)
  results.write_text_atomic(os.path.join(output_dir, 'figure3.md'),
                            markdown(report))
  if with_plot:
    plot(report, os.path.join(output_dir, 'figure3.png'))


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  if FLAGS.plot:
    cli.require_matplotlib('figure3.png (--noplot skips it)')
  settings = settings_from_flags()
  output_dir = FLAGS.output_dir
  if os.path.exists(output_dir) and not os.access(output_dir, os.W_OK):
    cli.fail(f'output directory {output_dir!r} is not writable.')
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  t_start = time.perf_counter()

  load_samples = []

  def log(msg):
    elapsed = time.perf_counter() - t_start
    load_samples.append([round(elapsed, 1), os.getloadavg()[0]])
    print(f'[{elapsed:7.1f} s] {msg}', flush=True)

  images, source = _images(settings['data'])
  report = {
      'kind': 'figure3', 'complete': False, 'settings': settings,
      'environment': results.environment(), 'data_source': source,
      'load': {'start': list(os.getloadavg()), 'cpu_count': os.cpu_count(),
               'samples_seconds_load1': load_samples},
      'runs': [], 'notes': [],
  }
  if 'on' in settings['xla'] and settings['xla_steps'] != settings['steps']:
    report['notes'].append(
        f'XLA on was measured for K in {settings["xla_steps"]} only '
        f'(with {settings["xla_repeats"]} timed repeats), to fit the CPU budget.')
  for xla in settings['xla']:
    report['runs'] += measure_mode(settings, xla, images, log)
    report['load']['end'] = list(os.getloadavg())
    report['wall_seconds'] = time.perf_counter() - t_start
    write_outputs(report, output_dir, with_plot=False)
  report['complete'] = True
  report['load']['end'] = list(os.getloadavg())
  report['wall_seconds'] = time.perf_counter() - t_start
  write_outputs(report, output_dir, with_plot=FLAGS.plot)
  log(f'wrote {output_dir}/figure3.json, figure3.md'
      f'{", figure3.png" if FLAGS.plot else ""}')
  print(markdown(report))


def run():
  """Entry point of the `lvae-figure3` console script (same as `python -m experiments.figure3`)."""
  cli.use_module_doc(__doc__)
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
