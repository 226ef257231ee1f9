"""The one validator of image batches given to the models and metrics: `check_images`."""

import numpy as np
import tensorflow as tf

IMAGE_SHAPE = (28, 28, 1)


def check_images(x, name='images', tolerance=0.):
  """The one validator of image batches: `x` must be float (b, 28, 28, 1) in [0, 1].

  Used by the models (every batch they see), the metrics and the pipelines' callers. Shape
  and dtype are checked statically; the value range (NaN fails it) is checked when the values
  are concrete (NumPy arrays, eager tensors), not for symbolic tensors inside a `tf.function`.

  Args:
    x: NumPy array or tensor.
    name: what `x` is, for the message.
    tolerance: values in [-tolerance, 1 + tolerance] pass (e.g. float rounding of means).

  Returns:
    `x`, unchanged.

  Raises:
    ValueError: with the shape/dtype/range received and what was expected.
  """
  expected = ('expected float images of shape (batch, 28, 28, 1) with values in [0, 1]'
              + ('' if name == 'images' else f' for {name}'))
  if isinstance(x, (tf.Tensor, tf.Variable)):
    shape = tuple(x.shape.as_list()) if x.shape.rank is not None else None
    dtype_name, is_float = x.dtype.name, x.dtype.is_floating
    values = x.numpy() if tf.executing_eagerly() else None
  else:
    try:
      values = np.asarray(x)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'{expected}; got an object of type '
                       f'{type(x).__name__} that is not an array') from e
    shape, dtype_name = values.shape, values.dtype.name
    is_float = np.issubdtype(values.dtype, np.floating)
  if shape is None or len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE:
    rank = 'unknown' if shape is None else len(shape)
    hint = ''
    if shape is not None and len(shape) == 3 and tuple(shape[1:]) == (28, 28):
      hint = ' (add the channel axis: x[..., None])'
    raise ValueError(f'{expected}; got shape {shape} (rank {rank}){hint}')
  if not is_float:
    hint = ''
    if dtype_name == 'uint8':
      hint = (' (uint8 bytes: use x / 255 for grey levels or '
              'data.binarize(x, seed))')
    raise ValueError(f'{expected}; got dtype {dtype_name}{hint}')
  if values is not None and values.size:
    values = np.asarray(values, dtype=np.float64)
    ok = (values >= -tolerance) & (values <= 1 + tolerance)  # False for NaN.
    if not ok.all():
      nan = int(np.isnan(values).sum())
      finite = values[~np.isnan(values)]
      got = []
      if finite.size:
        got.append(f'values in [{finite.min():g}, {finite.max():g}]')
      if nan:
        got.append(f'{nan} NaN')
      raise ValueError(
          f'{expected}; got {" and ".join(got)} '
          f'({int((~ok).sum())} of {values.size} outside [0, 1])')
  return x
