# `python -m experiments.nll_curves` in a clone runs lvae_tf.cli.nll_curves (its --help shows that docstring).
from lvae_tf.cli.nll_curves import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
