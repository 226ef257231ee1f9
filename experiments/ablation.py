# `python -m experiments.ablation` in a clone runs lvae_tf.cli.ablation (its --help shows that docstring).
from lvae_tf.cli.ablation import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
