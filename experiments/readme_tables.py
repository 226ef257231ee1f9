# `python -m experiments.readme_tables` in a clone runs lvae_tf.cli.readme_tables (its --help shows that docstring).
from lvae_tf.cli.readme_tables import run  # pylint: disable=unused-import

if __name__ == '__main__':
  run()
