"""What Figure 3 is judged against: targets on the Langevin / HVAE ratios at K = 10, XLA off."""

from lvae_tf.figure3 import settings as settings_lib


def evaluate_targets(ratios, k=10):
  """The targets Figure 3 is judged against, on the ratios at K = `k` (else the largest K), XLA off.

  Only float32 rows are judged. Each target is `{'value', 'met', 'target'}` (`met` None
  when there is no value); `num_steps` is the K judged.
  """
  first = settings_lib.PRECISIONS[0]
  rows = [r for r in ratios if not r['xla'] and r.get('precision', first) == first]
  if not rows:
    return {}
  row = next((r for r in rows if r['num_steps'] == k),
             max(rows, key=lambda r: r['num_steps']))
  k = row['num_steps']
  def target(value, ok, text):
    return {'value': value, 'met': None if value is None else bool(ok(value)),
            'target': text}
  def near(pred):
    return lambda v: pred is not None and abs(v / pred - 1) <= 0.05
  def near_text(pred):
    return ('within 5% of K/(K+1) plus fixed costs = ' + f'{pred:.3f}'
            if pred is not None else 'needs the cost model')
  pred = row.get('predicted_train_time_cached')
  pred_cpu = row.get('predicted_train_cpu_time_cached')
  t = {
      'train_time_langevin_over_reference': target(
          row.get('train_time_reference'), lambda v: v <= 0.55, '<= 0.55'),
      'train_time_langevin_over_cached': target(
          row.get('train_time_cached'), near(pred), near_text(pred)),
      'train_cpu_time_langevin_over_reference': target(
          row.get('train_cpu_time_reference'), lambda v: v <= 0.55, '<= 0.55'),
      'train_cpu_time_langevin_over_cached': target(
          row.get('train_cpu_time_cached'), near(pred_cpu), near_text(pred_cpu)),
      'train_memory_langevin_over_reference': target(
          row.get('train_memory_reference'), lambda v: v <= 0.6, '<= 0.6'),
      'largest_batch_langevin_over_reference': target(
          row.get('largest_batch_reference'), lambda v: v >= 2, '>= 2'),
  }
  t['num_steps'] = k
  return t
