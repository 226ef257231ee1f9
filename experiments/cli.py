"""What the experiment scripts share: usage errors exit with status 2 and a clear message."""

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
