"""`build_model(config)`: the Keras model a run configuration describes; `resolve_precision`.

Lives beside the model classes (not in `lvae_tf.train`) so that code which only needs a model
-- the Figure 3 benchmark, notebooks -- does not import the training loop. `config` is an
`lvae_tf.config.Config`.
"""

import tensorflow as tf

from lvae_tf import results
from lvae_tf.models.vaes import MODELS
from lvae_tf.models.vaes import VAE

__all__ = ['build_model', 'resolve_precision']


def _cpu_flags():
  return set(results.cpuinfo().get('flags', '').split())


def resolve_precision(precision):
  """'auto' -> 'mixed_bfloat16' where bf16 is known to be fast, else 'float32'.

  Fast: a GPU of compute capability >= 8.0 (Ampere and later), or a CPU with AMX-BF16 tiles
  (oneDNN's AMX kernels). Not a CPU with AVX512-BF16 alone: on a 2-core AMD EPYC (Zen 4)
  whose oneDNN runs bf16 natively, a Langevin-VAE K = 5 / 10 training step ran at 0.95x /
  1.09x float32's throughput at batch 1000 and 0.54x / 0.61x at batch 100 (README
  "Precision", `results/figure3/precision-avx512bf16-b1000/`). With AVX2 only bf16 is
  emulated: 0.09x-0.14x.
  """
  if precision != 'auto':
    return precision
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get(
        'compute_capability', (0, 0))
    return 'mixed_bfloat16' if tuple(capability) >= (8, 0) else 'float32'
  if 'amx_bf16' in _cpu_flags():
    return 'mixed_bfloat16'
  return 'float32'


def build_model(config, output_bias=0., gradient_counter=None, precision=None):
  """The model a config describes (registry `lvae_tf.models.MODELS`).

  Args:
    config: an `lvae_tf.config.Config`; reads `flow`, `num_steps`, `latent_dim`, `activation`,
      `init`, `seed`, `precision`, `learn_flow`, `step_size`, the initial damping and
      `damping_shape` (Langevin) and `tempering`, `initial_temperature`, `hvae_gradient`
      (HVAE).
    output_bias: initial decoder output bias (logit of the mean pixel, e.g.
      `output_bias_from_images`).
    gradient_counter: an optional `lvae_tf.bijectors.GradientCounter` the flow increments
      once per target-gradient evaluation.
    precision: overrides `config.precision` (evaluation always builds a float32 model).

  Returns:
    An unbuilt `VAE`, `HVAE` or `LangevinVAE`.
  """
  precision = resolve_precision(precision or config.precision)
  kwargs = dict(latent_dim=config.latent_dim, activation=config.activation,
                init=config.init, output_bias=output_bias, seed=config.seed,
                gradient_counter=gradient_counter, precision=precision)
  if config.flow == 'vae':
    return VAE(**kwargs)
  flow_kwargs = dict(num_steps=config.num_steps, learn_flow=config.learn_flow,
                     step_size=config.step_size)
  if config.flow == 'langevin':
    flow_kwargs.update(damping=config.initial_damping(), damping_shape=config.damping_shape)
  else:
    flow_kwargs.update(tempering=config.tempering,
                       initial_temperature=config.initial_temperature,
                       gradient_mode=config.hvae_gradient)
  return MODELS[config.flow](**kwargs, **flow_kwargs)
