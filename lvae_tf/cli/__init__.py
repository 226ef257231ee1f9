"""The command-line entry points (the `lvae-*` console scripts) and what they share.

Each module here is one console script (`lvae-table1` is `lvae_tf.cli.table1:run`); a clone
also runs them as `python -m experiments.<name>`. What they share:

* usage errors exit with status 2 and a one-line `error: ...` (`fail`, `parse_flags`);
* `--help` lists the entry point's own flags and the configuration flags it adopts
  (`flags.adopt_module_key_flags(config_flags)`), grouped, with their defaults; `--helpfull`
  lists every flag (absl's `--help` would list only the flags of `__main__`, which for a console
  script is pip's launcher);
* TensorFlow's C++ start-up lines (`I0000 ... oneDNN ...`, `E0000 ... cuInit ...` on a
  machine without a GPU) are hidden: importing this package sets `TF_CPP_MIN_LOG_LEVEL=3` and
  holds back what `import tensorflow` writes to stderr, keeping every line that is not such a
  log line. `--verbose=3`, `TF_CPP_MIN_LOG_LEVEL` set in the environment, or absl's
  `--verbosity`/`-v` on the command line shows them all as TensorFlow prints them.
"""

import contextlib
import dataclasses
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

from absl import app
from absl import flags

# TensorFlow's C++ log lines (absl format: `I0000 00:00:1796685179.849 8215 port.cc:153] ..`)
# at INFO and WARNING, and absl's notice that they go to stderr before its logging starts.
_STARTUP_NOISE = re.compile(
    r'([IW]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] |WARNING: All log messages before '
    r'absl::InitializeLog\(\) is called are written to STDERR)')


def wants_tensorflow_log(argv=None, environ=None):
  """True if the user asked for TensorFlow's start-up log (environment, `--verbose=3`, -v)."""
  environ = os.environ if environ is None else environ
  argv = sys.argv[1:] if argv is None else argv
  return 'TF_CPP_MIN_LOG_LEVEL' in environ or any(
      re.match(r'--?(v|verbosity)(=|$)', a) or re.fullmatch(r'--verbose=3', a) for a in argv)


@contextlib.contextmanager
def stderr_filtered(pattern=_STARTUP_NOISE):
  """Holds back what is written to file descriptor 2, then writes it minus `pattern`'s lines.

  At the file-descriptor level, so C++ writes are caught too. If the body raises, everything
  is written back unfiltered.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  ok = False
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
      ok = True
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      lines = held.read().decode(errors='replace').splitlines(keepends=True)
      kept = ''.join(line for line in lines if not (ok and pattern.match(line)))
      if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
  """Runs another loader's `exec_module` inside `stderr_filtered`."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    with stderr_filtered():
      self._loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
  """Makes the first `import tensorflow` of the process run under `stderr_filtered`."""

  def find_spec(self, name, path=None, target=None):
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)  # once, and so the lookup below finds the real spec
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


def quiet_tensorflow_startup():
  """Hides TensorFlow's C++ start-up log unless `wants_tensorflow_log()` (see the docstring)."""
  if wants_tensorflow_log() or 'tensorflow' in sys.modules:
    return
  os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
  if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())


quiet_tensorflow_startup()


def fail(message, status=2):
  """Prints `error: message` to stderr and exits (2 = usage error, 1 = run failed)."""
  sys.stderr.write(f'error: {message}\n')
  sys.exit(status)


def parse_flags(argv):
  """absl flag parsing for `app.run(main, flags_parser=parse_flags)`: bad flags exit 2, not 1."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f'{e}\nRun with --helpfull for the list of flags.')


def use_module_doc(doc):
  """Makes `--help` show `doc` and the calling entry point's flags, grouped (`help_text`).

  `doc` goes to `__main__` when that has no docstring (a console script's launcher, the
  `experiments/` wrappers); the flags are the calling module's key flags.
  """
  main_module = sys.modules.get('__main__')
  if main_module is not None and not main_module.__doc__:
    main_module.__doc__ = doc
  define_help_flags(sys._getframe(1).f_globals['__name__'])  # pylint: disable=protected-access


# -- --help. -----------------------------------------------------------------------------------

# Config roles (lvae_tf.config.ROLES) -> the heading of their group in --help.
_ROLE_GROUPS = {
    'column': 'model (the Table 1 column) and seed',
    'seed': 'model (the Table 1 column) and seed',
    'training': 'training (a checkpoint resumes only with the same values)',
    'budget': 'budget (when training stops)',
    'evaluation': 'evaluation',
    'runtime': 'runtime (how the run executes, not what it computes)',
}


class _HelpFlag(app.HelpFlag):
  """`--help`/`-?`: `help_text` of one entry module on stdout, exit status 0."""

  def __init__(self, module_name):
    super().__init__()
    self.module_name = module_name

  def parse(self, arg):
    if self._parse(arg):
      sys.stdout.write(help_text(self.module_name))
      sys.stdout.flush()
      sys.exit(0)


class _HelpshortFlag(_HelpFlag):
  NAME = 'helpshort'
  SHORT_NAME = None


def define_help_flags(module_name, flag_values=flags.FLAGS):
  """Replaces absl's `--help`/`-?`/`--helpshort` with ones showing `help_text(module_name)`."""
  app.define_help_flags()  # absl's own (--helpfull, --helpxml, ...), before app.run does
  for name in ('help', '?', 'helpshort'):
    if name in flag_values:
      delattr(flag_values, name)
  flags.DEFINE_flag(_HelpFlag(module_name), flag_values=flag_values)
  flags.DEFINE_flag(_HelpshortFlag(module_name), flag_values=flag_values)


def _value_text(value):
  if value is None:
    return 'unset'
  if isinstance(value, bool):
    return str(value).lower()
  return repr(value) if isinstance(value, str) else str(value)


def _render(flag, default):
  name = f'--[no]{flag.name}' if flag.boolean else f'--{flag.name}'
  short = f'-{flag.short_name},' if flag.short_name else ''
  text = f'{short}{name}: {flag.help}'
  if default is not None:
    text += f'\n(default: {default})'
  return flags.text_wrap(text, indent='    ', firstline_indent='  ')


def flag_groups(module_name, flag_values=flags.FLAGS):
  """`[(heading, [(flag, default text)])]` of a module's key flags, config flags by role.

  A config flag's default is its value under the `--preset` flag's current value (the
  default preset unless `--preset` came before `--help`).
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from lvae_tf import config_flags  # pylint: disable=g-import-not-at-top
  key_flags = flag_values.get_key_flags_for_module(module_name)
  fields = {config_flags.flag_name(f): f for f in dataclasses.fields(config_lib.Config)}
  own, groups = [], {}
  preset = flag_values['preset'].value if 'preset' in flag_values else None
  try:
    values = config_lib.Config.from_preset(preset) if preset in config_lib.PRESETS else None
  except config_lib.ConfigError:
    values = None
  for flag in sorted(key_flags, key=lambda f: f.name):
    field = fields.get(flag.name)
    adopted = flag_values.find_module_defining_flag(flag.name) == config_flags.__name__
    if field is None or not adopted:
      own.append((flag, flag.default_as_str))
      continue
    if field.name == 'preset':
      groups.setdefault('', []).append((flag, flag.default_as_str))
      continue
    if values is not None:
      default = f'{_value_text(getattr(values, field.name))}, from --preset={preset}'
    else:
      default = None
    groups.setdefault(_ROLE_GROUPS[field.metadata['role']], []).append((flag, default))
  name = module_name if module_name != '__main__' else os.path.basename(sys.argv[0])
  result = [(f'{name}:', own)] if own else []
  if groups:
    result.append(('configuration (lvae_tf.config.Config): the --preset\'s values; a flag '
                   'given overrides its field:', groups.pop('', [])))
  for heading in dict.fromkeys(_ROLE_GROUPS.values()):
    if heading in groups:
      result.append((f'configuration, {heading}:', groups[heading]))
  return result


def help_text(module_name, flag_values=flags.FLAGS):
  """What `--help` prints: `__main__`'s docstring, then `flag_groups`, then a --helpfull hint."""
  main_module = sys.modules.get('__main__')
  doc = (getattr(main_module, '__doc__', None) or
         f'USAGE: {os.path.basename(sys.argv[0])} [flags]').rstrip()
  lines = [doc, '', 'flags:']
  for heading, flag_list in flag_groups(module_name, flag_values):
    lines += ['', heading]
    lines += [_render(flag, default) for flag, default in flag_list]
  lines += ['', 'Try --helpfull to get a list of all flags (absl\'s and TensorFlow\'s too).', '']
  return '\n'.join(lines)


def require_matplotlib(what):
  """Exits 2 at once, before any long computation, if matplotlib (a dependency) is missing."""
  if importlib.util.find_spec('matplotlib') is None:
    fail(f'{what} needs matplotlib, a dependency of lvae_tf that is missing here: '
         'pip install matplotlib (or reinstall lvae_tf).')
