"""Machinery shared by the flows: target gradients, their count, state checks.

Every flow step in this package obtains `grad l(z)` from `value_and_gradient`,
so a `GradientCounter` passed to a flow counts exactly the gradient evaluations
the flow performs. That count is the cost unit of the paper's speed claim
(Langevin: K per flow, HVAE reference code: 2K, cached leapfrog: K + 1).

`split_state`, `broadcast_to_batch` and `check_num_steps` are the input
check, the log-det broadcast and the step-count check shared by both
bijectors (not part of the public API).
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
  once (measured on CPU: reference and cached HVAE then use the same memory),
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
                       name=None):
  """Computes `l(z)` and `grad_z sum(l(z))` with a differentiable inner tape.

  The gradient is computed with a `tf.GradientTape` that watches `z` only and
  is not stopped: when this runs under an outer tape, the outer tape records
  the gradient computation itself, so it can differentiate through `grad`
  (second-order autodiff; needed to train a VAE through its flow).

  For a target whose batch members are independent (a log density per
  example), `grad` is the per-example gradient, shape `[..., D]`.

  Args:
    target_log_prob_fn: Python callable mapping `z` (shape `[..., D]`) to a
      log density of shape `[...]`.
    z: Floating-point `Tensor`, shape `[..., D]`.
    gradient_counter: Optional `GradientCounter`, incremented by one on every
      execution. Default value: `None` (no counting, no variable ops).
    name: Python `str` name prefixed to ops created by this function.
      Default value: `None` (i.e., 'value_and_gradient').

  Returns:
    value: `target_log_prob_fn(z)`, a floating-point `Tensor`.
    grad: `Tensor` of the shape and dtype of `z`.

  Raises:
    TypeError: if `target_log_prob_fn(z)` is not floating-point.
    ValueError: if the gradient is `None`, i.e. the target does not depend on
      `z` (or depends on it only through non-differentiable ops).
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
    grad = tape.gradient(value, z)
    if grad is None:
      raise ValueError(
          'The gradient of `target_log_prob_fn` with respect to `z` is None: '
          'the target does not depend on `z` differentiably. Expected a '
          'function of `z` such as `lambda z: -0.5 * tf.reduce_sum(z**2, -1)`.'
          ' Got target_log_prob_fn={}.'.format(target_log_prob_fn))
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
