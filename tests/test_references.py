"""References resolve: cited math.md sections exist, named flags exist, links and paths exist,
nothing points outside, and every table the documents copy from results/ equals its source.

Fast and TensorFlow-free: the repository's text and records are read; only lvae_tf modules that
import no TensorFlow are imported.
"""

import ast
import dataclasses
import glob
import importlib.util
import os
import re
import shutil
import struct
import subprocess

import pytest

from lvae_tf import config as config_lib
from lvae_tf import config_flags
from lvae_tf import registry
from lvae_tf.results import documents

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_GLOBS = ('README.md', 'docs/**/*.md', 'notebooks/*.ipynb', 'notebooks/*.md', 'notebooks/*.py',
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


def _documents():
  """README.md and every Markdown file under docs/, as repository-relative paths."""
  return [os.path.relpath(p, ROOT) for p in documents.default_documents(ROOT)]


def test_repository_paths_in_docs_exist():
  """Backticked repository paths in README and docs name files that exist (from the root)."""
  pattern = re.compile(r'`((?:results|docs|lvae_tf|experiments|tests|notebooks)/[\w./-]*\w)`')
  missing = []
  for name in _documents():
    for ref in pattern.findall(_read(os.path.join(ROOT, name))):
      target = ref.split('::')[0]
      if not glob.glob(os.path.join(ROOT, target)):
        missing.append((name, ref))
  assert not missing, missing


def _github_anchor(heading):
  """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, '-' for ' '."""
  return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_github_anchor_follows_githubs_rule():
  assert _github_anchor("A run's directory") == 'a-runs-directory'
  assert _github_anchor('The Xeon with AMX-BF16: the most epochs per budget') == (
      'the-xeon-with-amx-bf16-the-most-epochs-per-budget')
  assert _github_anchor('Table 1 on 2 CPU cores') == 'table-1-on-2-cpu-cores'


def test_relative_links_in_docs_resolve():
  """Every relative Markdown link (text or image) in README and docs names a file or directory
  that exists relative to the document, and a `#section` names one of the target's headings."""
  link = re.compile(r'\]\(([^)\s]+)\)')
  checked, broken = 0, []
  for name in _documents():
    directory = os.path.dirname(os.path.join(ROOT, name))
    for target in link.findall(_read(os.path.join(ROOT, name))):
      if re.match(r'[a-z]+:', target):
        continue  # http(s), mailto: not ours to check
      path, _, anchor = target.partition('#')
      full = os.path.normpath(os.path.join(directory, path)) if path else os.path.join(ROOT, name)
      checked += 1
      if not os.path.exists(full):
        broken.append((name, target, 'no such file'))
      elif anchor:
        anchors = {_github_anchor(h) for h in re.findall(r'^#+ (.*)$', _read(full), re.M)}
        if anchor not in anchors:
          broken.append((name, target, 'no such heading'))
  assert checked > 40  # the pattern finds the links (README and docs hold ~60)
  assert not broken, broken


def _defined_flags():
  names = {config_flags.flag_name(f) for f in dataclasses.fields(config_lib.Config)}
  define = re.compile(r"DEFINE_\w+\(\s*'(\w+)'|add_argument\(\s*'--([\w-]+)'")
  for path in [*glob.glob(os.path.join(ROOT, 'experiments', '*.py')),
               *glob.glob(os.path.join(ROOT, 'lvae_tf', 'cli', '*.py')),
               os.path.join(ROOT, 'lvae_tf', 'config_flags.py'),
               os.path.join(ROOT, 'lvae_tf', 'fetch_mnist.py'),
               os.path.join(ROOT, 'notebooks', 'export_figures.py')]:
    names.update(n for pair in define.findall(_read(path)) for n in pair if n)
  # absl's own flags.
  names.update({'helpfull', 'help', 'helpshort', 'helpxml', 'verbosity', 'runslow'})
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


_IMAGE_LINK = re.compile(r'!\[[^\]]*\]\(([^)\s]+)\)')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _export_figures():
  """`notebooks/export_figures.py` as a module (notebooks/ is not a package)."""
  spec = importlib.util.spec_from_file_location(
      'export_figures', os.path.join(ROOT, 'notebooks', 'export_figures.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _png_size(path):
  """(width, height) from a PNG's IHDR chunk; AssertionError if the file is not a PNG."""
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == _PNG_SIGNATURE and head[12:16] == b'IHDR', (path, head[:16])
  return struct.unpack('>II', head[16:24])


def test_images_the_documents_show_are_committed_pngs():
  """Every image README.md, docs/ and notebooks/README.md show is a PNG in the repository, and
  the notebooks' figures (notebooks/export_figures.py) are all there: the README shows the
  sample grids and the flow outside a VAE, notebooks/README.md every exported figure."""
  shown = {}
  for name in [*_documents(), os.path.join('notebooks', 'README.md')]:
    directory = os.path.dirname(os.path.join(ROOT, name))
    for target in _IMAGE_LINK.findall(_read(os.path.join(ROOT, name))):
      assert not re.match(r'[a-z]+:', target), (name, target, 'images are files of the repo')
      path = os.path.normpath(os.path.join(directory, target))
      assert os.path.isfile(path), (name, target, 'no such file')
      width, height = _png_size(path)
      assert 100 <= width <= 4000 and 100 <= height <= 4000, (target, width, height)
      shown.setdefault(name, set()).add(os.path.relpath(path, ROOT))
  figures = {os.path.join('docs', 'figures', f)
             for names in _export_figures().FIGURES.values() for f in names}
  assert shown['README.md'] >= {os.path.join('docs', 'figures', 'sample_grids-samples.png'),
                                os.path.join('docs', 'figures', 'flow_outside_vae-banana.png')}
  assert shown[os.path.join('notebooks', 'README.md')] == figures
  # No stray figure that nothing shows or regenerates.
  committed = {os.path.relpath(p, ROOT)
               for p in glob.glob(os.path.join(ROOT, 'docs', 'figures', '*'))}
  assert committed == figures, committed ^ figures


def test_extending_md_uses_the_registry_api_as_it_is():
  """The examples of docs/extending.md parse, name only attributes `lvae_tf.registry` has, and
  give `FlowSpec` / `DatasetSpec` only fields they have (positional ones in their order)."""
  blocks = re.findall(r'```python\n(.*?)```', _read(os.path.join(ROOT, 'docs', 'extending.md')),
                      re.S)
  specs = {'FlowSpec': registry.FlowSpec, 'DatasetSpec': registry.DatasetSpec}
  used, calls = set(), []
  for block in blocks:
    for node in ast.walk(ast.parse(block)):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and
          node.value.id == 'registry'):
        used.add(node.attr)
      if isinstance(node, ast.Call) and getattr(node.func, 'attr', None) in specs:
        calls.append(node)
  assert {'register_flow', 'FlowSpec', 'register_dataset', 'DatasetSpec'} <= used, used
  assert not {name for name in used if not hasattr(registry, name)}, used
  assert len(calls) == 2, calls
  for call in calls:
    fields = [f.name for f in dataclasses.fields(specs[call.func.attr])]
    given = fields[:len(call.args)] + [k.arg for k in call.keywords]
    assert set(given) <= set(fields) and len(set(given)) == len(given), (call.func.attr, given)
    assert 'name' in given, (call.func.attr, given)


@pytest.mark.skipif(shutil.which('git') is None or
                    not os.path.isdir(os.path.join(ROOT, '.git')),
                    reason='not a git checkout')
def test_gitignore_ignores_no_committed_file():
  out = subprocess.run(['git', 'ls-files', '--cached', '--ignored', '--exclude-standard'],
                       cwd=ROOT, capture_output=True, text=True, check=True)
  assert out.stdout == '', out.stdout


_HEADLINE_RECORDS = 'results/table1/cpu-7d1379/records/amd-epyc-2c-f25m17'


def test_copied_tables_are_the_committed_tables():
  """Every table README.md and docs/ copy from results/ (Table 1 per machine, the ablations,
  the README's headline built from the records) equals its source: a number in them is the
  records' number."""
  copies = {}
  for name in _documents():
    text = _read(os.path.join(ROOT, name))
    _, stale = documents.refresh_document(text, os.path.dirname(os.path.join(ROOT, name)))
    assert not stale, (f'{name}: tables out of date: {stale}; '
                       'run python -m experiments.readme_tables')
    copies[name] = text.count('<!-- table: ') + text.count('<!-- headline: ')
  # The check has something to check: the headline and the per-machine tables are copies.
  assert f'<!-- headline: {_HEADLINE_RECORDS} -->' in _read(os.path.join(ROOT, 'README.md'))
  assert copies[os.path.join('docs', 'results', 'table1.md')] >= 4
  assert copies[os.path.join('docs', 'results', 'damping.md')] == 2


def _table_rows(markdown):
  """`{row title: [cells]}` of a Markdown table (the header row under the key '')."""
  rows = {}
  for line in markdown.splitlines():
    if line.startswith('|') and not line.startswith('|---'):
      cells = [c.strip() for c in line.strip().strip('|').split('|')]
      rows[cells[0]] = cells[1:]
  return rows


def test_headline_agrees_with_the_full_table_of_its_machine():
  """The headline (built from the records by lvae_tf.results.documents) and the Zen 4's table in
  table1.md (built by lvae_tf.results) give the same NLL and Langevin − HVAE for every cell."""
  headline = _table_rows(documents.headline_table(os.path.join(ROOT, _HEADLINE_RECORDS)))
  full = _table_rows(documents.markdown_table(
      _read(os.path.join(ROOT, 'results', 'table1', 'cpu-7d1379', 'table1.md')),
      'family 25 model 17'))
  columns = {title: i for i, title in enumerate(full[''])}
  ks = [int(k.split('= ')[1]) for k in headline['test NLL (nats)']]
  assert ks == [0, 1, 5, 10]
  compared = 0
  for row, full_row, title in (('VAE', 'NLL (nats)', 'VAE K={}'),
                               ('Langevin-VAE', 'NLL (nats)', 'Langevin-VAE K={}'),
                               ('HVAE', 'NLL (nats)', 'HVAE cached (K+1) K={}'),
                               ('Langevin-VAE − HVAE, paired by seed',
                                'NLL − HVAE of the same K and seed (paired)',
                                'Langevin-VAE K={}')):
    for k, cell in zip(ks, headline[row]):
      column = columns.get(title.format(k))
      expected = full[full_row][column] if column is not None else ''
      if cell.endswith(' (1)'):  # one seed: the full table adds ± its standard error over images
        assert expected.split(' ± ')[0] == cell[:-len(' (1)')], (row, k, cell, expected)
      else:
        assert cell == expected, (row, k, cell, expected)
      compared += bool(cell)
  assert compared == 10


def test_headline_refuses_records_it_cannot_average(tmp_path):
  zen4 = os.path.join(ROOT, _HEADLINE_RECORDS)
  xeon = os.path.join(ROOT, 'results', 'table1', 'cpu-7d1379', 'records',
                      'intel-r-xeon-r-processor-2c-f6m167')
  name = 'vae-K0-cpu-seed0-22b11a.json'
  mixed = tmp_path / 'mixed'
  mixed.mkdir()
  shutil.copy(os.path.join(zen4, name), mixed / 'zen4.json')
  shutil.copy(os.path.join(xeon, name), mixed / 'xeon.json')
  with pytest.raises(ValueError, match='2 machines'):
    documents.headline_table(str(mixed))
  twice = tmp_path / 'twice'
  twice.mkdir()
  shutil.copy(os.path.join(zen4, name), twice / 'a.json')
  shutil.copy(os.path.join(zen4, name), twice / 'b.json')
  with pytest.raises(ValueError, match='two records of vae K=0 seed 0'):
    documents.headline_table(str(twice))
  with pytest.raises(ValueError, match='no run records'):
    documents.headline_table(str(tmp_path / 'empty'))


def test_a_changed_headline_number_is_stale_and_refreshed():
  text = _read(os.path.join(ROOT, 'README.md'))
  assert '| 88.79 ± 0.42 (3) |' in text
  edited = text.replace('| 88.79 ± 0.42 (3) |', '| 88.70 ± 0.42 (3) |')
  refreshed, stale = documents.refresh_document(edited, ROOT)
  assert stale == [f'headline {_HEADLINE_RECORDS}'] and refreshed == text
  missing = text.replace(_HEADLINE_RECORDS, 'results/table1/no-such-protocol')
  with pytest.raises(ValueError, match='no such directory'):
    documents.refresh_document(missing, ROOT)
