"""Resource benchmark of the flows (the paper's Figure 3): time, memory, gradient count.

The unit of measurement is one *Keras training step* (`model.make_train_function()`, the
function `fit` runs, on one batch) and one *evaluation batch* (`model.make_test_function()`,
the function `evaluate` runs), for the models `lvae_tf.models.build_model` makes:

* `time_calls`: wall-clock seconds of a call, after warm-up (tracing, XLA compilation and
  the first-run allocations happen there), several repeats; median and interquartile range.
* `peak_memory`: peak bytes held by TensorFlow's allocator on the device during one call
  (`tf.config.experimental.reset_memory_stats` + `get_memory_info`, device `GPU:0` if present
  else `CPU:0`), minus what was allocated before the call, plus the model's own variables
  (weights, optimizer slots): what a process running only this model would peak at, even
  when other models live in the same process.
* `GradientCounter`: target-gradient evaluations actually executed per step, counted by the
  flow bijectors themselves (`expected_gradients`: each flow's `FlowVariant.gradients`).
* `largest_batch_by_fit` (any device; the CPU method): peak memory is near-affine in the
  batch, so fit `peak = a + c * batch` on a few measured batches, solve for the budget, and
  verify with a run at the found size (stepping down if the verification exceeds it).
* `largest_batch_by_search` (the GPU method): a binary search whose every trial is a fresh
  subprocess (`python -m lvae_tf.benchmark trial ...`) that caps the GPU with a logical-device
  memory limit and runs a training step; out-of-memory = does not fit. Without a GPU the trial
  cannot cap the device; it then reports whether its measured peak is within the budget.
* `StepBench(precision=...)`: the model built in 'float32' or 'mixed_bfloat16' (bf16 hidden
  layers, float32 flow and loss; `lvae_tf.models.FlowVAE`).
* `profile_op_seconds`: where a step's time goes, per TensorFlow op type (Conv2DBackpropInput,
  Softplus, ...), from the TensorFlow profiler's trace of a few calls (`op_seconds` reads it).

Peak memory on the CPU needs an allocator that keeps statistics: TensorFlow's oneDNN CPU
allocator does (exact request sizes), the plain CPU allocator does not. TensorFlow turns oneDNN
on by default only on x86 CPUs with AVX-512 neural-network instructions (recent Xeons; on an
AMD EPYC, for example, it is off), so importing this module sets `TF_ENABLE_ONEDNN_OPTS=1`
unless the environment says otherwise. That takes effect only if TensorFlow is not yet
imported; `lvae_tf.figure3` and the trial subprocesses set it in time, and `peak_memory` says
what to do when the statistics are missing.

Everything here is device-agnostic; `lvae_tf.figure3` drives it.
"""

import collections.abc
import dataclasses
import json
import math
import os
import subprocess
import sys
import time

# CPU allocator statistics (`get_memory_info('CPU:0')`); read when TensorFlow is imported.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf
import tf_keras as keras

from lvae_tf import bijectors as lb
from lvae_tf import config as config_lib
from lvae_tf import models
from lvae_tf import registry
# pylint: enable=g-import-not-at-top,wrong-import-position

__all__ = [
    'FLOWS',
    'PRECISIONS',
    'StepBench',
    'expected_gradients',
    'fit_affine',
    'flow_config',
    'largest_batch_by_fit',
    'largest_batch_by_search',
    'memory_device',
    'op_seconds',
    'peak_memory',
    'profile_op_seconds',
    'summarize_times',
    'time_calls',
]

GIB = 2**30


class _Flows(collections.abc.Mapping):
  """Benchmark flow name (a registered variant's label, 'hvae-cached') -> `Config` fields."""

  def __getitem__(self, label):
    for v in registry.variants():
      if v.label == label:
        spec = registry.flow(v.flow)
        return {'flow': v.flow, **({spec.variant_field: v.value} if spec.variant_field else {})}
    raise KeyError(label)

  def __iter__(self):
    return iter(v.label for v in registry.variants())

  def __len__(self):
    return len(registry.variants())


FLOWS = _Flows()

# Keras mixed-precision policies a benchmark can build its models under.
PRECISIONS = tuple(p for p in config_lib.CHOICES['precision'] if p != 'auto')


def expected_gradients(flow, num_steps):
  """Target-gradient evaluations of one pass of benchmark flow `flow` at K (math.md section 3).

  The flow's `lvae_tf.registry.FlowVariant.gradients`: Langevin K, HVAE reference 2K, cached
  K + 1, VAE 0.
  """
  return int(registry.variant(flow).gradients(int(num_steps)))


def flow_config(flow, num_steps, **overrides):
  """The `lvae_tf.config.Config` of a benchmark flow name ('langevin', 'hvae-reference', ...)."""
  if flow not in FLOWS:
    raise ValueError(f'flow must be one of {tuple(FLOWS)}, got {flow!r}.')
  fields = FLOWS[flow]
  has_steps = registry.flow(fields['flow']).has_steps
  config = config_lib.Config(num_steps=int(num_steps) if has_steps else 0, **fields)
  config = dataclasses.replace(config, **overrides)
  config.validate()
  return config


def memory_device():
  """'GPU:0' if TensorFlow sees a GPU, else 'CPU:0'."""
  return 'GPU:0' if tf.config.list_physical_devices('GPU') else 'CPU:0'


def _sync(outputs):
  """Waits for a step's outputs (GPU execution is asynchronous)."""
  return tf.nest.map_structure(
      lambda t: t.numpy() if hasattr(t, 'numpy') else t, outputs)


def time_calls(fn, warmup=2, repeats=5):
  """Times `fn()` (which must block until done) after `warmup` untimed calls.

  Returns:
    dict with `times` (seconds of each timed call), `warmup_times` and the summary of
    `summarize_times`.
  """
  warm = []
  for _ in range(warmup):
    t0 = time.perf_counter()
    fn()
    warm.append(time.perf_counter() - t0)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return dict(summarize_times(times), times=times, warmup_times=warm)


def summarize_times(times):
  """Median, quartiles, IQR, min and max of a list of seconds."""
  t = np.asarray(times, dtype=np.float64)
  if t.size == 0:
    return {'median': float('nan'), 'q25': float('nan'), 'q75': float('nan'),
            'iqr': float('nan'), 'min': float('nan'), 'max': float('nan'),
            'n': 0}
  q25, med, q75 = np.percentile(t, [25, 50, 75])
  return {'median': float(med), 'q25': float(q25), 'q75': float(q75),
          'iqr': float(q75 - q25), 'min': float(t.min()), 'max': float(t.max()),
          'n': int(t.size)}


def op_seconds(xspace):
  """Seconds spent per TensorFlow op type in a profiler trace, summed over executor threads.

  Args:
    xspace: a `tensorflow.tsl.profiler.protobuf.xplane_pb2.XSpace` (what `tf.profiler` writes as
      `*.xplane.pb`).

  Returns:
    `{op type: seconds}`, e.g. `{'Conv2DBackpropInput': 1.2, 'Softplus': 0.4}`. Only the
    kernels the executor ran count: events on the `tf_Compute*` lines whose metadata names an
    op type (`display_name`; the executor's own regions, such as `ExecutorState::Process`,
    name none and would count their kernels twice). oneDNN's `_Mkl`/`_MklNative` prefixes are
    removed, so one op type has one key whichever kernel ran it. Kernels on two threads at
    once both count: the sum can exceed the wall time, as CPU time does. A kernel's duration
    is wall-clock time on its thread: on a loaded machine it includes waits for a core.
  """
  seconds = {}
  for plane in xspace.planes:
    types = {k: m.display_name for k, m in plane.event_metadata.items()}
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):
        continue
      for event in line.events:
        op = types.get(event.metadata_id)
        if not op:
          continue
        for prefix in ('_MklNative', '_Mkl'):
          if op.startswith(prefix):
            op = op[len(prefix):]
            break
        seconds[op] = seconds.get(op, 0.) + event.duration_ps * 1e-12
  return seconds


def profile_op_seconds(fn, logdir, calls=3):
  """Seconds per op type per call of `fn` (blocking), from `tf.profiler` traces of `calls`.

  Call `fn` once beforehand: tracing and first-run allocations would otherwise be profiled.
  The trace (TensorBoard's profile plugin reads it) stays in `logdir`.

  Returns:
    `{op type: seconds per call}` (`op_seconds`).
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  before = set(_xplane_files(logdir))
  tf.profiler.experimental.start(logdir)
  try:
    for _ in range(calls):
      fn()
  finally:
    tf.profiler.experimental.stop()
  new = sorted(set(_xplane_files(logdir)) - before)
  if not new:
    raise RuntimeError(f'the profiler wrote no trace under {logdir}.')
  xspace = xplane_pb2.XSpace()
  with open(new[-1], 'rb') as f:
    xspace.ParseFromString(f.read())
  return {op: s / calls for op, s in op_seconds(xspace).items()}


def _xplane_files(logdir):
  import glob  # pylint: disable=g-import-not-at-top
  return glob.glob(os.path.join(logdir, 'plugins', 'profile', '*', '*.xplane.pb'))


def peak_memory(fn, device=None, resident_bytes=0):
  """Peak bytes held by TF's allocator on `device` while `fn()` runs.

  Args:
    fn: a callable that runs (and blocks on) the work to measure.
    device: 'GPU:0', 'CPU:0', ...; default `memory_device()`.
    resident_bytes: memory the measured work needs that is allocated before the call
      (e.g. the model's weights and optimizer slots, `StepBench.resident_bytes()`).

  Returns:
    dict: `peak_bytes = transient_bytes + resident_bytes`, what a process holding only
    this work would peak at; `transient_bytes` (the allocator's peak during the call minus
    what was allocated when it started: activations, gradients, the batch, temporaries);
    `allocator_peak_bytes` and `before_bytes` (raw readings, which include everything
    else the process holds); `device`.
  """
  device = device or memory_device()
  try:
    tf.config.experimental.reset_memory_stats(device)
  except ValueError as e:
    raise RuntimeError(
        f'TensorFlow keeps no allocator statistics for {device} ({e}). On the CPU set '
        'TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported (importing lvae_tf.figure3 '
        'or lvae_tf.benchmark first does).') from e
  before = tf.config.experimental.get_memory_info(device)['current']
  fn()
  peak = tf.config.experimental.get_memory_info(device)['peak']
  return {'peak_bytes': int(peak - before + resident_bytes),
          'transient_bytes': int(peak - before),
          'resident_bytes': int(resident_bytes),
          'allocator_peak_bytes': int(peak), 'before_bytes': int(before),
          'device': device}


def fit_affine(batches, values):
  """Least-squares `value = intercept + slope * batch`.

  Returns:
    (intercept, slope, largest relative residual of the fit points).
  """
  b = np.asarray(batches, dtype=np.float64)
  v = np.asarray(values, dtype=np.float64)
  if b.size < 2 or np.unique(b).size < 2:
    raise ValueError(f'need >= 2 distinct batch sizes to fit, got {batches}.')
  slope, intercept = np.polyfit(b, v, 1)
  residual = np.max(np.abs(intercept + slope * b - v) / v)
  return float(intercept), float(slope), float(residual)


def largest_batch_by_fit(probe, budget_bytes, fit_batches, max_verify=4,
                         tolerance=0.02, granularity=1):
  """Largest batch whose measured peak memory fits `budget_bytes`, by an affine fit.

  Peak memory is near-affine in the batch once activations dominate (at small batches a
  batch-independent peak, e.g. the optimizer update, can hide the slope: fit on batches
  large enough). Fit `peak = a + c * batch` on `fit_batches`, solve for 99.5% of the
  budget, and verify with a run at that batch. If the run exceeds the budget, or uses less
  than `1 - tolerance` of it, the line through the two measured points nearest the
  budget (one on each side when there are both) gives the next guess, at most `max_verify`
  runs in all. The answer is the largest *measured* batch that fits.

  Args:
    probe: `batch -> peak bytes` (e.g. `StepBench.train_peak`).
    budget_bytes: the memory budget.
    fit_batches: batch sizes measured for the fit (>= 2 distinct).
    max_verify: most verification runs.
    tolerance: stop once a fitting run uses at least `1 - tolerance` of the budget.
    granularity: batches are multiples of this.

  Returns:
    dict: `batch` (the largest measured batch within the budget; 0 if none was),
    `verified` (a verification run, not just a fit point, fits and is the answer), the
    fit (`intercept_bytes`, `slope_bytes_per_example`, `max_relative_residual`), the fit
    points and the verification runs.
  """
  points = {int(b): int(probe(int(b))) for b in sorted(set(fit_batches))}
  intercept, slope, residual = fit_affine(list(points), list(points.values()))
  # Round-off leaves a constant's fitted slope at +-1e-15 or so: call that flat, too.
  if slope * (max(points) - min(points)) <= 1e-9 * max(points.values()):
    raise ValueError(f'peak memory does not grow with the batch: {points}.')
  target = 0.995 * budget_bytes
  runs = []

  def bounds():
    ok = [b for b, p in points.items() if p <= budget_bytes]
    bad = [b for b, p in points.items() if p > budget_bytes]
    return (max(ok) if ok else 0), (min(bad) if bad else None)

  a, c = intercept, slope
  for _ in range(max_verify):
    low, high = bounds()
    batch = int((target - a) / c) // granularity * granularity
    batch = max(batch, low + granularity)
    if high is not None:
      batch = min(batch, high - granularity)
    if batch <= low or batch in points:
      break
    points[batch] = peak = int(probe(batch))
    runs.append({'batch': batch, 'peak_bytes': peak,
                 'fits': peak <= budget_bytes})
    if budget_bytes >= peak >= (1 - tolerance) * budget_bytes:
      break
    # Next guess: the secant through the measured points closest to the budget.
    low, high = bounds()
    pair = [low, high] if low and high is not None else sorted(points)[-2:]
    (b0, b1) = sorted(pair)
    if points[b1] == points[b0]:
      break
    c = (points[b1] - points[b0]) / (b1 - b0)
    a = points[b0] - c * b0
    if c <= 0:
      break
  batch, _ = bounds()
  return {
      'batch': batch,
      'verified': any(r['batch'] == batch and r['fits'] for r in runs),
      'method': 'affine-fit+verify', 'budget_bytes': int(budget_bytes),
      'intercept_bytes': intercept, 'slope_bytes_per_example': slope,
      'max_relative_residual': residual,
      'fit_points': [{'batch': b, 'peak_bytes': points[b]}
                     for b in sorted(set(int(x) for x in fit_batches))],
      'verification': runs,
  }


class StepBench:
  """One model with the Keras train/test functions `fit`/`evaluate` run, and their probes.

  The model is `models.build_model(config, gradient_counter=counter)` compiled with Adamax
  (the paper's optimiser) and `jit_compile` as given. Batches come from an in-memory
  `tf.data` iterator with an unknown batch dimension (one trace serves every batch size;
  under XLA each new size compiles once). Weights change as training steps run; a
  benchmark does not care about the values.
  """

  def __init__(self, config, jit_compile=False, images=None, precision='float32'):
    """Builds, compiles and creates the variables of the model.

    Args:
      config: an `lvae_tf.config.Config` (e.g. from `flow_config`).
      jit_compile: compile the train and test steps with XLA.
      images: float32 binary images `(n, 28, 28, 1)` from which batches are cut (tiled if
        a batch is larger than `n`); default: random binary images.
      precision: 'float32' or 'mixed_bfloat16' (`PRECISIONS`), passed to `build_model`.
    """
    self.config = config
    self.jit_compile = bool(jit_compile)
    self.precision = precision
    self.counter = lb.GradientCounter()
    self.model = models.build_model(config, output_bias=-1.5,
                                    gradient_counter=self.counter, precision=precision)
    self.model.compile(
        optimizer=keras.optimizers.Adamax(config.learning_rate),
        jit_compile=self.jit_compile)
    self.model(tf.zeros([1, 28, 28, 1]))
    # Create the optimizer slots now: a first call that creates variables makes
    # `tf.function` trace the (large, second-order) training step twice.
    self.model.optimizer.build(self.model.trainable_variables)
    self._train_fn = self.model.make_train_function()
    self._test_fn = self.model.make_test_function()
    if images is None:
      rng = np.random.default_rng(config.seed)
      images = (rng.random((1000, 28, 28, 1)) < 0.13).astype(np.float32)
    self._images = np.asarray(images, dtype=np.float32)
    self._iterators = {}

  def batch(self, batch_size):
    """`batch_size` images (the first ones, tiled if needed), float32 `(b, 28, 28, 1)`."""
    n = len(self._images)
    reps = math.ceil(batch_size / n)
    x = self._images if reps == 1 else np.concatenate([self._images] * reps)
    return x[:batch_size]

  def _iterator(self, batch_size):
    if batch_size not in self._iterators:
      # `from_tensor_slices(...).batch(b)` leaves the batch dimension unknown (None).
      ds = tf.data.Dataset.from_tensor_slices(self.batch(batch_size))
      ds = ds.batch(batch_size).repeat()
      # No background threads (autotuning, injected prefetch): they would compete with
      # the measured step for the CPU, and deleting such an iterator blocks for seconds.
      options = tf.data.Options()
      options.autotune.enabled = False
      options.experimental_optimization.inject_prefetch = False
      self._iterators[batch_size] = iter(ds.with_options(options))
    return self._iterators[batch_size]

  def forget_batch(self, batch_size):
    """Frees the iterator (and its copy of the data) of one batch size."""
    self._iterators.pop(batch_size, None)

  def train_step(self, batch_size):
    """Runs one training step (blocking); returns its logs as numpy."""
    return _sync(self._train_fn(self._iterator(batch_size)))

  def test_step(self, batch_size):
    """Runs one evaluation batch (blocking); returns its logs as numpy."""
    return _sync(self._test_fn(self._iterator(batch_size)))

  def gradients_per_call(self, fn, calls=1):
    """Executed target-gradient evaluations per call of `fn` (exact integer check)."""
    self.counter.reset()
    for _ in range(calls):
      fn()
    total = int(self.counter.count.numpy())
    if total % calls:
      raise RuntimeError(f'{total} gradients over {calls} calls is not an '
                         'integer per call.')
    return total // calls

  def resident_bytes(self):
    """Bytes of the model's and the optimizer's variables (weights, slots, counters)."""
    variables = {id(v): v for v in
                 self.model.variables + self.model.optimizer.variables()}
    return int(sum(v.shape.num_elements() * v.dtype.size
                   for v in variables.values()))

  def train_memory(self, batch_size, device=None, warm=None):
    """`peak_memory` of one training step at `batch_size`.

    `warm` (default: on a GPU) runs one untimed step at this batch first, so that
    first-call allocations (cuDNN autotuning workspaces) are not counted.
    """
    device = device or memory_device()
    if warm if warm is not None else device.startswith('GPU'):
      self.train_step(batch_size)
    return peak_memory(lambda: self.train_step(batch_size), device,
                       self.resident_bytes())

  def test_memory(self, batch_size, device=None, warm=None):
    """`peak_memory` of one evaluation batch at `batch_size` (`warm` as `train_memory`)."""
    device = device or memory_device()
    if warm if warm is not None else device.startswith('GPU'):
      self.test_step(batch_size)
    return peak_memory(lambda: self.test_step(batch_size), device,
                       self.resident_bytes())

  def train_peak(self, batch_size, device=None):
    """Peak allocator bytes of one training step at `batch_size`.

    The function is traced once for every batch size; under XLA the first call at a new
    size also compiles (the compiler's own memory is not TF allocator memory).
    """
    return self.train_memory(batch_size, device)['peak_bytes']

  def test_peak(self, batch_size, device=None):
    """Peak bytes of one evaluation batch at `batch_size` (see `peak_memory`)."""
    return self.test_memory(batch_size, device)['peak_bytes']


# -- Largest batch by a subprocess search (GPU). ------------------------------

_FITS, _OOM = 0, 3


def _trial_main(spec):
  """Subprocess body: cap the GPU (if any), run train steps at one batch, report."""
  spec = json.loads(spec)
  gpus = tf.config.list_physical_devices('GPU')
  capped = False
  if gpus:
    tf.config.set_logical_device_configuration(
        gpus[0], [tf.config.LogicalDeviceConfiguration(
            memory_limit=int(spec['budget_mib']))])
    capped = True
  config = flow_config(spec['flow'], spec['num_steps'],
                       **spec.get('overrides', {}))
  try:
    bench = StepBench(config, jit_compile=spec['jit_compile'],
                      precision=spec.get('precision', 'float32'))
    peak = bench.train_memory(spec['batch'], warm=True)['peak_bytes']
  except (tf.errors.OpError, MemoryError) as e:
    # Out of memory is ResourceExhaustedError, but cuDNN/cuBLAS allocation failures can
    # surface as Internal/Unknown errors; any other error is re-raised.
    message = str(e)
    if not (isinstance(e, (tf.errors.ResourceExhaustedError, MemoryError)) or
            any(w in message.lower() for w in ('out of memory', 'oom',
                                               'alloc'))):
      raise
    print(json.dumps({'fits': False, 'oom': True, 'capped': capped,
                      'error': message.strip().splitlines()[0][:300]}))
    return _OOM
  fits = True if capped else peak <= spec['budget_mib'] * 2**20
  print(json.dumps({'fits': fits, 'oom': False, 'capped': capped,
                    'peak_bytes': peak}))
  return _FITS


def _run_trial(spec, timeout):
  """Runs `_trial_main(spec)` in a fresh process; returns its JSON report (+ `batch`)."""
  cmd = [sys.executable, '-m', 'lvae_tf.benchmark', 'trial', json.dumps(spec)]
  # The trial imports this very copy of lvae_tf, whatever the caller's working directory.
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = [package_root] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=os.pathsep.join(path))
  env.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
  except subprocess.TimeoutExpired:
    return {'batch': spec['batch'], 'fits': False, 'error': 'timeout'}
  result = None
  for line in reversed(proc.stdout.strip().splitlines()):
    try:
      result = json.loads(line)
      break
    except json.JSONDecodeError:
      continue
  if result is None:  # crashed (e.g. killed by the OOM killer, or a CUDA abort)
    tail = (proc.stderr or '').strip().splitlines()[-3:]
    result = {'fits': False, 'oom': None, 'returncode': proc.returncode,
              'error': ' | '.join(tail)[:500]}
  result['batch'] = spec['batch']
  return result


def largest_batch_by_search(flow, num_steps, budget_mib=4096, jit_compile=False,
                            low=1, high=None, overrides=None, granularity=10,
                            timeout=1800, precision='float32'):
  """Largest training batch that runs within `budget_mib`, by bracketing and bisection.

  Each trial is a fresh process (`python -m lvae_tf.benchmark trial`), so no allocator
  state carries over. On a GPU the trial caps the device with
  `tf.config.set_logical_device_configuration(memory_limit=budget_mib)` and fits = no
  out-of-memory error; without a GPU it fits = measured peak <= budget.

  Args:
    flow, num_steps: benchmark flow name and K.
    budget_mib: memory budget in MiB.
    jit_compile: XLA.
    low: first guess of a batch that fits (halved until one does).
    high: first guess of a batch that does not fit (doubled until one fails); default
      `2 * low`. A good bracket (e.g. +-10% around an estimate from measured peaks) saves
      trials.
    overrides: extra `lvae_tf.config.Config` fields.
    granularity: stop when `high - low <= granularity`.
    timeout: seconds per trial.
    precision: Keras mixed-precision policy of the trial's model (`PRECISIONS`).

  Returns:
    dict `batch` (largest fitting batch found, 0 if even batch 1 fails), `method`,
    `capped_device`, and every trial.
  """
  base = dict(flow=flow, num_steps=int(num_steps), budget_mib=int(budget_mib),
              jit_compile=bool(jit_compile), overrides=overrides or {},
              precision=precision)
  trials = []

  def fits(batch):
    result = _run_trial(dict(base, batch=int(batch)), timeout)
    trials.append(result)
    return bool(result.get('fits'))

  def answer(batch):
    return {'batch': int(batch), 'method': 'subprocess-search',
            'capped_device': any(t.get('capped') for t in trials),
            'budget_bytes': int(budget_mib) * 2**20, 'trials': trials}

  low = max(1, int(low))
  high = max(low + 1, int(high or 2 * low))
  while not fits(low):
    if low == 1:
      return answer(0)
    low, high = max(1, low // 2), low
  while fits(high):
    low, high = high, 2 * high
  while high - low > granularity:
    mid = (low + high) // 2
    if fits(mid):
      low = mid
    else:
      high = mid
  return answer(low)


if __name__ == '__main__':
  if len(sys.argv) == 3 and sys.argv[1] == 'trial':
    sys.exit(_trial_main(sys.argv[2]))
  sys.stderr.write('usage: python -m lvae_tf.benchmark trial <json spec>\n')
  sys.exit(2)
