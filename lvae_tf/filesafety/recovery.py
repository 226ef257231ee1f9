"""What a run finds in its directory after a crash, a kill or a full disk, and what it does.

`lvae_tf.train.train_and_evaluate` calls these, under the run lock, before it writes anything:

* `find_latest` reads every tensor of the newest `checkpoints/latest` checkpoint before anything
  is restored from it. A truncated, zeroed or missing file, or an empty or garbled `checkpoint`
  state file, makes it fall back to the newest intact one (there are up to two) with a warning
  naming the bad file; `LatestCheckpoint.repair` then points the state file at it, and
  `ResumableTraining.restore` cuts `history.jsonl` back to its epoch. If none is intact (or the
  best checkpoint is unreadable) the run stops with a `ConfigError` naming the directory to move
  away. The model and optimizer are thus never half-restored from a bad file.
* `check_budget` refuses budget flags (`--max_epochs`, `--patience`, `--train_minutes`) under
  which training would have stopped before the epochs the checkpoint already holds: the record
  of such a run would state a budget that did not produce it. A larger budget, or a finished
  run asked to go on under a looser stopping rule (stopped by `--patience=2`, run again with
  `--patience=5`), trains on: `ResumableTraining.restore` re-derives "stopped" from the rule
  asked for now.
* `remove_orphans` removes what killed writes leave behind: `.tmp-*` files of
  `lvae_tf.filesafety.atomic_path` in the run directory, and TensorFlow's checkpoint temporaries
  (`ckpt-N_temp*` directories, `checkpoint.tmp*` and `*.tempstate*` files) in `checkpoints/latest`
  and `checkpoints/best`; only those older than this process.
* `save_checkpoint` saves through a `tf.train.CheckpointManager`, reporting a failed write (disk
  full, ...) as `lvae_tf.filesafety.WriteError` naming the checkpoint; the previous checkpoint and
  the `checkpoint` state file are untouched by a failed save.

`checkpoint_epoch` (no TensorFlow) tells an interrupted command which epoch is kept.
"""

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import warnings
from typing import List, Optional, Tuple

from lvae_tf.config import ConfigError
from lvae_tf.filesafety import atomic

__all__ = ['LatestCheckpoint', 'check_budget', 'checkpoint_epoch', 'find_latest', 'prepare',
           'remove_orphans', 'save_checkpoint', 'verify_checkpoint']

_INDEX = re.compile(r'^ckpt-(\d+)\.index$')
_PREFIX = re.compile(r'^ckpt-(\d+)$')
_DATA_FILE = re.compile(r'[^\s;:\'"]*\.data-\d+-of-\d+')
# Temporaries of TensorFlow's checkpoint saving: the shard directory of a save in progress, the
# state file's atomic write, and the tensor bundle writer's files.
_TF_TEMPORARY = re.compile(r'^(ckpt-\d+_temp.*|checkpoint\.tmp[0-9a-f]+|.*\.tempstate\d+)$')


def _latest_dir(workdir):
  return os.path.join(workdir, 'checkpoints', 'latest')


def checkpoint_epoch(workdir):
  """`(epoch, prefix)` of the latest checkpoint named by its state file, or `(0, None)`.

  TensorFlow-free and never raises: for messages (what an interrupted run keeps).
  """
  directory = _latest_dir(workdir)
  try:
    with open(os.path.join(directory, 'checkpoint')) as f:
      match = re.search(r'^model_checkpoint_path: "([^"]*)"', f.read(), re.M)
  except (OSError, UnicodeDecodeError):
    return 0, None
  name = os.path.basename(match.group(1)) if match else ''
  number = _PREFIX.match(name)
  prefix = os.path.join(directory, name)
  if not number or not os.path.exists(prefix + '.index'):
    return 0, None
  return int(number.group(1)), prefix


def _first_line(error):
  text = str(getattr(error, 'message', None) or error).strip().splitlines()
  return (text[0] if text else type(error).__name__)[:300]


def verify_checkpoint(prefix):
  """None if every tensor of checkpoint `prefix` reads back, else `(bad file, reason)`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  index = prefix + '.index'
  if not os.path.exists(index):
    return index, 'missing'
  try:
    reader = tf.train.load_checkpoint(prefix)
  except Exception as e:  # pylint: disable=broad-except  (OpError, ValueError, IndexError, ...)
    named = _DATA_FILE.search(str(e))
    return (named.group(0) if named else index), _first_line(e)
  data = sorted(glob.glob(glob.escape(prefix) + '.data-*')) or [prefix + '.data-*']
  try:
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # checks each tensor's size and CRC32C
  except Exception as e:  # pylint: disable=broad-except
    named = _DATA_FILE.search(str(e))
    return (named.group(0) if named else data[0]), _first_line(e)
  return None


@dataclasses.dataclass
class LatestCheckpoint:
  """The newest intact checkpoint of `checkpoints/latest` (see `find_latest`).

  Attributes:
    directory: the `checkpoints/latest` directory.
    prefix: the newest intact checkpoint (None: there is none, the run starts at epoch 0).
    epoch: its number, the epochs it holds (0 if none).
    bad: `(file, reason)` of each newer checkpoint found unreadable.
    state_problem: what is wrong with the `checkpoint` state file (None: it names `prefix`).
    older: the older checkpoints present, oldest first (listed again by `repair`).
  """
  directory: str
  prefix: Optional[str] = None
  epoch: int = 0
  bad: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  state_problem: Optional[str] = None
  older: List[str] = dataclasses.field(default_factory=list)

  def repair(self):
    """Warns about the bad files and points the state file at `prefix` (if anything is off)."""
    if self.prefix is None or (not self.bad and self.state_problem is None):
      return
    problems = [f'{path} is unreadable ({reason})' for path, reason in self.bad]
    if self.state_problem:
      problems.append(self.state_problem)
    warnings.warn(f'{"; ".join(problems)}. Resuming from the newest intact checkpoint, '
                  f'{self.prefix} (epoch {self.epoch}); history.jsonl is cut back to that '
                  'epoch and the later epochs are trained again.', stacklevel=2)
    names = [os.path.basename(p) for p in self.older + [self.prefix]]
    atomic.write_text_atomic(
        os.path.join(self.directory, 'checkpoint'),
        f'model_checkpoint_path: "{names[-1]}"\n' +
        ''.join(f'all_model_checkpoint_paths: "{n}"\n' for n in names))


def _state_file(directory):
  """`(latest name or None, listed names, problem or None)` of the `checkpoint` state file."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, 'checkpoint')
  if not os.path.exists(path):
    return None, [], None
  try:
    state = tf.train.get_checkpoint_state(directory)
  except Exception as e:  # pylint: disable=broad-except  (ParseError, ValueError, OSError)
    return None, [], f'the checkpoint state file {path} is unreadable ({_first_line(e)})'
  if state is None or not state.model_checkpoint_path:
    return None, [], f'the checkpoint state file {path} names no checkpoint'
  listed = [os.path.basename(p) for p in state.all_model_checkpoint_paths]
  return os.path.basename(state.model_checkpoint_path), listed, None


def find_latest(workdir):
  """Finds the newest intact checkpoint of `workdir/checkpoints/latest` (reads, never writes).

  Candidates are the checkpoints the state file lists and every `ckpt-N.index` present, newest
  first; the first whose tensors all read back is chosen. Also checks that the newest best
  checkpoint reads back (it is what gets evaluated).

  Returns:
    `LatestCheckpoint`; call its `repair()` once every check has passed.

  Raises:
    ConfigError: checkpoints exist but none is intact, or the best checkpoint is unreadable.
  """
  directory = _latest_dir(workdir)
  found = LatestCheckpoint(directory)
  if not os.path.isdir(directory):
    return found
  latest, listed, found.state_problem = _state_file(directory)
  numbers = {int(m.group(1)) for m in map(_INDEX.match, os.listdir(directory)) if m}
  numbers |= {int(m.group(1)) for m in map(_PREFIX.match, listed + [latest or '']) if m}
  for number in sorted(numbers, reverse=True):
    prefix = os.path.join(directory, f'ckpt-{number}')
    problem = verify_checkpoint(prefix)
    if problem:
      found.bad.append(problem)
      continue
    found.prefix, found.epoch = prefix, number
    found.older = [os.path.join(directory, f'ckpt-{n}') for n in sorted(numbers)
                    if n < number and os.path.exists(os.path.join(directory, f'ckpt-{n}.index'))]
    break
  if numbers and found.prefix is None:
    raise ConfigError(
        f'no intact checkpoint in {directory}: '
        + '; '.join(f'{path} is unreadable ({reason})' for path, reason in found.bad)
        + f'. The run cannot be resumed: move {workdir!r} away (or delete it) to start over.')
  if (found.prefix and not found.bad and found.state_problem is None and
      latest != os.path.basename(found.prefix)):
    found.state_problem = (f'the checkpoint state file names {latest}' if latest else
                           f'the checkpoint state file {directory}/checkpoint is missing')
  _check_best(workdir)
  return found


def _check_best(workdir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  directory = os.path.join(workdir, 'checkpoints', 'best')
  try:
    prefix = tf.train.latest_checkpoint(directory)
  except Exception as e:  # pylint: disable=broad-except
    problem = (os.path.join(directory, 'checkpoint'), _first_line(e))
  else:
    problem = verify_checkpoint(prefix) if prefix else None
  if problem:
    raise ConfigError(
        f'the best checkpoint of {workdir!r} is unreadable: {problem[0]} ({problem[1]}). The '
        f'weights to evaluate are lost: move {workdir!r} away (or delete it) to start over.')


def _history(workdir, epoch):
  """The history rows up to `epoch` (a last line cut by a kill dropped; `lvae_tf.schema`).

  Raises:
    lvae_tf.schema.SchemaError: a damaged line other than a cut last one (names file and line).
  """
  from lvae_tf import schema  # pylint: disable=g-import-not-at-top
  rows, _ = schema.read_jsonl(os.path.join(workdir, 'history.jsonl'),
                              schema.validate_history_row)
  return sorted((r for r in rows if r['epoch'] <= epoch), key=lambda r: r['epoch'])


def _saved_budget(workdir, names):
  try:
    with open(os.path.join(workdir, 'config.json')) as f:
      saved = json.load(f)['config']
    return ', '.join(f'--{n}={saved[n]}' for n in names)
  except (OSError, ValueError, KeyError, TypeError):
    return None


def check_budget(workdir, config, epoch, monitor='val_elbo'):
  """Refuses a budget under which training would have stopped before `epoch`.

  A run's record states its config, so `--max_epochs=3` on a run that trained 6 epochs would
  record a budget of 3 next to 6 trained epochs. The epochs in the checkpoint are replayed from
  `history.jsonl` with the requested `--patience` and `--train_minutes` too. Larger budgets are
  fine: training continues.

  Raises:
    ConfigError: naming the flag, the epochs trained and what to do (exit status 2).
  """
  if not epoch:
    return
  stop, reason = None, None
  if epoch > config.max_epochs:
    stop, reason = config.max_epochs, f'--max_epochs={config.max_epochs}'
  else:
    best, wait = -math.inf, 0
    clock = 'cpu_seconds' if config.budget_clock == 'cpu' else 'train_seconds'
    for row in _history(workdir, epoch - 1):  # stopping after the last epoch is fine
      value = row.get(monitor)
      if isinstance(value, (int, float)):
        best, wait = (value, 0) if value > best else (best, wait + 1)
        if wait >= config.patience > 0:
          stop, reason = row['epoch'], f'--patience={config.patience}'
          break
      spent = row.get(clock)
      if isinstance(spent, (int, float)) and 0 < 60. * config.train_minutes <= spent:
        stop = row['epoch']
        reason = f'--train_minutes={config.train_minutes:g} (--budget_clock={config.budget_clock})'
        break
  if stop is None:
    return
  saved = _saved_budget(workdir, ('max_epochs', 'patience', 'train_minutes', 'budget_clock'))
  raise ConfigError(
      f'{workdir!r} already holds a checkpoint of {epoch} trained epochs, but with {reason} '
      f'training stops after epoch {stop}: its record would state a budget that did not '
      f'produce it. Rerun with the budget it was trained with'
      + (f' (its config.json: {saved})' if saved else '')
      + ' or a larger one, or use a new --run_name for this budget.')


def prepare(workdir, config):
  """Readies a locked run directory to resume: checks first, then repairs and cleans.

  `find_latest` and `check_budget` (which raise `ConfigError` and change nothing), then
  `remove_orphans` and `LatestCheckpoint.repair`.

  Returns:
    The `LatestCheckpoint` the run resumes from.
  """
  latest = find_latest(workdir)
  check_budget(workdir, config, latest.epoch)
  remove_orphans(workdir)
  latest.repair()
  return latest


def remove_orphans(workdir, older_than=None):
  """Removes temporaries that killed writes left in `workdir` (see the module docstring).

  Returns:
    The paths removed.
  """
  removed = atomic.remove_orphan_temporaries(workdir, older_than=older_than)
  if older_than is None:
    from lvae_tf.filesafety import runlock  # pylint: disable=g-import-not-at-top
    older_than = runlock.process_start_time()
  for kind in ('latest', 'best'):
    directory = os.path.join(workdir, 'checkpoints', kind)
    try:
      entries = [e for e in os.scandir(directory) if _TF_TEMPORARY.match(e.name)]
    except OSError:
      continue
    for entry in entries:
      try:
        if entry.stat(follow_symlinks=False).st_mtime >= older_than:
          continue
        if entry.is_dir(follow_symlinks=False):
          shutil.rmtree(entry.path)
        else:
          os.remove(entry.path)
        removed.append(entry.path)
      except OSError:
        pass
  return removed


def save_checkpoint(manager, number):
  """`manager.save(checkpoint_number=number)`; a failed write raises `filesafety.WriteError`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return manager.save(checkpoint_number=number)
  except (OSError, tf.errors.OpError) as e:
    raise atomic.as_write_error(
        e, os.path.join(manager.directory, f'ckpt-{number}')) from e
