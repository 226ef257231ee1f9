"""One run at a time per run directory: an exclusive lock file, `<run dir>/run.lock`.

Two processes training into one run directory would both train in full and overwrite each
other's checkpoints. `RunLock` makes the second one fail at once instead:

    with runlock.RunLock(workdir):   # raises RunLockedError if another live run holds it
      ...train...

The lock is a file created with `O_CREAT | O_EXCL` (atomic, also on NFS v3+) holding the owner's
pid, host and process start time as JSON. It is removed when the `with` block exits, also on an
exception, Ctrl-C or SIGTERM (`lvae_tf.filesafety.interrupts` turns those into exceptions). A
process killed with SIGKILL leaves it behind; the next run breaks such a stale lock when its
owner is on this host and no longer alive (dead, a zombie, or its pid now belongs to a process
started later). A lock of another host is never broken: its message says how to remove it by
hand.

No TensorFlow import: the CLI can use it before TensorFlow loads.
"""

import datetime
import json
import os
import socket
import sys
import time

from lvae_tf.config import ConfigError

__all__ = ['LOCK_NAME', 'RunLock', 'RunLockedError', 'process_start_time']

LOCK_NAME = 'run.lock'


class RunLockedError(ConfigError):
  """The run directory is in use by another live run."""


def _start_ticks(pid):
  """Start time of process `pid` in clock ticks after boot (Linux), or None."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      stat = f.read()
  except OSError:
    return None
  fields = stat.rsplit(')', 1)[-1].split()  # the command name may hold spaces and ')'
  try:
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3 (the state)
  except (IndexError, ValueError):
    return None


def _state(pid):
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[-1].split()[0]
  except (OSError, IndexError):
    return None


_IMPORT_TIME = time.time()


def process_start_time():
  """When this process started (seconds since the epoch; Linux `/proc`, else module import)."""
  ticks = _start_ticks(os.getpid())
  try:
    with open('/proc/stat') as f:
      boot = next(int(line.split()[1]) for line in f if line.startswith('btime '))
    return min(boot + ticks / os.sysconf('SC_CLK_TCK'), _IMPORT_TIME)
  except (OSError, StopIteration, ValueError, TypeError):
    return _IMPORT_TIME


def _alive(owner):
  """False only when `owner` (the lock's content) is surely no longer running."""
  if owner.get('host') != socket.gethostname():
    return True  # cannot tell
  pid = owner.get('pid')
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # alive, another user's
  if _state(pid) == 'Z':
    return False  # killed, not yet reaped
  start = owner.get('start_ticks')
  ticks = _start_ticks(pid)
  return not (start is not None and ticks is not None and ticks != start)  # pid reused


def _read(path):
  try:
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    return None, None
  try:
    owner = json.loads(text)
    if not isinstance(owner, dict):
      raise ValueError('not an object')
  except ValueError:
    owner = {}  # unreadable, e.g. a holder killed between creating and writing it
  return text, owner


class RunLock:
  """Context manager holding `<directory>/run.lock` (see the module docstring).

  Args:
    directory: the run directory (must exist).

  Raises (on entry):
    RunLockedError: another live run holds the lock; the message names its pid, host and the
      lock file.
  """

  def __init__(self, directory):
    self.path = os.path.join(directory, LOCK_NAME)
    self._content = None

  def __enter__(self):
    owner = {'pid': os.getpid(), 'host': socket.gethostname(),
             'start_ticks': _start_ticks(os.getpid()),
             'since': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
             'command': ' '.join(sys.argv)[:500]}
    content = json.dumps(owner, sort_keys=True) + '\n'
    for _ in range(5):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        text, holder = _read(self.path)
        if text is None:
          continue  # released meanwhile: try again
        if not holder and time.time() - _mtime(self.path) < 10:
          holder = {'pid': '?', 'host': '?'}  # being written right now
        elif not holder or not _alive(holder):
          self._break(text)
          continue
        raise RunLockedError(
            f'the run directory {os.path.dirname(self.path)!r} is in use by another run '
            f'(pid {holder.get("pid")} on host {holder.get("host")}, since '
            f'{holder.get("since", "?")}; lock file {self.path}). Wait for it to finish, or use '
            'another --run_name. If no such process exists any more (e.g. another machine '
            f'that crashed), delete {self.path} and run again.') from None
      try:
        os.write(fd, content.encode())
      finally:
        os.close(fd)
      self._content = content
      return self
    raise RunLockedError(f'could not take the lock {self.path}: it keeps changing hands.')

  def _break(self, stale):
    """Removes the lock file if it still holds `stale` (rename first: never a live one)."""
    aside = f'{self.path}.stale-{os.getpid()}'
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return  # somebody else broke it
    text, _ = _read(aside)
    if text != stale:  # a new owner took it between our read and the rename: give it back
      try:
        os.link(aside, self.path)
      except OSError:
        pass
    else:
      sys.stderr.write(f'warning: removed the stale lock {self.path} (its process is gone): '
                       f'{stale.strip()}\n')
    os.remove(aside)

  def __exit__(self, *exc):
    self.release()
    return False

  def release(self):
    """Removes the lock file if it is still this process's."""
    if self._content is None:
      return
    text, _ = _read(self.path)
    if text == self._content:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
    self._content = None


def _mtime(path):
  try:
    return os.path.getmtime(path)
  except OSError:
    return 0.
