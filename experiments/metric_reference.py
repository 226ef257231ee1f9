# `python -m experiments.metric_reference` in a clone runs lvae_tf.cli.metric_reference (its --help shows that docstring).
from lvae_tf.cli.metric_reference import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
