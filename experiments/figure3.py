# `python -m experiments.figure3` in a clone runs lvae_tf.cli.figure3 (its --help shows that docstring).
from lvae_tf.cli.figure3 import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
