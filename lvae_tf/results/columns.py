"""The columns of the tables: (flow label, K), their order and titles, and which are paired.

Read from the flow registry (`lvae_tf.registry`): a registered flow gets its columns, its place
in the order and its pairing (every flow against the baseline, Langevin against the HVAE
variants of the same K) with no edit here.
"""

from lvae_tf import registry

__all__ = ['baseline_label', 'column_of', 'column_title', 'flow_titles', 'paired_labels',
           'paired_title', 'sorted_columns']


def flow_titles():
  """`{label: title}` of the registered flows (`lvae_tf.registry`), in registration order."""
  return {v.label: v.title for v in registry.variants()}


def column_of(record):
  """The record's column: `(flow label, K)`, e.g. `('langevin', 5)`, `('hvae-cached', 5)`."""
  c = record['config']
  return registry.flow_label(c), c['num_steps']


def sorted_columns(columns):
  """Table 1's column order: the flows' registration order (VAE, Langevin, HVAE (2K), HVAE
  cached); by K within a flow."""
  order = {k: i for i, k in enumerate(flow_titles())}
  return sorted(columns, key=lambda c: (order.get(c[0], 99), c[1]))


def column_title(column):
  """The column's title in a table header: `'Langevin-VAE K=5'`."""
  flow, k = column
  return f'{flow_titles().get(flow, flow)} K={k}'


def baseline_label():
  """The label of the model every flow is paired against (the registry's `baseline`, 'vae')."""
  return next((s.variants[0].label for s in registry.flows() if s.baseline), None)


def paired_title(label, labels):
  """The title of a paired-against flow in a row name: the variant's when `labels` hold
  several variants of its flow ('HVAE cached (K+1)'), else the flow's ('HVAE')."""
  flow = registry.variant(label).flow
  same = [l for l in labels if registry.variant(l).flow == flow]
  return registry.variant(label).title if len(same) > 1 else registry.flow(flow).title


def paired_labels(label, columns):
  """The columns' labels a flow's runs are paired against at the same K (Langevin: the HVAE
  variants), sorted."""
  if label is None:
    return []
  spec = registry.flow(registry.variant(label).flow) if label in flow_titles() else None
  others = {v.label for s in (spec.paired_with if spec else ())
            if s in registry.flow_names() for v in registry.flow(s).variants}
  return sorted({c[0] for c in columns} & others)

