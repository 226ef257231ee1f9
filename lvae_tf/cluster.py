"""A bounded start-up for multi-worker runs: every other task must answer within a timeout.

`tf.distribute.MultiWorkerMirroredStrategy` waits inside TensorFlow's C++ runtime for every task
of `TF_CONFIG`; with one worker unreachable it waits for ever, and Python's signal handlers
(Ctrl-C, SIGTERM) do not run meanwhile. `wait_for_peers` runs first, in Python: it connects to
the address of every other task until each accepts a TCP connection, for at most `timeout`
seconds, then raises a `ConfigError` naming the tasks that did not answer. Its waits are short
sleeps, so SIGINT and SIGTERM (`lvae_tf.filesafety.interrupts`) stop it at once.

Every task runs the same wait, before any of them has started TensorFlow's server on its port.
So while it waits, each task listens on its own port (a bare listening socket: the connection
of a peer's probe completes in the kernel's backlog) and closes it just before TensorFlow binds
that port. A peer probing later reaches TensorFlow's server instead.
"""

import json
import os
import socket
import time

from lvae_tf.config import ConfigError

__all__ = ['peers', 'wait_for_peers']

# How long one connection attempt may take, and the pause between rounds (seconds).
_CONNECT_TIMEOUT = 1.
_PAUSE = 0.2


def _split(address):
  host, _, port = address.rpartition(':')
  return host.strip('[]'), int(port)


def peers(tf_config):
  """`(own address or None, {'worker 1': 'host:port', ...})` of a `TF_CONFIG` dict.

  Every task of the cluster but this one (an evaluator is not part of the cluster).
  """
  cluster = tf_config.get('cluster') or {}
  task = tf_config.get('task') or {}
  own = None
  others = {}
  for kind, addresses in sorted(cluster.items()):
    for index, address in enumerate(addresses):
      if kind == task.get('type') and index == task.get('index'):
        own = address
      else:
        others[f'{kind} {index}'] = address
  return own, others


def _listen(address):
  """A listening socket on `address`'s port (all interfaces), or None if it cannot bind."""
  try:
    _, port = _split(address)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('', port))
    listener.listen(64)
    return listener
  except (OSError, ValueError):
    return None


def _answers(address):
  try:
    with socket.create_connection(_split(address), timeout=_CONNECT_TIMEOUT):
      return True
  except (OSError, ValueError):
    return False


def wait_for_peers(timeout, environ=None, clock=time.monotonic):
  """Returns once every other task of `TF_CONFIG` accepts a connection.

  Args:
    timeout: seconds to wait at most (None: 300).
    environ: the environment to read `TF_CONFIG` from (default `os.environ`).
    clock: monotonic clock (for tests).

  Raises:
    ConfigError: a task did not answer in time (named with its address), or `TF_CONFIG` has
      no cluster of several tasks (nothing to wait for is fine: returns).
  """
  text = (os.environ if environ is None else environ).get('TF_CONFIG', '')
  if not text.strip():
    return
  own, others = peers(json.loads(text))
  if not others:
    return
  timeout = 300. if timeout is None else float(timeout)
  listener = _listen(own) if own else None
  try:
    deadline = clock() + timeout
    pending = dict(others)
    while True:
      pending = {name: a for name, a in pending.items() if not _answers(a)}
      if not pending or clock() >= deadline:
        break
      time.sleep(_PAUSE)
  finally:
    if listener is not None:
      listener.close()
  if pending:
    names = ', '.join(f'{name} at {address}' for name, address in pending.items())
    raise ConfigError(
        f'multi-worker start-up: {names} did not answer within {timeout:g} s (no process '
        'accepts connections there). Start that task with the same command and its own '
        'TF_CONFIG task index, check the address and the firewall, or wait longer with '
        '--cluster_timeout.')
