"""Writes that never leave a half-written file, and `WriteError`, which says which file failed.

* `atomic_path`: a temporary beside the target, renamed onto it on success (any writer:
  `open`, `savefig`, `save_weights`, ...); `write_text_atomic` and `write_json_atomic` on top.
* `append_text`: an append (a JSONL line) that is cut back if it fails.
* `remove_orphan_temporaries`: removes the temporaries a killed `atomic_path` left behind.
* `WriteError` / `as_write_error`: a failed write (disk full, no permission, ...) naming its file.

No TensorFlow import.
"""

import contextlib
import errno
import json
import os
import re
import tempfile

__all__ = ['WriteError', 'append_text', 'as_write_error', 'atomic_path',
           'remove_orphan_temporaries', 'write_json_atomic', 'write_text_atomic']


class WriteError(OSError):
  """A file could not be written (disk full, no permission, ...); `filename` is its path.

  The file's previous content, if any, is intact: writes go through `atomic_path` or
  `append_text`, which never leave a half-written file.
  """


def as_write_error(error, path):
  """`error` (an `OSError` or a TensorFlow I/O error) as a `WriteError` naming `path`."""
  if isinstance(error, WriteError):
    return error
  number = getattr(error, 'errno', None)
  cause = getattr(error, 'strerror', None)
  if not cause:  # TensorFlow's errors carry only a message ('...; No space left on device')
    text = str(getattr(error, 'message', error))
    cause = re.sub(r'\s*\[Op:\w+\]$', '', text.rsplit('; ', 1)[-1].strip())
    cause = cause or type(error).__name__
    if 'No space left' in cause:
      number = errno.ENOSPC
  return WriteError(number, cause, path)


@contextlib.contextmanager
def atomic_path(path, suffix=''):
  """Yields a temporary path beside `path`; on success renames it to `path`, else removes it.

  Whatever is written to the yielded path (by `open`, `savefig`, `save_weights`, ...) appears at
  `path` whole or not at all: a crash or kill never leaves a half-written file. `suffix` keeps a
  file ending that a writer needs to pick its format (e.g. '.weights.h5').
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-',
                             suffix=suffix or os.path.basename(path))
  os.close(fd)
  try:
    yield tmp
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text_atomic(path, text):
  """Writes `text` to `path` via a temporary file + `os.replace`: never half-written.

  Raises:
    WriteError: `path` could not be written (its previous content is intact).
  """
  try:
    with atomic_path(path) as tmp:
      with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
  except OSError as e:
    raise as_write_error(e, path) from e


def append_text(path, text):
  """Appends `text` to `path` whole or not at all: a failed append is cut back.

  Raises:
    WriteError: the append failed (the file is as it was before).
  """
  data = text.encode()
  try:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
  except OSError as e:
    raise as_write_error(e, path) from e
  try:
    size = os.fstat(fd).st_size
    try:
      view = memoryview(data)
      while view:
        view = view[os.write(fd, view):]
      os.fsync(fd)
    except OSError as e:
      try:
        os.ftruncate(fd, size)
      except OSError:
        pass
      raise as_write_error(e, path) from e
  finally:
    os.close(fd)


def _temporary_pattern(name):
  """What `atomic_path` names a temporary of `name` (`mkstemp`: 8 random characters)."""
  return re.compile(r'\.tmp-[a-z0-9_]{8}' + re.escape(name) + '$')


def remove_orphan_temporaries(directory, names=None, older_than=None):
  """Removes the temporaries a killed `atomic_path` left in `directory`; returns their paths.

  Only files named like `atomic_path`'s temporaries (`.tmp-XXXXXXXX<name>`; of the given target
  `names` if any) and last modified before `older_than` (default: this process's start, so a
  temporary of a write in progress elsewhere is never touched) are removed.
  """
  from lvae_tf.filesafety import runlock  # pylint: disable=g-import-not-at-top
  older_than = runlock.process_start_time() if older_than is None else older_than
  patterns = [_temporary_pattern(n) for n in names] if names else [
      re.compile(r'\.tmp-[a-z0-9_]{8}.')]
  removed = []
  try:
    entries = list(os.scandir(directory))
  except OSError:
    return removed
  for entry in entries:
    if not any(p.match(entry.name) for p in patterns):
      continue
    try:
      if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < older_than:
        os.remove(entry.path)
        removed.append(entry.path)
    except OSError:
      pass  # gone already, or not ours to remove
  return removed


def write_json_atomic(path, obj):
  """Writes `obj` as indented JSON with sorted keys (`write_text_atomic`): never half-written.

  Raises:
    WriteError: `path` could not be written (its previous content is intact).
  """
  write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')
