"""Publishing a record: its file and its protocol's `table1.md`, under the protocol's lock.

`publish` copies a run's record into `<results_dir>/<protocol>/records/<machine>/` and rebuilds
the protocol's table from every record there; `write_tables` rebuilds every table;
`find_published` answers `--skip_if_published`. Writers take `locked(protocol directory)`, so
concurrent publishers never lose a row.
"""

import contextlib
import fcntl
import glob
import os
import warnings

from lvae_tf.filesafety import remove_orphan_temporaries
from lvae_tf.filesafety import write_json_atomic
from lvae_tf.filesafety import write_text_atomic
from lvae_tf.results.machine import machine_of
from lvae_tf.results.store import identity_name
from lvae_tf.results.store import load_records
from lvae_tf.results.store import protocol_of
from lvae_tf.results.store import record_path
from lvae_tf.results.store import run_identity
from lvae_tf.results.tables import table1_markdown

__all__ = ['find_published', 'locked', 'publish', 'write_tables']


@contextlib.contextmanager
def locked(directory):
  """Holds an exclusive `flock` on `directory` itself (no lock file) while the block runs.

  Every writer of a protocol's records and table takes it, so that concurrent publishers
  rebuild the table one after the other, each from every record written so far: the last
  table lists them all. Works on a read-only directory too (the lock is on an open file
  descriptor of it).
  """
  fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


def find_published(results_dir, record_or_config, environment):
  """The path of a published record of the same configuration on this machine, or None.

  `--skip_if_published` asks this: configurations are compared (`run_identity`), whatever
  their run names.

  Args:
    results_dir: the `--results_dir` root.
    record_or_config: a record, or a `config` dict (`dataclasses.asdict(config)`).
    environment: this machine's `environment()`.
  """
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  config = record_or_config.get('config', record_or_config)
  protocol = config_lib.protocol_name(config_lib.Config.from_dict(config))
  wanted = (protocol, machine_of({'environment': environment}), identity_name(config))
  directory = os.path.dirname(record_path(results_dir, protocol, 'x', environment))
  from lvae_tf import schema  # pylint: disable=g-import-not-at-top
  for path in sorted(glob.glob(os.path.join(glob.escape(directory), '*.json'))):
    try:
      record = schema.validate_record(schema.read_json(path), path)
    except (OSError, schema.SchemaError):
      continue  # not a record of this run (the tables warn about bad files)
    if run_identity(record) == wanted:
      return path
  return None


def publish(record, results_dir):
  """Copies a run record into `<results_dir>/<protocol>/records/<machine>/` and rebuilds that
  protocol's table (`record_path`).

  The record's file is named by its run name and, for a `--run_name` of the user's, its
  configuration (`record_stem`): a record of another configuration is never replaced; a
  record of the same configuration and name (the same run, evaluated again) is. Record and
  table are written under the protocol directory's lock (`locked`), the table rebuilt from
  every record there, so concurrent publishers never lose a row.

  Returns:
    `(record_path, table_markdown)`.
  """
  protocol = protocol_of(record)
  directory = os.path.join(results_dir, protocol)
  path = record_path(results_dir, protocol, record['run_name'], record.get('environment', {}),
                     record['config'])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with locked(directory):
    # Temporaries of this record and of the table left by a killed publish.
    remove_orphan_temporaries(os.path.dirname(path), [os.path.basename(path)])
    remove_orphan_temporaries(directory, ['table1.md'])
    write_json_atomic(path, record)
    table = table1_markdown(load_records(os.path.join(directory, 'records')))
    write_text_atomic(os.path.join(directory, 'table1.md'), table)
  return path, table


def write_tables(results_dir):
  """Rebuilds `<results_dir>/<protocol>/table1.md` for every protocol; returns their paths.

  Each protocol's records are read and its table written under the protocol directory's lock
  (`locked`), as `publish` does.
  """
  protocols = sorted({protocol_of(r) for r in load_records(results_dir)})
  paths = []
  for protocol in protocols:
    directory = os.path.join(results_dir, protocol)
    path = os.path.join(directory, 'table1.md')
    with locked(directory):
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # warned about above already
        records = [r for r in load_records(results_dir) if protocol_of(r) == protocol]
      write_text_atomic(path, table1_markdown(records))
    paths.append(path)
  return paths

