"""Ctrl-C and SIGTERM as an exception that unwinds cleanly, never in the middle of a save.

    with interrupts.handle_signals():   # SIGINT, SIGTERM -> raise Interrupted
      train(...)

`Interrupted` is a `KeyboardInterrupt`: `finally` blocks and context managers run (the run lock
is released, `lvae_tf.filesafety.atomic_path` removes its temporary), and code that already
handles Ctrl-C handles it. Its `exit_status` is the shell's convention, 128 + the signal number:
130 for SIGINT, 143 for SIGTERM.

A function decorated with `@deferred()` (or a `with deferred():` block) is never cut in two: a
signal arriving inside it is raised when it returns (inside a `safe_points` section: at the next
safe point). `ResumableTraining.on_epoch_end` is one, so an
epoch's history line and checkpoint are written together or not at all.

Inside a `with safe_points():` block a signal waits for the next `raise_pending()`, a point the
code calls often where nothing is half-done: training runs in one, with a Keras callback calling
`raise_pending()` at every batch end (`lvae_tf.train`). Raised at an arbitrary point, the
exception could land inside a library's half-built object: TFP's bijector cache then printed
"Exception ignored in: WeakStructRef._cleanup ... AttributeError" on the way out. A second signal
before the next safe point raises at once, so a stuck process can still be stopped.

An interruption unwinds from wherever it struck, and its traceback keeps that code's frames alive:
during training, the `tf.data` iterators whose prefetch threads still run. Exiting with them alive
lets those threads run while the process tears TensorFlow's runtime down, which crashed the
process (SIGSEGV instead of exit 130, rarely). `release(error)` drops the traceback and collects
what it held; call it before exiting on an `Interrupted`.

Without `handle_signals` (library use, notebooks) nothing changes: Ctrl-C raises Python's own
`KeyboardInterrupt` at once and SIGTERM ends the process.
"""

import contextlib
import gc
import signal
import threading

__all__ = ['Interrupted', 'deferred', 'handle_signals', 'raise_pending', 'release',
           'safe_points']

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How many deferred and safe-points sections are being executed (nested or not).
_open_sections = {'deferred': 0, 'safe_points': 0}
_pending = None  # signal number received inside a deferred or safe-points section


class Interrupted(KeyboardInterrupt):
  """The process received SIGINT or SIGTERM.

  Attributes:
    signum: the signal number.
    signal_name: 'SIGINT' or 'SIGTERM'.
    exit_status: 128 + signum (130 for SIGINT, 143 for SIGTERM).
  """

  def __init__(self, signum):
    self.signum = int(signum)
    self.signal_name = signal.Signals(signum).name
    self.exit_status = 128 + self.signum
    super().__init__(f'interrupted by {self.signal_name}')


def _handler(signum, frame):
  del frame
  global _pending
  if _open_sections['deferred'] or (_open_sections['safe_points'] and _pending is None):
    _pending = signum
    return
  _pending = None  # a second signal in a safe-points section: raised now, not again later
  raise Interrupted(signum)


def raise_pending():
  """A safe point: raises the signal held back so far, if any (never inside a deferred section)."""
  global _pending
  if _pending is not None and not _open_sections['deferred']:
    signum, _pending = _pending, None
    raise Interrupted(signum)


def release(error):
  """Drops what an exception's tracebacks keep alive (the frames it unwound) and collects it.

  Call it outside the `except` block that caught `error` (inside it, the interpreter still holds
  the traceback). The error's message and attributes are kept, and so are its chained errors,
  without their tracebacks.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    error.__traceback__ = None
    error = error.__cause__ or error.__context__
  gc.collect()


@contextlib.contextmanager
def handle_signals():
  """SIGINT and SIGTERM raise `Interrupted` inside the block (main thread only; else no-op)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def _section_ended(exc_type):
  """Raises a held-back signal once no section holds it, unless an exception already unwinds."""
  global _pending
  if not any(_open_sections.values()) and _pending is not None:
    signum, _pending = _pending, None
    if exc_type is None:
      raise Interrupted(signum)


class _Section(contextlib.ContextDecorator):
  """Counts itself open in `_open_sections[kind]` while it runs."""
  kind = None

  def __enter__(self):
    _open_sections[self.kind] += 1
    return self

  def __exit__(self, exc_type, exc, tb):
    _open_sections[self.kind] -= 1
    _section_ended(exc_type)
    return False


class deferred(_Section):  # pylint: disable=invalid-name
  """A section that a signal handled by `handle_signals` never interrupts midway."""
  kind = 'deferred'


class safe_points(_Section):  # pylint: disable=invalid-name
  """A section where a signal handled by `handle_signals` waits for `raise_pending()`.

  A signal still held back when the section ends is raised there (unless the section is already
  ending with an exception). A second signal before the next safe point is raised at once.
  """
  kind = 'safe_points'
