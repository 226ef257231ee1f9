# `python -m experiments.train_classifier` in a clone runs lvae_tf.cli.train_classifier (its --help shows that docstring).
from lvae_tf.cli.train_classifier import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
