"""References resolve: cited math.md sections exist, named flags exist, nothing points outside.

Fast and TensorFlow-free: the repository's text is read, nothing is imported.
"""

import dataclasses
import glob
import os
import re
import shutil
import subprocess

import pytest

from lvae_tf import config as config_lib
from lvae_tf import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_GLOBS = ('README.md', 'docs/*.md', 'notebooks/*.ipynb', 'notebooks/*.md',
              'lvae_tf/**/*.py', 'experiments/*.py', 'experiments/*.sh', 'tests/**/*.py',
              'results/**/*.md', 'Makefile', '.ci/run')


def _files():
  seen = set()
  for pattern in TEXT_GLOBS:
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
      if path not in seen and os.path.isfile(path):
        seen.add(path)
        yield path


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _math_sections():
  return {int(n) for n in re.findall(r'^## (\d+)\. ', _read(os.path.join(ROOT, 'docs',
                                                                         'math.md')), re.M)}


def test_math_md_has_numbered_sections():
  assert _math_sections() == set(range(1, 9))


def test_every_cited_math_md_section_exists():
  sections = _math_sections()
  pattern = re.compile(r'math\.md`?,?\)?\s*(?:section|s\.|sections)\s*(\d+)')
  cited = []
  for path in _files():
    for number in pattern.findall(_read(path)):
      cited.append((os.path.relpath(path, ROOT), int(number)))
  assert len(cited) > 20  # the pattern finds the citations (there are ~40)
  missing = [(p, n) for p, n in cited if n not in sections]
  assert not missing, missing


def test_nothing_cites_files_outside_the_repository():
  bad = re.compile(r'(\.\./shared|shared/notes|shared/paper|notes/math\.md|notes/data\.md)')
  hits = [(os.path.relpath(p, ROOT), m.group(0)) for p in _files()
          if not p.endswith('test_references.py') for m in bad.finditer(_read(p))]
  assert not hits, hits


def test_repository_paths_in_docs_exist():
  """Backticked or linked repository paths in README and docs name files that exist."""
  pattern = re.compile(r'[`(]((?:results|docs|lvae_tf|experiments|tests|notebooks)/'
                       r'[\w./-]*\w)[`)]')
  missing = []
  for name in ['README.md', *glob.glob(os.path.join(ROOT, 'docs', '*.md'))]:
    path = os.path.join(ROOT, name)
    for ref in pattern.findall(_read(path)):
      target = ref.split('::')[0]
      if not glob.glob(os.path.join(ROOT, target)):
        missing.append((os.path.relpath(path, ROOT), ref))
  assert not missing, missing


def _defined_flags():
  names = {config_flags.flag_name(f) for f in dataclasses.fields(config_lib.Config)}
  define = re.compile(r"DEFINE_\w+\(\s*'(\w+)'|add_argument\(\s*'--([\w-]+)'")
  for path in [*glob.glob(os.path.join(ROOT, 'experiments', '*.py')),
               os.path.join(ROOT, 'lvae_tf', 'config_flags.py'),
               os.path.join(ROOT, 'lvae_tf', 'fetch_mnist.py')]:
    names.update(n for pair in define.findall(_read(path)) for n in pair if n)
  # absl's own flags.
  names.update({'helpfull', 'help', 'verbosity', 'runslow'})
  return names


def test_flags_named_in_messages_and_docs_exist():
  """Every `--flag` mentioned in code, messages and docs is a real flag of our scripts."""
  defined = _defined_flags()
  flag = re.compile(r'(?<![\w-])--([a-z][a-z0-9_-]*[a-z0-9])')
  # Flags of other programs (pip, tfds, tensorboard, pytest, jupyter) quoted in docs.
  allowed_foreign = {'no-deps', 'upgrade', 'quiet', 'logdir', 'to', 'inplace', 'execute',
                     'user', 'extra-index-url', 'index-url', 'runslow', 'durations', 'no-sandbox',
                     'reinstall', 'force-reinstall', 'no-cache-dir', 'require-hashes',
                     'only-binary', 'dest', 'no-build-isolation', 'editable', 'hash'}
  unknown = []
  for path in _files():
    if path.endswith(('.sh', 'Makefile', '.ipynb')) or 'tests' + os.sep in path:
      continue
    for name in flag.findall(_read(path)):
      known = (name in defined or name.replace('-', '_') in defined or
               (name.startswith('no') and name[2:] in defined))  # absl: --noplot
      if not known and name not in allowed_foreign:
        unknown.append((os.path.relpath(path, ROOT), name))
  assert not unknown, unknown


@pytest.mark.skipif(shutil.which('git') is None or
                    not os.path.isdir(os.path.join(ROOT, '.git')),
                    reason='not a git checkout')
def test_gitignore_ignores_no_committed_file():
  out = subprocess.run(['git', 'ls-files', '--cached', '--ignored', '--exclude-standard'],
                       cwd=ROOT, capture_output=True, text=True, check=True)
  assert out.stdout == '', out.stdout


def test_readme_tables_are_the_committed_tables():
  """Every table the README copies from a generated file (Table 1 per machine) is that file's
  table as committed: a README number is the records' number."""
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  text = _read(os.path.join(ROOT, 'README.md'))
  assert '<!-- table: ' in text
  _, stale = results.refresh_embedded_tables(text, ROOT)
  assert not stale, (f'README tables out of date: {stale}; '
                     'run python -m experiments.readme_tables')
