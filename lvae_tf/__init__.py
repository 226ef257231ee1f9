"""lvae_tf: the Quasi-symplectic Langevin VAE in TensorFlow 2 + TensorFlow Probability.

Layers (each imports only those below it):

* `lvae_tf.bijectors`: the flow steps as `tfp.bijectors.Bijector`s (pure math).
* `lvae_tf.data`: offline MNIST, checksums, binarisation, `tf.data` pipelines.
  (`lvae_tf.fetch_mnist` puts the MNIST file in place once; it imports no TensorFlow.)
* `lvae_tf.models`: Keras `VAE`, `HVAE`, `LangevinVAE`, ELBO and importance-sampled NLL.
* `lvae_tf.config`: `Config` (every field once), the presets, run and protocol names;
  `lvae_tf.config_flags` makes a flag of each field.
* `lvae_tf.callbacks`: `ResumableTraining` (checkpoints, early stopping, budget) and the
  kept checkpoints; `lvae_tf.evaluation`: resumable NLL, the NLL curve, FID/IS.
* `lvae_tf.train`: `train_and_evaluate` as its stages (build, restore or warm-start, fit,
  evaluate, publish the record).
"""

__version__ = '0.1.0'
