"""`build_model(config)`: the Keras model a run configuration describes; `resolve_precision`.

Lives beside the model classes (not in `lvae_tf.train`) so that code which only needs a model
-- the Figure 3 benchmark, notebooks -- does not import the training loop. `config` is an
`lvae_tf.config.Config`.
"""

import tensorflow as tf

from lvae_tf import registry

__all__ = ['build_model', 'resolve_precision']


def resolve_precision(precision):
  """'auto' -> 'mixed_bfloat16' on a GPU of compute capability >= 8.0, else 'float32'.

  'auto' never picks bf16 on a CPU: on no CPU measured, the AMX-BF16 Xeon included, does it
  train faster (docs/results/precision.md). It does save memory: ask for it by name.
  """
  if precision != 'auto':
    return precision
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get(
        'compute_capability', (0, 0))
    return 'mixed_bfloat16' if tuple(capability) >= (8, 0) else 'float32'
  return 'float32'


def build_model(config, output_bias=0., gradient_counter=None, precision=None):
  """The model a config describes: the model class of the flow's `lvae_tf.registry.FlowSpec`.

  Args:
    config: an `lvae_tf.config.Config`; reads `flow`, `latent_dim`, `activation`, `init`,
      `seed`, `precision`, and the fields the flow's `FlowSpec.model_kwargs` reads (Langevin:
      `num_steps`, `learn_flow`, `step_size`, the initial damping, `damping_shape`,
      `min_step_size`; HVAE:
      `num_steps`, `learn_flow`, `step_size`, `tempering`, `initial_temperature`,
      `hvae_gradient`).
    output_bias: initial decoder output bias (logit of the mean pixel, e.g.
      `output_bias_from_images`).
    gradient_counter: an optional `lvae_tf.bijectors.GradientCounter` the flow increments
      once per target-gradient evaluation.
    precision: overrides `config.precision` (evaluation always builds a float32 model).

  Returns:
    An unbuilt model (a `FlowVAE`: `VAE`, `HVAE`, `LangevinVAE` or a registered flow's).
  """
  precision = resolve_precision(precision or config.precision)
  kwargs = dict(latent_dim=config.latent_dim, activation=config.activation,
                init=config.init, output_bias=output_bias, seed=config.seed,
                gradient_counter=gradient_counter, precision=precision)
  spec = registry.flow(config.flow)
  return spec.model_class()(**kwargs, **spec.model_kwargs(config))
