# `python -m experiments.table1` in a clone runs lvae_tf.cli.table1 (its --help shows that docstring).
from lvae_tf.cli.table1 import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
