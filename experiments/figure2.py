# `python -m experiments.figure2` in a clone runs lvae_tf.cli.figure2 (its --help shows that docstring).
from lvae_tf.cli.figure2 import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
