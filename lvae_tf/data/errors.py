"""The errors of `lvae_tf.data`: every data problem is a `DataError`."""


class DataError(RuntimeError):
  """Base class of every data problem (file missing, corrupt, ...)."""


class DataNotFoundError(DataError):
  """No data where some was expected; the message lists where we looked."""


class DataIntegrityError(DataError):
  """A data file exists but is not the expected file (checksum/content)."""


class UnknownDatasetError(DataError, ValueError):
  """`load_dataset` was given a name it does not know (a usage error)."""
