"""lvae_tf.filesafety is the one home of atomic writes, the run lock, interrupts and recovery.

The old import paths (`lvae_tf.runlock`, `lvae_tf.interrupts`, `lvae_tf.recovery`, the atomic
writes under `lvae_tf.results`) keep working for users; the project itself no longer uses them.
The behaviour of each helper is tested in tests/failures/.
"""

import importlib
import os
import re
import subprocess
import sys

import pytest

from lvae_tf import filesafety
from lvae_tf.filesafety import atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOVED_MODULES = ('runlock', 'interrupts', 'recovery')
ATOMIC_NAMES = ('WriteError', 'append_text', 'as_write_error', 'atomic_path',
                'remove_orphan_temporaries', 'write_json_atomic', 'write_text_atomic')


@pytest.mark.parametrize('name', MOVED_MODULES)
def test_old_module_path_is_the_moved_module_itself(name, monkeypatch):
  new = importlib.import_module(f'lvae_tf.filesafety.{name}')
  old = importlib.import_module(f'lvae_tf.{name}')
  assert old is new
  from lvae_tf import runlock, interrupts, recovery  # pylint: disable=g-import-not-at-top,multiple-imports
  assert {'runlock': runlock, 'interrupts': interrupts, 'recovery': recovery}[name] is new
  # One module, so a patch through the old path reaches the code that uses the new one.
  monkeypatch.setattr(old, 'marker_for_this_test', 1, raising=False)
  assert new.marker_for_this_test == 1


@pytest.mark.parametrize('name', ATOMIC_NAMES)
def test_atomic_names_are_the_same_objects_everywhere(name):
  from lvae_tf import results  # pylint: disable=g-import-not-at-top
  assert getattr(filesafety, name) is getattr(atomic, name)
  assert getattr(results, name) is getattr(atomic, name)
  assert name in filesafety.__all__ and name in results.__all__


def test_write_json_atomic_writes_sorted_indented_json(tmp_path):
  path = tmp_path / 'sub' / 'record.json'
  filesafety.write_json_atomic(str(path), {'b': 1, 'a': [1, 2]})
  assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
  assert os.listdir(path.parent) == ['record.json']  # no temporary left


def test_importing_file_safety_loads_no_tensorflow():
  code = ('import sys, lvae_tf.filesafety, lvae_tf.filesafety.recovery, '
          'lvae_tf.filesafety.runlock, lvae_tf.filesafety.interrupts, lvae_tf.results, '
          'lvae_tf.runlock, lvae_tf.interrupts, lvae_tf.recovery; '
          'print(sorted(m for m in ("tensorflow", "numpy") if m in sys.modules))')
  output = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
  assert output.strip() == '[]'


# Code of the project that still goes through an old path. Files being moved in parallel may be
# listed here until they import lvae_tf.filesafety (say which and why).
_OLD_PATHS = re.compile(
    r'from lvae_tf import (?:[\w, ]*\b)?(?:runlock|interrupts|recovery)\b'
    r'|import lvae_tf\.(?:runlock|interrupts|recovery)\b'
    r'|\bresults\.(?:' + '|'.join(ATOMIC_NAMES) + r')\b')
_ALLOWED = {
    'tests/test_filesafety.py',  # this file, which checks the old paths on purpose
}


def test_no_project_code_uses_the_old_paths():
  found = []
  for top in ('lvae_tf', 'experiments', 'tests', 'notebooks'):
    for directory, _, files in os.walk(os.path.join(ROOT, top)):
      for name in files:
        if not name.endswith(('.py', '.ipynb', '.sh')):
          continue
        path = os.path.join(directory, name)
        relative = os.path.relpath(path, ROOT)
        if relative in _ALLOWED or relative in {f'lvae_tf/{m}.py' for m in MOVED_MODULES}:
          continue
        with open(path, encoding='utf-8') as f:
          for number, line in enumerate(f, 1):
            if _OLD_PATHS.search(line):
              found.append(f'{relative}:{number}: {line.strip()}')
  assert not found, '\n'.join(found)
