"""A restricted unpickler that can rebuild NumPy arrays and nothing else."""

import pickle

import numpy as np


def _numpy_reconstruct():
  try:
    from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
  except ImportError:  # NumPy < 2.
    from numpy.core import multiarray  # pylint: disable=g-import-not-at-top
  return multiarray._reconstruct  # pylint: disable=protected-access


class ArrayOnlyUnpickler(pickle.Unpickler):
  """Unpickler that can rebuild NumPy arrays and nothing else.

  `find_class` admits exactly the globals a pickled ndarray needs; any other
  global (`os.system`, `builtins.eval`, ...) raises `pickle.UnpicklingError`
  before anything is called. Objects are taken from a fixed table, never
  imported by name.
  """

  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy', 'ndarray'): lambda: np.ndarray,
      ('numpy', 'dtype'): lambda: np.dtype,
  }

  def find_class(self, module, name):
    factory = self._ALLOWED.get((module, name))
    if factory is None:
      raise pickle.UnpicklingError(
          f'refusing to load global {module}.{name}: only NumPy array '
          f'reconstruction is allowed')
    return factory()
