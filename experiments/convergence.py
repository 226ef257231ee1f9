# `python -m experiments.convergence` in a clone runs lvae_tf.cli.convergence (its --help shows that docstring).
from lvae_tf.cli.convergence import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
