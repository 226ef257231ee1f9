# `python -m experiments.op_profile` in a clone runs lvae_tf.cli.op_profile (its --help shows that docstring).
from lvae_tf.cli.op_profile import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
