"""`build_model(config)`: the Keras model a run configuration describes.

Lives beside the model classes (not in `lvae_tf.train`) so that code which only needs a model
-- the Figure 3 benchmark, notebooks -- does not import the training loop. `config` is an
`lvae_tf.config.Config` (any object with its fields will do).
"""

from lvae_tf.models.vaes import MODELS
from lvae_tf.models.vaes import VAE

__all__ = ['build_model']


def build_model(config, output_bias=0., gradient_counter=None):
  """The model a config describes (registry `lvae_tf.models.MODELS`).

  Args:
    config: an `lvae_tf.config.Config`; reads `flow`, `num_steps`, `latent_dim`, `activation`,
      `init`, `seed`, `learn_flow`, `step_size`, `damping` (Langevin) and `tempering`,
      `initial_temperature`, `hvae_gradient` (HVAE).
    output_bias: initial decoder output bias (logit of the mean pixel, e.g.
      `output_bias_from_images`).
    gradient_counter: an optional `lvae_tf.bijectors.GradientCounter` the flow increments
      once per target-gradient evaluation.

  Returns:
    An unbuilt `VAE`, `HVAE` or `LangevinVAE`.
  """
  kwargs = dict(latent_dim=config.latent_dim, activation=config.activation,
                init=config.init, output_bias=output_bias, seed=config.seed,
                gradient_counter=gradient_counter)
  if config.flow == 'vae':
    return VAE(**kwargs)
  flow_kwargs = dict(num_steps=config.num_steps, learn_flow=config.learn_flow)
  if config.step_size is not None:
    flow_kwargs['step_size'] = config.step_size
  if config.flow == 'langevin':
    flow_kwargs['damping'] = config.damping
  else:
    flow_kwargs.update(tempering=config.tempering,
                       initial_temperature=config.initial_temperature,
                       gradient_mode=config.hvae_gradient)
  return MODELS[config.flow](**kwargs, **flow_kwargs)
