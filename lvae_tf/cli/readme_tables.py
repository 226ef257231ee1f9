r"""Refreshes the tables the README copies from generated files (Table 1 per machine).

    python -m experiments.readme_tables           # rewrite README.md's embedded tables
    python -m experiments.readme_tables --check   # exit 1, naming them, if any is stale

A table is embedded between `<!-- table: <path> "<heading>" -->` and `<!-- /table -->`: the
first Markdown table of `<path>` after its first heading containing `<heading>` (the quoted part
is optional). The test suite checks that every embedded table equals its source, so a number in
the README's tables is always the one the records give.
"""

import os

from absl import app
from absl import flags

from lvae_tf import cli  # pylint: disable=g-bad-import-order
from lvae_tf import results

FLAGS = flags.FLAGS

flags.DEFINE_string('document', 'README.md', 'The Markdown file whose tables to refresh; '
                    'marker paths are relative to its directory.')
flags.DEFINE_bool('check', False, 'Only check: exit 1 if a table is stale, change nothing.')


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  try:
    with open(FLAGS.document, encoding='utf-8') as f:
      text = f.read()
  except OSError as e:
    cli.fail(f'cannot read --document={FLAGS.document}: {e.strerror}')
  try:
    new_text, stale = results.refresh_embedded_tables(
        text, os.path.dirname(os.path.abspath(FLAGS.document)))
  except ValueError as e:
    cli.fail(f'{FLAGS.document}: {e}', status=1)
  if not stale:
    print(f'{FLAGS.document}: every embedded table is current.')
    return
  if FLAGS.check:
    cli.fail(f'{FLAGS.document}: stale tables: {", ".join(stale)} '
             '(python -m experiments.readme_tables refreshes them).', status=1)
  results.write_text_atomic(FLAGS.document, new_text)
  print(f'{FLAGS.document}: refreshed {", ".join(stale)}.')


def run():
  """`python -m experiments.readme_tables` (a tool of the repository; no console script)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
