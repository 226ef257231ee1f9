"""Keras models: `VAE`, `HVAE`, `LangevinVAE` (one shared ELBO/NLL path in `FlowVAE`).

`build_model(config)` makes the one a run configuration describes.
"""

from lvae_tf.models.base import FlowVAE
from lvae_tf.models.base import NonFiniteLossError
from lvae_tf.models.builder import build_model
from lvae_tf.models.networks import output_bias_from_images
from lvae_tf.models.vaes import HVAE
from lvae_tf.models.vaes import LangevinVAE
from lvae_tf.models.vaes import MODELS
from lvae_tf.models.vaes import VAE

__all__ = ['FlowVAE', 'HVAE', 'LangevinVAE', 'MODELS', 'NonFiniteLossError',
           'VAE', 'build_model', 'output_bias_from_images']
