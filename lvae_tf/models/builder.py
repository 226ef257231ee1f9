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

  On no CPU we measured is bf16 training faster, so 'auto' never picks it there (README
  "Precision"; Langevin-VAE K = 5 / 10, float32 step time over bf16 step time):
  * Intel Xeon with AMX-BF16 (oneDNN runs the convolutions and matmuls on AMX tiles): 0.98 /
    0.98 at batch 1000, 0.98 / 1.00 at batch 100 (`results/figure3/precision-amx-b1000/`,
    `-b100/`). The matmuls gain 2x and the convolutions 1.3x, while the elementwise ops
    (softplus, sigmoid, products) run at half float32's speed in bf16
    (`results/op_profile/amx-K5-b1000/`).
  * AMD EPYC Zen 4 with AVX512-BF16 (native): 0.95 / 1.09 at batch 1000, 0.54 / 0.61 at 100.
  * AMD EPYC Zen 3, AVX2 only (bf16 emulated): 0.09-0.14.
  bf16 does save memory (a third of the training peak at batch 1000): ask for it by name.
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
      `num_steps`, `learn_flow`, `step_size`, the initial damping, `damping_shape`; HVAE:
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
