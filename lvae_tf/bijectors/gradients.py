"""Machinery shared by the flows: target gradients, their count, shape checks.

Every flow step in this package obtains `grad l(z)` from `value_and_gradient`,
so a `GradientCounter` passed to a flow counts exactly the gradient evaluations
the flow performs. That count is the cost unit of the paper's speed claim
(Langevin: K per flow, HVAE reference code: 2K, cached leapfrog: K + 1).

`split_state`, `broadcast_to_batch` and `check_num_steps` are the input
check, the log-det broadcast and the step-count check shared by both
bijectors; `check_parameter_shapes`, `parameter_rank_assertions` and
`check_parameters_against_event` check the per-dimension parameters
(`step_size`, `damping`, ...) against each other and against the latent
dimension D (not part of the public API). `value_and_gradient` checks the
shape of the target's output.

The shape checks follow TFP's convention: a `ValueError` when the static
shapes already show the error (at construction for a parameter's own shape,
at trace time for shapes that involve `z`), else, with `validate_args=True`,
a run-time assertion (`tf.errors.InvalidArgumentError`).
"""

import numpy as np
import tensorflow as tf

from tensorflow_probability.python.internal import dtype_util
from tensorflow_probability.python.internal import prefer_static as ps

__all__ = [
    'GradientCounter',
    'value_and_gradient',
]


class GradientCounter(tf.Module):
  """Counts executed evaluations of a target's gradient.

  The count lives in a non-trainable `int64` `tf.Variable`, incremented by one
  every time `value_and_gradient` *executes* with this counter, so the count is
  right in eager mode, inside `tf.function` (the increment is a stateful op,
  run on every call of the traced function, not once at trace time) and under
  `tf.function(jit_compile=True)`. The increment has the gradient as a control
  input, so a counted gradient is always computed (a traced function cannot
  prune it even if its result is unused).

  Only forward evaluations are counted: when an outer `tf.GradientTape`
  differentiates through a flow, the backward pass through each `grad l` is
  not counted again.

  Counting is opt-in: without a counter, `value_and_gradient` creates no
  variable ops at all.

  The count is of *requested* evaluations. Under `jit_compile=True`, XLA may
  merge identical computations: the reference leapfrog's start-of-step
  gradient equals the previous step's end-of-step one, and XLA computes it
  once (on CPU, reference and cached HVAE then use the same memory),
  while the counter still reads 2K.

  #### Examples

  ```python
  counter = GradientCounter()
  flow = langevin_flow(target_log_prob_fn, num_steps=5, step_size=0.1,
                       damping=0.5, gradient_counter=counter)
  tf.function(flow.forward)([z, rho])
  counter.count  # ==> 5
  counter.reset()
  ```
  """

  def __init__(self, name='gradient_counter'):
    """Creates a counter at zero.

    Args:
      name: Python `str` name of the module and its variable.
    """
    super().__init__(name=name)
    with self.name_scope:
      self._count = tf.Variable(
          0, dtype=tf.int64, trainable=False, name='count')

  @property
  def count(self):
    """Number of gradient evaluations executed since the last `reset`."""
    return self._count.read_value()

  def increment(self, n=1):
    """Adds `n` to the count; returns the assign op (for control deps)."""
    return self._count.assign_add(tf.cast(n, tf.int64), read_value=False)

  def reset(self):
    """Sets the count to zero; returns the assign op (for control deps)."""
    return self._count.assign(tf.zeros([], tf.int64), read_value=False)


def value_and_gradient(target_log_prob_fn, z, gradient_counter=None,
                       validate_args=False, name=None):
  """Computes `l(z)` and `grad_z sum(l(z))` with a differentiable inner tape.

  The gradient is computed with a `tf.GradientTape` that watches `z` only and
  is not stopped: when this runs under an outer tape, the outer tape records
  the gradient computation itself, so it can differentiate through `grad`
  (second-order autodiff; needed to train a VAE through its flow).

  For a target whose batch members are independent (a log density per
  example), `grad` is the per-example gradient, shape `[..., D]`. The target
  must return one log density per batch member, of shape `z.shape[:-1]`: a
  target returning `[..., D]` (a forgotten `reduce_sum`) or a scalar (a sum
  over the batch) is an error, checked statically where the shapes are known
  and, with `validate_args`, at run time where they are not.

  Args:
    target_log_prob_fn: Python callable mapping `z` (shape `[..., D]`) to a
      log density of shape `[...]`.
    z: Floating-point `Tensor`, shape `[..., D]`.
    gradient_counter: Optional `GradientCounter`, incremented by one on every
      execution. Default value: `None` (no counting, no variable ops).
    validate_args: Python `bool`; if `True`, also check at run time that the
      shape of `target_log_prob_fn(z)` is `z.shape[:-1]` when the static
      shapes cannot tell. Default value: `False`.
    name: Python `str` name prefixed to ops created by this function.
      Default value: `None` (i.e., 'value_and_gradient').

  Returns:
    value: `target_log_prob_fn(z)`, a floating-point `Tensor`.
    grad: `Tensor` of the shape and dtype of `z`.

  Raises:
    TypeError: if `target_log_prob_fn(z)` is not floating-point.
    ValueError: if the static shape of `target_log_prob_fn(z)` is not
      `z.shape[:-1]`, or if the gradient is `None`, i.e. the target does not
      depend on `z` (or depends on it only through non-differentiable ops).
  """
  with tf.name_scope(name or 'value_and_gradient'):
    z = tf.convert_to_tensor(z, name='z')
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(z)
      value = tf.convert_to_tensor(target_log_prob_fn(z), name='value')
    if not dtype_util.is_floating(value.dtype):
      raise TypeError(
          '`target_log_prob_fn` must return a floating-point `Tensor`; '
          'got dtype {}.'.format(value.dtype))
    assertions = _target_shape_assertions(value, z, validate_args)
    grad = tape.gradient(value, z)
    if grad is None:
      raise ValueError(
          'The gradient of `target_log_prob_fn` with respect to `z` is None: '
          'the target does not depend on `z` differentiably. Expected a '
          'function of `z` such as `lambda z: -0.5 * tf.reduce_sum(z**2, -1)`.'
          ' Got target_log_prob_fn={}.'.format(target_log_prob_fn))
    if assertions:
      with tf.control_dependencies(assertions):
        value, grad = tf.identity(value), tf.identity(grad)
    if gradient_counter is not None:
      # The increment waits for the gradient, so a traced function cannot
      # prune a counted gradient: the count is of gradients actually computed.
      with tf.control_dependencies([grad]):
        gradient_counter.increment()
    return value, grad


def split_state(state, validate_args, name):
  """Unpacks a `[z, rho]` state, checking shapes (and, if asked, finiteness).

  Args:
    state: Structure of two `Tensor`s `[z, rho]`, each of shape `[..., D]`.
    validate_args: Python `bool`; if `True`, also check at run time that `z`
      and `rho` have the same shape and are finite.
    name: Python `str`, the argument's name in error messages ('x' or 'y').

  Returns:
    z, rho: the two `Tensor`s (with run-time checks attached if requested).

  Raises:
    ValueError: if `state` is not a pair, or if the static shapes of `z` and
      `rho` differ.
  """
  parts = tf.nest.flatten(state)
  if len(parts) != 2:
    raise ValueError(
        'Expected `{}` to be a pair [z, rho] of `Tensor`s; got {} parts.'
        .format(name, len(parts)))
  z, rho = parts
  if not z.shape.is_compatible_with(rho.shape):
    raise ValueError(
        'Position and momentum must have the same shape [..., D]; got '
        '`{0}[0]` (z) of shape {1} and `{0}[1]` (rho) of shape {2}.'.format(
            name, z.shape, rho.shape))
  if not validate_args:
    return z, rho
  with tf.control_dependencies([tf.debugging.assert_equal(
      tf.shape(z), tf.shape(rho),
      message=('Position and momentum must have the same shape [..., D]: '
               '`{0}[0]` (z) and `{0}[1]` (rho) differ.'.format(name)))]):
    z = tf.debugging.assert_all_finite(
        z, message='`{}[0]` (position z) must be finite.'.format(name))
    rho = tf.debugging.assert_all_finite(
        rho, message='`{}[1]` (momentum rho) must be finite.'.format(name))
  return z, rho


def broadcast_to_batch(log_det, state):
  """Broadcasts a per-event log-det to the batch shape of `[z, rho]`."""
  z, rho = tf.nest.flatten(state)
  batch_shape = ps.broadcast_shape(ps.shape(z)[:-1], ps.shape(rho)[:-1])
  return tf.broadcast_to(log_det, batch_shape)


def check_num_steps(num_steps):
  """Returns `num_steps` as a Python `int`; ValueError unless static, >= 0."""
  value = tf.get_static_value(num_steps) if tf.is_tensor(num_steps) else (
      num_steps)
  if (value is None or isinstance(value, bool) or np.ndim(value) != 0 or
      not np.issubdtype(np.asarray(value).dtype, np.integer) or value < 0):
    raise ValueError(
        '`num_steps` must be a non-negative integer known when the flow is '
        'built (the number of flow steps K); got {!r}.'.format(num_steps))
  return int(value)


def format_shape(shape):
  """`TensorShape` -> `'[4, None]'` (`'[]'` for a scalar) for error messages."""
  shape = tf.TensorShape(shape)
  if shape.rank is None:
    return '<unknown rank>'
  return str(shape.as_list())


def _target_shape_assertions(value, z, validate_args):
  """Checks `target_log_prob_fn(z)` has shape `z.shape[:-1]`.

  Args:
    value: `Tensor`, the target's output.
    z: `Tensor` of shape `[..., D]`, its input.
    validate_args: Python `bool`; if `True` and the static shapes cannot
      tell, return a run-time assertion.

  Returns:
    assertions: list of assertion ops (empty unless needed).

  Raises:
    ValueError: if the static shapes already differ.
  """
  expected = z.shape[:-1]
  message = ('`target_log_prob_fn` must return one log density per batch '
             'member: a `Tensor` of shape z.shape[:-1] (z of shape [..., D] ->'
             ' [...]).')
  if not value.shape.is_compatible_with(expected):
    raise ValueError(
        '{} Got shape {} for z of shape {}; expected shape {}.'.format(
            message, format_shape(value.shape), format_shape(z.shape),
            format_shape(expected)))
  if not validate_args or (value.shape.is_fully_defined() and
                           expected.is_fully_defined()):
    return []
  value_shape, expected_shape = tf.shape(value), tf.shape(z)[:-1]
  ok = _shapes_equal(value_shape, expected_shape)
  return [tf.debugging.Assert(
      ok, [message, 'Got shape', value_shape, 'for z of shape', tf.shape(z),
           'expected shape', expected_shape])]


def _shapes_equal(a, b):
  """`a == b` for two 1-D shape `Tensor`s of possibly different lengths."""
  n = tf.minimum(tf.size(a), tf.size(b))
  return tf.logical_and(tf.equal(tf.size(a), tf.size(b)),
                        tf.reduce_all(tf.equal(a[:n], b[:n])))


def check_parameter_shapes(parameters):
  """Static checks of per-dimension parameters, at construction.

  Each parameter must be a scalar or a vector (one value per latent
  dimension), and the vectors must be able to broadcast to one common D:
  their static lengths, where known and not 1, must agree.

  Args:
    parameters: list of `(arg_name, Tensor or tf.Variable)` pairs.

  Raises:
    ValueError: if a parameter has static rank > 1, or two parameters have
      static lengths that cannot broadcast to the same D.
  """
  first = None  # (arg_name, shape) of the first vector of length > 1
  for arg_name, value in parameters:
    shape = value.shape
    if shape.rank is None:
      continue
    if shape.rank > 1:
      raise ValueError(
          '`{}` must be a scalar or a vector of shape [D] (one value per '
          'latent dimension); got shape {}.'.format(
              arg_name, format_shape(shape)))
    if shape.rank == 0 or shape[0] is None or shape[0] == 1:
      continue
    if first is None:
      first = (arg_name, shape)
    elif shape[0] != first[1][0]:
      raise ValueError(
          '`{}` and `{}` must both be scalars or of shape [D] (one value per '
          'latent dimension, the same D); got shapes {} and {}.'.format(
              first[0], arg_name, format_shape(first[1]),
              format_shape(shape)))


def parameter_rank_assertions(value, arg_name, validate_args):
  """Run-time rank check of a parameter whose static rank is unknown.

  For `_parameter_control_dependencies`: a known rank is checked statically
  by `check_parameter_shapes`.

  Args:
    value: `Tensor` or `tf.Variable`, the parameter.
    arg_name: Python `str`, its name in the error message.
    validate_args: Python `bool`; no assertion unless `True`.

  Returns:
    assertions: list of assertion ops (empty unless needed).
  """
  if not validate_args or value.shape.rank is not None:
    return []
  return [tf.debugging.Assert(
      tf.rank(value) <= 1,
      ['`{}` must be a scalar or a vector of shape [D] (one value per latent '
       'dimension).'.format(arg_name), 'Got shape', tf.shape(value)])]


def check_parameters_against_event(parameters, z, validate_args):
  """Checks per-dimension parameters broadcast against `D = z.shape[-1]`.

  Each parameter must be a scalar or have shape `[D]` or `[1]`, so that it
  broadcasts against `z` without changing its shape.

  Args:
    parameters: list of `(arg_name, Tensor)` pairs (parameters already
      converted to `Tensor`s: the values the caller computes with).
    z: `Tensor` of shape `[..., D]`.
    validate_args: Python `bool`; if `True`, check at run time the shapes the
      static shapes cannot tell.

  Returns:
    values: list of the parameter `Tensor`s, in order (with run-time checks
      attached if requested and needed).

  Raises:
    ValueError: if the static shapes already show a parameter that does not
      broadcast against D.
  """
  num_dims = (tf.compat.dimension_value(z.shape[-1])
              if z.shape.rank is not None else None)
  values = []
  for arg_name, value in parameters:
    shape = value.shape
    message = ('`{}` must be a scalar or of shape [D] (or [1]), D = '
               'z.shape[-1] the latent dimension'.format(arg_name))
    if shape.rank is not None:
      size = tf.compat.dimension_value(shape[-1]) if shape.rank else 1
      if shape.rank > 1 or (size is not None and num_dims is not None and
                            size not in (1, num_dims)):
        raise ValueError(
            '{}; got shape {} with D = {} (z of shape {}).'.format(
                message, format_shape(shape), num_dims,
                format_shape(z.shape)))
      if size == 1 or (size is not None and num_dims is not None):
        values.append(value)
        continue
    if not validate_args:
      values.append(value)
      continue
    value_shape, dims = tf.shape(value), tf.shape(z)[-1]
    size = value_shape[-1:]  # empty for a scalar
    ok = tf.logical_and(
        tf.size(value_shape) <= 1,
        tf.reduce_all(tf.logical_or(tf.equal(size, 1), tf.equal(size, dims))))
    with tf.control_dependencies([tf.debugging.Assert(
        ok, [message + '.', 'Got shape', value_shape, 'with D =', dims])]):
      values.append(tf.identity(value))
  return values
