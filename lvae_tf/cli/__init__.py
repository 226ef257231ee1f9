"""What the experiment scripts share: usage errors exit with status 2 and a clear message."""

import importlib.util
import sys

from absl import flags


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
  """Shows `doc` in absl's --help when run as a console script (its `__main__` has no docstring)."""
  main_module = sys.modules.get('__main__')
  if main_module is not None and not main_module.__doc__:
    main_module.__doc__ = doc


def require_matplotlib(what):
  """Exits 2 at once, before any long computation, if matplotlib (a dependency) is missing."""
  if importlib.util.find_spec('matplotlib') is None:
    fail(f'{what} needs matplotlib, a dependency of lvae_tf that is missing here: '
         'pip install matplotlib (or reinstall lvae_tf).')
