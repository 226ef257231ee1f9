"""The extension points: one registry of flows and one of data sets, name -> spec.

Every consumer reads these registries instead of keeping its own list of names: the config's
allowed values and flow-specific fields (`lvae_tf.config`), the model builder
(`lvae_tf.models.build_model`), the benchmark and Figure 3 (`lvae_tf.benchmark`,
`lvae_tf.figure3`), the tables (`lvae_tf.results`), the plots (`lvae_tf.visualize`), the data
loader (`lvae_tf.data.load_dataset`) and the Table 1 grid (`experiments/table1_grid.sh`).

    from lvae_tf import registry
    registry.register_flow(registry.FlowSpec(
        name='identity', model='my_package.models:IdentityVAE', title='Identity flow',
        gradients=lambda k: 0, color='#2ca02c',
        model_kwargs=lambda config: {'num_steps': config.num_steps}))

A flow is a `FlowSpec`: its name (the value of `Config.flow`), its Keras model (a subclass of
`lvae_tf.models.FlowVAE`, given as a class or as a lazy `'module:attribute'` path), the
bijector factory the model builds its flow with, the flow-specific config fields it reads, the
target gradients one flow pass evaluates, and its display title and colour. A flow whose
config has a variant field (HVAE's `hvae_gradient`) has one `FlowVariant` per value; each
variant is a column of the tables and a model of Figure 3, labelled `<name>-<value>`
('hvae-cached'), the label run names start with.

A data set is a `DatasetSpec`: its name (the value of `Config.dataset`), its loader, its image
shape and what the tables say of its provenance.

No TensorFlow is imported here (`lvae_tf.config` reads the registries to reject a bad flag
before TensorFlow loads): models and loaders may be import paths, resolved on first use.
The built-in flows and data sets are registered when this module is imported; a flow or data
set registered later is seen by every consumer from then on. Command-line flags list the
names registered when they are defined, so register before defining them.
"""

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Optional, Tuple, Union

__all__ = [
    'DatasetSpec',
    'FlowSpec',
    'FlowVariant',
    'dataset',
    'dataset_names',
    'flow',
    'flow_label',
    'flow_names',
    'flows',
    'register_dataset',
    'register_flow',
    'resolve',
    'unregister_dataset',
    'unregister_flow',
    'variant',
    'variants',
]

# The image shape every model takes (`lvae_tf.models.networks`).
IMAGE_SHAPE = (28, 28, 1)


def resolve(target):
  """`target` itself, or the object a `'package.module:attribute'` path names."""
  if not isinstance(target, str):
    return target
  module, _, attribute = target.partition(':')
  if not module or not attribute:
    raise ValueError(f"expected an import path 'package.module:attribute', got {target!r}.")
  obj = importlib.import_module(module)
  for part in attribute.split('.'):
    obj = getattr(obj, part)
  return obj


@dataclasses.dataclass(frozen=True)
class FlowVariant:
  """One model of a flow: a table column, a Figure 3 model, the start of a run name.

  Attributes:
    value: the value of the flow's `variant_field` that selects it ('cached'); None for a
      flow without variants.
    title: display title ('HVAE cached (K+1)').
    gradients: `K -> target-gradient evaluations of one flow pass` (Figure 3 and the
      benchmark check the bijectors' `GradientCounter` against it).
    color: matplotlib colour of its bars and lines.
    label: filled in by `FlowSpec`: `<flow>-<value>`, or the flow's name.
    flow: filled in by `FlowSpec`: the flow's name.
  """
  value: Optional[str]
  title: str
  gradients: Callable[[int], int]
  color: str = 'tab:gray'
  label: str = ''
  flow: str = ''


@dataclasses.dataclass(frozen=True)
class FlowSpec:
  """Everything the project knows about one flow (see the module docstring).

  Attributes:
    name: the value of `Config.flow` ('langevin').
    model: the Keras model class (a `lvae_tf.models.FlowVAE`), or its import path
      'package.module:Class'. `build_model` calls it with the common arguments (latent_dim,
      activation, init, output_bias, seed, gradient_counter, precision) and `model_kwargs`.
    model_kwargs: `config -> dict` of the flow's own constructor arguments (the fields in
      `reads`, K). Called with an `lvae_tf.config.Config`.
    title: display title ('Langevin-VAE'); for a flow with variants, the flow's title when
      one variant is shown alone ('HVAE').
    gradients: `K -> target gradients per pass` (flows without variants).
    color: matplotlib colour (flows without variants).
    reads: the flow-specific `Config` fields the flow reads (`lvae_tf.config.FLOW_FIELDS`).
      The others are set to their defaults in the flow's run name and protocol, so that runs
      of different flows share a protocol.
    has_steps: False for a flow without steps (K = 0 only, the VAE).
    bijector: the bijector factory of the flow (for documentation and `describe`), e.g.
      'lvae_tf.bijectors:langevin_flow'; '' for none.
    variant_field: the `Config` field that selects a variant ('hvae_gradient'), or None.
    variants: the variants (`FlowVariant`), when `variant_field` is set.
    baseline: the model every other flow's NLL is paired against in Table 1 (the VAE).
    paired_with: flows whose runs of the same K and seed each run of this flow is paired
      against in Table 1 and the convergence table (Langevin: 'hvae').
    description: one line for `describe`.
  """
  name: str
  model: Union[str, type]
  model_kwargs: Callable[[Any], Mapping[str, Any]] = lambda config: {}
  title: str = ''
  gradients: Optional[Callable[[int], int]] = None
  color: str = 'tab:gray'
  reads: Tuple[str, ...] = ()
  has_steps: bool = True
  bijector: str = ''
  variant_field: Optional[str] = None
  variants: Tuple[FlowVariant, ...] = ()
  baseline: bool = False
  paired_with: Tuple[str, ...] = ()
  description: str = ''

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name or '-' in self.name:
      raise ValueError(f'a flow name is a non-empty string without "-" (run names use "-" '
                       f'to join the label and K), got {self.name!r}.')
    if not self.title:
      object.__setattr__(self, 'title', self.name)
    if (self.variant_field is None) != (not self.variants):
      raise ValueError(f'flow {self.name!r}: give both variant_field and variants, or '
                       'neither.')
    if self.variants:
      variants = tuple(dataclasses.replace(v, label=f'{self.name}-{v.value}', flow=self.name)
                       for v in self.variants)
    else:
      if self.gradients is None:
        raise ValueError(f'flow {self.name!r}: gradients (K -> target gradients per pass) '
                         'is required.')
      variants = (FlowVariant(None, self.title, self.gradients, self.color, self.name,
                              self.name),)
    object.__setattr__(self, 'variants', variants)
    object.__setattr__(self, 'reads', tuple(self.reads))
    object.__setattr__(self, 'paired_with', tuple(self.paired_with))

  def model_class(self):
    """The model class (importing it if `model` is a path)."""
    return resolve(self.model)

  def variant_of(self, values):
    """The variant a config (an object or a dict of its fields) selects."""
    if self.variant_field is None:
      return self.variants[0]
    value = (values.get(self.variant_field) if isinstance(values, Mapping)
             else getattr(values, self.variant_field))
    for v in self.variants:
      if v.value == value:
        return v
    raise ValueError(f'flow {self.name!r}: {self.variant_field} must be one of '
                     f'{tuple(v.value for v in self.variants)}, got {value!r}.')


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Everything the project knows about one data set.

  Attributes:
    name: the value of `Config.dataset` ('fashion_mnist').
    loader: `(spec, data_dir) -> lvae_tf.data.ImageData`, or its import path. `data_dir` is
      the TFDS data directory, None for the default.
    image_shape: the shape of one image; the models take `IMAGE_SHAPE` (28, 28, 1).
    provenance: the sentence Table 1 prints about the data ('' : a generic one naming the
      data set, `describe_data`).
    classifier_metrics: the MNIST classifier behind FID/IS applies (MNIST digits).
    options: loader options (for the TFDS loader: `tfds_name`, `has_validation`,
      `binarized`, `transpose`, `omniglot`, `has_labels`).
  """
  name: str
  loader: Union[str, Callable[..., Any]]
  image_shape: Tuple[int, ...] = IMAGE_SHAPE
  provenance: str = ''
  classifier_metrics: bool = False
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name.strip():
      raise ValueError(f'a data set name is a non-empty string, got {self.name!r}.')
    if tuple(self.image_shape) != IMAGE_SHAPE:
      raise ValueError(f'data set {self.name!r}: image_shape {tuple(self.image_shape)} is not '
                       f'supported; the models take {IMAGE_SHAPE} images.')

  def load(self, data_dir=None):
    """The data set as an `lvae_tf.data.ImageData` (`loader(spec, data_dir)`)."""
    return resolve(self.loader)(self, data_dir)

  def describe_data(self):
    """The sentence Table 1 prints about the data."""
    return self.provenance or _generic_provenance(self.name)


def _generic_provenance(name):
  return (f'Dataset {name} (lvae_tf.data.load_dataset), dynamically binarised; classifier '
          'FID/IS not computed (the classifier knows MNIST digits only). ')


# -- The registries. ----------------------------------------------------------------

_FLOWS = {}
_DATASETS = {}


def register_flow(spec, replace=False):
  """Adds a flow; every consumer sees it from now on. Returns `spec`.

  Raises:
    ValueError: a flow of that name exists (unless `replace`), or a label clash.
  """
  if not isinstance(spec, FlowSpec):
    raise TypeError(f'register_flow takes a FlowSpec, got {type(spec).__name__}.')
  if spec.name in _FLOWS and not replace:
    raise ValueError(f'flow {spec.name!r} is already registered.')
  others = {v.label for name, s in _FLOWS.items() if name != spec.name for v in s.variants}
  clash = others & {v.label for v in spec.variants}
  if clash:
    raise ValueError(f'flow {spec.name!r}: labels {sorted(clash)} are already used.')
  _FLOWS[spec.name] = spec
  return spec


def unregister_flow(name):
  """Removes a flow (e.g. a test's); a KeyError if there is none of that name."""
  del _FLOWS[name]


def register_dataset(spec, replace=False):
  """Adds a data set; every consumer sees it from now on. Returns `spec`."""
  if not isinstance(spec, DatasetSpec):
    raise TypeError(f'register_dataset takes a DatasetSpec, got {type(spec).__name__}.')
  if spec.name in _DATASETS and not replace:
    raise ValueError(f'data set {spec.name!r} is already registered.')
  _DATASETS[spec.name] = spec
  return spec


def unregister_dataset(name):
  """Removes a data set; a KeyError if there is none of that name."""
  del _DATASETS[name]


def flow_names():
  """The registered flow names, in registration order (`Config.flow`'s allowed values)."""
  return tuple(_FLOWS)


def flows():
  """The registered `FlowSpec`s, in registration order."""
  return tuple(_FLOWS.values())


def flow(name):
  """The `FlowSpec` of `name`; ValueError naming the registered ones if there is none."""
  try:
    return _FLOWS[name]
  except (KeyError, TypeError):
    raise ValueError(f'unknown flow {name!r}; registered: {flow_names()}.') from None


def variants():
  """Every registered `FlowVariant` (the tables' column order: registration order)."""
  return tuple(v for s in _FLOWS.values() for v in s.variants)


def variant(label):
  """The `FlowVariant` of a label ('hvae-cached'); ValueError if none."""
  for v in variants():
    if v.label == label:
      return v
  raise ValueError(f'unknown flow {label!r}; registered: '
                   f'{tuple(v.label for v in variants())}.')


def flow_label(config):
  """The label of a config's model ('hvae-cached', 'langevin'); a `Config` or its dict.

  A flow that is no longer registered (a record of a test's flow) is labelled by its name.
  """
  name = config.get('flow') if isinstance(config, Mapping) else config.flow
  spec = _FLOWS.get(name)
  return name if spec is None else spec.variant_of(config).label


def dataset_names():
  """The registered data set names, in registration order (`Config.dataset`'s values)."""
  return tuple(_DATASETS)


def dataset(name):
  """The `DatasetSpec` of `name`; ValueError naming the registered ones if there is none."""
  try:
    return _DATASETS[name]
  except (KeyError, TypeError):
    raise ValueError(f'unknown data set {name!r}; registered: {dataset_names()}.') from None


def describe():
  """A markdown table of the registered flows and data sets (`python -m lvae_tf.registry`)."""
  lines = ['| flow | label | title | gradients per pass at K = 1, 5, 10 | model | bijector '
           '| flow-specific fields |', '|---|---|---|---|---|---|---|']
  for s in flows():
    for v in s.variants:
      model = s.model if isinstance(s.model, str) else f'{s.model.__module__}:{s.model.__name__}'
      lines.append(f'| {s.name} | {v.label} | {v.title} | '
                   f'{", ".join(str(v.gradients(k)) for k in (1, 5, 10))} | {model} | '
                   f'{s.bijector or "–"} | {", ".join(s.reads) or "–"} |')
  lines += ['', '| data set | classifier FID/IS | loader |', '|---|---|---|']
  for d in _DATASETS.values():
    loader = d.loader if isinstance(d.loader, str) else getattr(d.loader, '__name__', d.loader)
    lines.append(f'| {d.name} | {"yes" if d.classifier_metrics else "no"} | {loader} |')
  return '\n'.join(lines) + '\n'


# -- The built-in flows. --------------------------------------------------------------


def _flow_kwargs(config):
  return dict(num_steps=config.num_steps, learn_flow=config.learn_flow,
              step_size=config.step_size)


register_flow(FlowSpec(
    name='vae', model='lvae_tf.models.vaes:VAE', title='VAE', gradients=lambda k: 0,
    color='#7f7f7f', has_steps=False, baseline=True,
    description='No flow (K = 0): the bound of Kingma & Welling (2014).'))
register_flow(FlowSpec(
    name='langevin', model='lvae_tf.models.vaes:LangevinVAE', title='Langevin-VAE',
    gradients=lambda k: k, color='#d62728',
    reads=('initial_temperature', 'damping', 'damping_shape', 'min_step_size', 'step_size',
           'learn_flow'),
    model_kwargs=lambda config: dict(_flow_kwargs(config), damping=config.initial_damping(),
                                     damping_shape=config.damping_shape,
                                     min_step_size=config.min_step_size),
    bijector='lvae_tf.bijectors:langevin_flow', paired_with=('hvae',),
    description='K quasi-symplectic Langevin steps, one gradient each (docs/math.md '
                'section 1); initial_temperature sets the matched damping.'))
register_flow(FlowSpec(
    name='hvae', model='lvae_tf.models.vaes:HVAE', title='HVAE',
    reads=('hvae_gradient', 'tempering', 'initial_temperature', 'step_size', 'learn_flow'),
    model_kwargs=lambda config: dict(_flow_kwargs(config), tempering=config.tempering,
                                     initial_temperature=config.initial_temperature,
                                     gradient_mode=config.hvae_gradient),
    bijector='lvae_tf.bijectors:TemperedLeapfrog', variant_field='hvae_gradient',
    variants=(FlowVariant('reference', 'HVAE (2K grads)', lambda k: 2 * k, '#1f77b4'),
              FlowVariant('cached', 'HVAE cached (K+1)', lambda k: k + 1, '#7fb2e5')),
    description='K tempered leapfrog steps (docs/math.md section 3): 2K gradients per pass '
                '(reference) or K + 1 (cached).'))


# -- The built-in data sets. ------------------------------------------------------------

_TFDS = 'lvae_tf.data:load_tfds'


def _tfds(name, tfds_name=None, **options):
  register_dataset(DatasetSpec(name, _TFDS, options=dict(tfds_name=tfds_name or name,
                                                         **options)))


register_dataset(DatasetSpec(
    'mnist', 'lvae_tf.data:load_mnist_dataset', classifier_metrics=True,
    provenance='MNIST dynamically binarised (not comparable with the fixed binarisation). '))
register_dataset(DatasetSpec(
    'binarized_mnist', _TFDS, classifier_metrics=True,
    provenance='binarized_mnist: the fixed binarisation of Larochelle & Murray (TFDS). ',
    options=dict(tfds_name='binarized_mnist', has_validation=True, binarized=True,
                 has_labels=False)))
# Fashion-MNIST: the Debian package dataset-fashion-mnist first, else TFDS.
register_dataset(DatasetSpec('fashion_mnist', 'lvae_tf.data:load_fashion_mnist',
                             options=dict(tfds_name='fashion_mnist')))
_tfds('kmnist')
# TFDS' default config; named, because `tfds build emnist` builds all six.
_tfds('emnist', 'emnist/byclass', transpose=True)
for _config in ('byclass', 'bymerge', 'balanced', 'letters', 'digits', 'mnist'):
  _tfds(f'emnist/{_config}', transpose=True)
del _config
_tfds('omniglot', omniglot=True)


if __name__ == '__main__':
  print(describe(), end='')
