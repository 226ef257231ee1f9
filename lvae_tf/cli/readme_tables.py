r"""Refreshes the tables README.md and docs/ copy from results/ (`lvae_tf.results.documents`).

    python -m experiments.readme_tables           # README.md and docs/**/*.md, from the clone
    python -m experiments.readme_tables --check   # exit 1, naming them, if any table is stale
    python -m experiments.readme_tables --document=docs/results/table1.md

Two kinds of copy, between markers whose paths are relative to the document's directory:
`<!-- table: <file> "<heading>" -->` ... `<!-- /table -->` (the first Markdown table of
`<file>` after its first heading containing `<heading>`) and `<!-- headline: <records dir> -->`
... `<!-- /headline -->` (the headline Table 1, built from one machine's records). The test
suite checks that every copy equals its source, so a number in these tables is always the one
the records give. Every document is checked before any is written; a marker whose source is
missing exits 1 and writes nothing.
"""

import os

from absl import app
from absl import flags

from lvae_tf import cli  # pylint: disable=g-bad-import-order
from lvae_tf import filesafety
from lvae_tf import errors
from lvae_tf.results import documents as documents_lib

FLAGS = flags.FLAGS

flags.DEFINE_multi_string('document', None, 'A Markdown file whose tables to refresh (may be '
                          'repeated); marker paths are relative to its directory. Default: '
                          'README.md and every docs/**/*.md of the current directory.')
flags.DEFINE_bool('check', False, 'Only check: exit 1 if a table is stale, change nothing.')


@errors.main_boundary
def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}')
  documents = FLAGS.document
  if not documents:
    if not os.path.isfile('README.md'):
      cli.fail('no README.md in the current directory: run from the repository root, or '
               'name the files with --document.')
    documents = [os.path.relpath(p) for p in documents_lib.default_documents(os.curdir)]
  updates = []  # (document, new text, stale names), for the documents that hold a copy
  for document in documents:
    try:
      with open(document, encoding='utf-8') as f:
        text = f.read()
    except OSError as e:
      cli.fail(f'cannot read --document={document}: {e.strerror}')
    try:
      new_text, stale = documents_lib.refresh_document(
          text, os.path.dirname(os.path.abspath(document)))
    except ValueError as e:
      cli.fail(f'{document}: {e}', status=1)
    if new_text != text or '<!-- table: ' in text or '<!-- headline: ' in text:
      updates.append((document, new_text, stale))
  stale_documents = [(d, s) for d, _, s in updates if s]
  if FLAGS.check and stale_documents:
    cli.fail('; '.join(f'{d}: stale tables: {", ".join(s)}' for d, s in stale_documents) +
             ' (python -m experiments.readme_tables refreshes them).', status=1)
  for document, new_text, stale in updates:
    if stale:
      filesafety.write_text_atomic(document, new_text)
      print(f'{document}: refreshed {", ".join(stale)}.')
    else:
      print(f'{document}: every copied table is current.')


def run():
  """`python -m experiments.readme_tables` (a tool of the repository; no console script)."""
  cli.use_module_doc(__doc__)
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
