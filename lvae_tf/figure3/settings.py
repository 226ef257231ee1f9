"""What a Figure 3 run measures: the flows (from the registry), presets, validated `Settings`."""

import dataclasses
from typing import Tuple

from lvae_tf import config as config_lib
from lvae_tf import registry


def flow_order():
  """The registered flow variants' labels: flows with steps, then those without (the VAE)."""
  order = [v for v in registry.variants() if registry.flow(v.flow).has_steps]
  order += [v for v in registry.variants() if not registry.flow(v.flow).has_steps]
  return tuple(v.label for v in order)


def title(label):
  """A flow variant's display title (its label if it is no longer registered)."""
  return next((v.title for v in registry.variants() if v.label == label), label)


def has_steps(label):
  """Whether a flow variant has steps K (its flow's `has_steps`; True if not registered)."""
  return next((registry.flow(v.flow).has_steps for v in registry.variants()
               if v.label == label), True)


XLA_MODES = ('off', 'on')
# Training precisions (`lvae_tf.config.CHOICES`, without 'auto'); the first is the one the
# plot and the targets use.
PRECISIONS = tuple(p for p in config_lib.CHOICES['precision'] if p != 'auto')
LARGEST_BATCH_METHODS = ('auto', 'fit', 'search')
DATA = ('mnist', 'random')


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
