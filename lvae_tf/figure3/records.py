"""Looking up the run records of a Figure 3 report: by (flow, K, XLA, precision), by path."""

from lvae_tf.figure3 import settings as settings_lib


def precision_of(record):
  """A record's precision; reports written before precisions existed are float32."""
  return record.get('precision', settings_lib.PRECISIONS[0])


def find_run(runs, flow, k, xla, precision=settings_lib.PRECISIONS[0]):
  """The run record of (flow, K, XLA mode, precision), or None."""
  for r in runs:
    if (r['flow'] == flow and r['num_steps'] == k and r['xla'] == xla and
        precision_of(r) == precision):
      return r
  return None


def value_at(record, *path):
  """`record[path[0]][path[1]]...`, or None where a key is missing (or `record` is None)."""
  v = record
  for p in path:
    if v is None or p not in v:
      return None
    v = v[p]
  return v


def ratio(a, b):
  """`a / b`, or None when either is missing or `b` is zero."""
  if a is None or b is None or not b:
    return None
  return a / b
