"""File integrity without surprises: what a path is, and a bounded read that hashes.

`file_problem` inspects a path with `os.stat` only (nothing is opened, so a FIFO or a device
cannot block or stream forever); `read_exact` reads a file of a known size in one pass, hashing
as it goes, into a buffer of exactly that size.
"""

import hashlib
import os
import stat

from lvae_tf.data import errors

_CHUNK = 1 << 20  # Read files in 1 MiB chunks.


def file_problem(path):
  """None if `path` is a regular file (after symlinks), else what it is instead.

  Uses `os.stat`/`os.lstat` only: nothing is opened (opening a FIFO would block,
  reading a device could be endless).
  """
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    if os.path.lexists(path):
      return f'is a broken symbolic link (to {os.readlink(path)})'
    return 'does not exist'
  except NotADirectoryError:
    return 'does not exist (a parent of it is not a directory)'
  except OSError as e:
    return f'cannot be inspected ({e.strerror or e})'
  if stat.S_ISREG(mode):
    return None
  for test, what in ((stat.S_ISDIR, 'a directory'),
                     (stat.S_ISCHR, 'a character device'),
                     (stat.S_ISBLK, 'a block device'),
                     (stat.S_ISFIFO, 'a named pipe (FIFO)'),
                     (stat.S_ISSOCK, 'a socket')):
    if test(mode):
      return f'is {what}, not a regular file'
  return 'is not a regular file'


def read_exact(path, size):
  """Reads a regular file that has `size` bytes; returns (bytearray, sha256).

  One pass in 1 MiB chunks, hashing as it goes, into a buffer of exactly `size`
  bytes: memory is bounded by the expected size (which the caller checked with
  `os.stat` first), whatever the file turns out to hold.

  Raises:
    DataIntegrityError: the file does not have exactly `size` bytes (it changed
      after it was stat'ed).
  """
  digest = hashlib.sha256()
  buf = bytearray(size)
  view = memoryview(buf)
  n = 0
  with open(path, 'rb') as f:
    while n < size:
      k = f.readinto(view[n:n + _CHUNK])
      if not k:
        break
      digest.update(view[n:n + k])
      n += k
    longer = bool(f.read(1))
  view.release()
  if n != size or longer:
    raise errors.DataIntegrityError(
        f'data file {path} changed while it was read (expected {size:,} bytes, '
        f'got {"more" if longer else f"{n:,}"}); nothing was parsed.')
  return buf, digest.hexdigest()
