"""Tables that README.md and docs/ copy from results/: built, refreshed and checked.

A document marks each copied table with a pair of HTML comments. Their paths are relative to
the document's directory, so a marker's path is also the relative link a reader follows.

* `<!-- table: <file> "<heading>" -->` ... `<!-- /table -->`: the first Markdown table of
  `<file>` after its first heading containing `<heading>` (the quoted part is optional; see
  `refresh_embedded_tables`).
* `<!-- headline: <records directory> -->` ... `<!-- /headline -->`: the headline Table 1
  built from the records of one protocol on one machine (`headline_table`).

`refresh_document` rewrites both kinds; `experiments.readme_tables` is its command line, and
`tests/test_references.py` checks that every copy in the repository equals its source.
"""

import glob
import os
import re

from lvae_tf.results.machine import machine_of
from lvae_tf.results.stats import paired_nll
from lvae_tf.results.store import load_records
from lvae_tf.results.store import protocol_of

__all__ = ['default_documents', 'headline_table', 'markdown_table', 'refresh_document',
           'refresh_embedded_tables', 'refresh_headlines']

# The headline's rows: flow name in the records -> the row's title.
_HEADLINE_ROWS = {'vae': 'VAE', 'langevin': 'Langevin-VAE', 'hvae': 'HVAE'}
_PAIRED_ROW = 'Langevin-VAE − HVAE, paired by seed'

_HEADLINE = re.compile(
    r'(?P<open><!-- headline: (?P<path>[^\s"]+) -->\n)(?P<table>.*?)(?P<close><!-- /headline -->)',
    re.S)


# A table copied into a document (the README) from a generated file, between two markers:
#   <!-- table: results/table1/cpu-7d1379/table1.md "family 6 model 167" -->
#   | ... the table ... |
#   <!-- /table -->
# The quoted text, optional, picks the first table after the first heading containing it.
_EMBEDDED_TABLE = re.compile(
    r'(?P<open><!-- table: (?P<path>[^\s"]+)(?: "(?P<heading>[^"]+)")? -->\n)'
    r'(?P<table>.*?)(?P<close><!-- /table -->)', re.S)


def markdown_table(text, heading=None):
  """The first Markdown table of `text` (after the first heading containing `heading`).

  Raises:
    ValueError: no such heading, or no table after it.
  """
  if heading is not None:
    match = re.search(r'^#+ .*' + re.escape(heading) + r'.*$', text, re.M)
    if match is None:
      raise ValueError(f'no heading contains {heading!r}')
    text = text[match.end():]
  lines = text.splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith('|')), None)
  if start is None:
    raise ValueError('no Markdown table' + (f' after the heading with {heading!r}'
                                             if heading else ''))
  end = start
  while end < len(lines) and lines[end].startswith('|'):
    end += 1
  return '\n'.join(lines[start:end]) + '\n'


def refresh_embedded_tables(text, root):
  """`text` with every embedded table (see `_EMBEDDED_TABLE`) replaced by its source's table.

  Args:
    text: a document's Markdown.
    root: the directory the markers' paths are relative to.

  Returns:
    `(new_text, stale)`: `stale` lists `'path "heading"'` for each table that differed.

  Raises:
    ValueError: a marker whose file, heading or table does not exist (named in the message).
  """
  stale = []

  def replace(match):
    name = match['path'] + (f' "{match["heading"]}"' if match['heading'] else '')
    try:
      with open(os.path.join(root, match['path']), encoding='utf-8') as f:
        table = markdown_table(f.read(), match['heading'])
    except (OSError, ValueError) as e:
      raise ValueError(f'embedded table {name}: {e}') from e
    if match['table'] != table:
      stale.append(name)
    return match['open'] + table + match['close']

  return _EMBEDDED_TABLE.sub(replace, text), stale



def _cell(values):
  """`mean ± std (n)` over seeds (std with n - 1); one seed: `value (1)`."""
  if not values:
    return ''
  n = len(values)
  mean = sum(values) / n
  if n == 1:
    return f'{mean:.2f} (1)'
  std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
  return f'{mean:.2f} ± {std:.2f} ({n})'


def headline_table(records_dir):
  """The headline Table 1 of one machine's records, as Markdown.

  Rows: the VAE, the Langevin-VAE and the HVAE (test NLL in nats), then Langevin-VAE − HVAE of
  the same K and seed (`lvae_tf.results.paired_nll`); columns K = 0 (the VAE) and every K of
  the flows. A cell is the mean ± standard deviation over the seeds it has, with their number
  in parentheses; a cell of one seed shows its value and `(1)` (no spread over seeds: its
  standard error over test images is in the full `table1.md`). A line under the table names
  the protocol and the machine.

  Args:
    records_dir: a directory of run records (`*.json`, searched recursively), all of one
      protocol and one machine, e.g. `results/table1/cpu-7d1379/records/amd-epyc-2c-f25m17`.

  Raises:
    ValueError: no records; records of several protocols or machines (never averaged
      together); a flow the headline has no row for; both HVAE gradient modes; two records of
      one model and seed.
  """
  records = load_records(records_dir)
  if not records:
    raise ValueError(f'no run records under {records_dir}')
  protocols = sorted({protocol_of(r) for r in records})
  machines = sorted({machine_of(r) for r in records})
  if len(protocols) > 1 or len(machines) > 1:
    raise ValueError(f'{records_dir} holds records of {len(protocols)} protocols and '
                     f'{len(machines)} machines; a headline averages seeds of one protocol '
                     'on one machine only.')
  hvae_modes = sorted({r['config'].get('hvae_gradient') for r in records
                       if r['config']['flow'] == 'hvae'})
  if len(hvae_modes) > 1:
    raise ValueError(f'{records_dir} holds HVAE records of both gradient modes {hvae_modes}; '
                     'the headline has one HVAE row.')
  runs = {}  # (flow, K) -> {seed: record}
  for r in records:
    c = r['config']
    if c['flow'] not in _HEADLINE_ROWS:
      raise ValueError(f'{r.get("run_name")}: flow {c["flow"]!r} has no headline row '
                       f'(expected one of {sorted(_HEADLINE_ROWS)}).')
    seeds = runs.setdefault((c['flow'], c['num_steps']), {})
    if c['seed'] in seeds:
      raise ValueError(f'two records of {c["flow"]} K={c["num_steps"]} seed {c["seed"]} under '
                       f'{records_dir}: {seeds[c["seed"]].get("run_name")} and '
                       f'{r.get("run_name")}.')
    seeds[c['seed']] = r
  ks = sorted({k for _, k in runs})
  lines = ['| test NLL (nats) | ' + ' | '.join(f'K = {k}' for k in ks) + ' |',
           '|---' * (len(ks) + 1) + '|']
  for flow, title in _HEADLINE_ROWS.items():
    if any(f == flow for f, _ in runs):
      lines.append(f'| {title} | ' + ' | '.join(
          _cell([r['metrics']['nll_mean'] for _, r in sorted(runs.get((flow, k), {}).items())])
          for k in ks) + ' |')
  paired = {}
  for k in ks:
    langevin, hvae = runs.get(('langevin', k), {}), runs.get(('hvae', k), {})
    paired[k] = [paired_nll(langevin[s], hvae[s])[0]
                 for s in sorted(set(langevin) & set(hvae))]
  if any(paired.values()):
    lines.append(f'| {_PAIRED_ROW} | ' + ' | '.join(_cell(paired[k]) for k in ks) + ' |')
  lines += ['', f'Protocol `{protocols[0]}`; machine: {machines[0]}.']
  return '\n'.join(lines) + '\n'


def refresh_headlines(text, root):
  """`text` with every headline (see the module docstring) rebuilt from its records.

  Returns:
    `(new_text, stale)`: `stale` lists `'headline <path>'` for each headline that differed.

  Raises:
    ValueError: a marker whose records cannot make a headline (named in the message).
  """
  stale = []

  def replace(match):
    path = os.path.join(root, match['path'])
    if not os.path.isdir(path):
      raise ValueError(f'headline {match["path"]}: no such directory')
    try:
      table = headline_table(path)
    except ValueError as e:
      raise ValueError(f'headline {match["path"]}: {e}') from e
    if match['table'] != table:
      stale.append(f'headline {match["path"]}')
    return match['open'] + table + match['close']

  return _HEADLINE.sub(replace, text), stale


def refresh_document(text, root):
  """Both kinds of copied table in `text` refreshed; `(new_text, stale names)`.

  Args:
    text: a document's Markdown.
    root: the directory the markers' paths are relative to (the document's own).

  Raises:
    ValueError: a marker whose source does not exist or makes no table.
  """
  text, stale_tables = refresh_embedded_tables(text, root)
  text, stale_headlines = refresh_headlines(text, root)
  return text, stale_tables + stale_headlines


def default_documents(root):
  """README.md and every Markdown file under docs/ of the checkout at `root`, sorted."""
  return [os.path.join(root, 'README.md'),
          *sorted(glob.glob(os.path.join(root, 'docs', '**', '*.md'), recursive=True))]
