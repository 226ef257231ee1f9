"""One error boundary for every command: a known failure ends as one paragraph and exit 2.

    @errors.main_boundary
    def main(argv):
      ...

    with errors.boundary():      # the same, around a block (argparse entry points)
      ...

Inside the boundary, SIGINT and SIGTERM raise `lvae_tf.filesafety.interrupts.Interrupted`
(exit 130 / 143). Known failures are reported on stderr as `error: <what happened>. <what to
do>` and end the process with exit status 2, without a traceback:

* `OSError` (and `lvae_tf.filesafety.WriteError`), with advice that fits its errno (`advice`):
  a read-only file system or no permission, a full disk, a name too long, a directory where a
  file was expected or the reverse, a missing file;
* `lvae_tf.config.ConfigError` (bad flags, configuration or `TF_CONFIG`) and
  `lvae_tf.schema.SchemaError` (a damaged file read back, named with its field);
* `lvae_tf.data.DataError` (data missing or corrupt: its message lists where it looked);
* `lvae_tf.fetch_mnist.FetchError`;
* TensorFlow's errors reading a checkpoint (`DataLossError`, `NotFoundError`, ...), which name
  the file.

Anything else is a bug and keeps its traceback. Commands that have their own exit statuses
(`experiments.table1`: 1 for a failed run) handle those first; the boundary catches what is left.
"""

import contextlib
import errno
import functools
import sys

from lvae_tf.filesafety import interrupts

__all__ = ['advice', 'boundary', 'describe', 'main_boundary', 'os_error_message']

EXIT_USAGE = 2

_ADVICE = {
    errno.EROFS: 'The file system is read-only: choose a writable directory.',
    errno.EACCES: 'Permission denied: choose a directory you can write (or fix its '
                  'permissions).',
    errno.EPERM: 'Operation not permitted: choose a directory you can write (or fix its '
                 'permissions).',
    errno.ENOSPC: 'The disk is full: free some space.',
    errno.EDQUOT: 'The disk quota is exceeded: free some space.',
    errno.ENAMETOOLONG: 'The name is too long for the file system: choose a shorter name or '
                        'path (e.g. a shorter --run_name).',
    errno.EISDIR: 'It is a directory: give the path of a file (e.g. --output=dir/figure.png).',
    errno.ENOTDIR: 'A part of the path is a file, not a directory: check the path.',
    errno.ENOENT: 'It does not exist: check the path.',
    errno.EEXIST: 'It already exists: move it away or choose another path.',
    errno.ELOOP: 'Too many symbolic links: check the path.',
    errno.EMFILE: 'Too many open files: raise the limit (ulimit -n) and run again.',
}


def advice(error):
  """What to do about an `OSError`, by its errno ('' when there is nothing specific)."""
  number = getattr(error, 'errno', None)
  if number is None and 'No space left' in str(error):
    number = errno.ENOSPC
  return _ADVICE.get(number, '')


def os_error_message(error):
  """`cannot use <path>: <cause>. <advice>` for an `OSError`."""
  path = getattr(error, 'filename', None)
  cause = getattr(error, 'strerror', None) or str(error)
  head = f'{path}: {cause}' if path else cause
  return ' '.join(part for part in (f'{head}.', advice(error)) if part)


def _tensorflow_error(error):
  module = sys.modules.get('tensorflow')
  return module is not None and isinstance(error, module.errors.OpError)


def describe(error):
  """The one-paragraph message of a known failure, or None for an unknown one (a bug)."""
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  if isinstance(error, config_lib.ConfigError):
    return str(error)
  if isinstance(error, OSError):
    return os_error_message(error)
  if _tensorflow_error(error):
    first = (str(getattr(error, 'message', '')) or str(error)).strip().splitlines()
    return (f'TensorFlow could not read or write a file: {first[0] if first else error}. '
            'A checkpoint may be truncated or damaged, or belong to another model: move the '
            'run directory away (or retrain it).')
  data = sys.modules.get('lvae_tf.data')
  if data is not None and isinstance(error, data.DataError):
    return str(error)
  fetch = sys.modules.get('lvae_tf.fetch_mnist')
  if fetch is not None and isinstance(error, fetch.FetchError):
    return str(error)
  return None


def _exit(message, status):
  sys.stderr.write(f'error: {message}\n')
  sys.exit(status)


@contextlib.contextmanager
def boundary():
  """Known failures inside the block end as `error: ...` on stderr and `sys.exit(2)`."""
  failure = None
  with interrupts.handle_signals():
    try:
      yield
    except interrupts.Interrupted as e:
      failure = e, f'interrupted by {e.signal_name}; files are written whole or not at all.', \
          e.exit_status
    except Exception as e:  # pylint: disable=broad-except
      message = describe(e)
      if message is None:
        raise
      failure = e, message, EXIT_USAGE
  if failure is not None:
    error, message, status = failure
    interrupts.release(error)  # outside the except: the traceback's frames are freed
    _exit(message, status)


def main_boundary(main):
  """Decorates an absl `main(argv)` (or any entry function) with `boundary()`."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    with boundary():
      return main(*args, **kwargs)

  return wrapped
