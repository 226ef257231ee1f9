"""The IDX file format (LeCun's MNIST files, and Fashion-MNIST's): a parser."""

import struct

import numpy as np

from lvae_tf.data import errors


def parse_idx(raw, path, images):
  """Parses an IDX file: uint8 images (N, 28, 28) or labels (N,)."""
  magic, ndim = (2051, 3) if images else (2049, 1)
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise errors.DataIntegrityError(f'IDX file {path} is too short ({len(raw)} bytes).')
  dims = struct.unpack(f'>{1 + ndim}I', bytes(raw[:header]))
  shape = dims[1:]
  if (dims[0] != magic or (images and shape[1:] != (28, 28)) or
      len(raw) != header + int(np.prod(shape))):
    raise errors.DataIntegrityError(
        f'IDX file {path}: magic {dims[0]}, shape {shape}, {len(raw):,} '
        f'bytes; expected magic {magic} and '
        f'{"(N, 28, 28) images" if images else "(N,) labels"}.')
  x = np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()
  if not images:
    if x.size and x.max() > 9:
      raise errors.DataIntegrityError(f'IDX file {path}: labels above 9.')
    x = x.astype(np.int64)
  return x
