"""The statistics of the tables: paired NLL differences, t intervals, mean ± std cells."""

__all__ = ['format_cell', 'format_mean_std', 'paired_nll', 't_interval']


def paired_nll(record, reference):
  """`NLL(record) - NLL(reference)` on the same test images, with its standard error.

  Both NLLs are means over the same images, so their difference is the mean of per-image
  differences, whose standard error is far smaller than either NLL's own (an image's
  difficulty is shared by the two models).

  Returns:
    `(difference, standard error)` in nats.

  Raises:
    ValueError: a record without per-image NLLs (recorded before they were kept), or two
      records measured on different images.
  """
  values = []
  for r in (record, reference):
    per_image = r['metrics'].get('nll_per_image')
    if not per_image:
      raise ValueError(f'{r.get("run_name")} has no per-image NLLs (recorded before they were '
                       'kept): no paired comparison.')
    values.append(per_image)
  if (record['metrics'].get('nll_subset') != reference['metrics'].get('nll_subset') or
      len(values[0]) != len(values[1])):
    raise ValueError(f'{record.get("run_name")} and {reference.get("run_name")} were measured '
                     'on different test images: no paired comparison.')
  diffs = [a - b for a, b in zip(*values)]
  n = len(diffs)
  mean = sum(diffs) / n
  se = (sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) ** 0.5 if n > 1 else 0.
  return mean, se


def t_interval(values, confidence=0.95):
  """The Student-t confidence interval of the mean of `values` (n >= 2 independent draws).

  Returns:
    `(low, high)`: mean -+ t(1 - (1 - confidence) / 2, n - 1) * std / sqrt(n), std with n - 1.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  n = len(values)
  if n < 2:
    raise ValueError(f't_interval needs at least 2 values, got {n}.')
  mean = sum(values) / n
  std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
  t = float(tfp.distributions.StudentT(df=np.float64(n - 1), loc=np.float64(0.),
                                       scale=np.float64(1.)).quantile(0.5 + confidence / 2.))
  return mean - t * std / n ** 0.5, mean + t * std / n ** 0.5


def format_cell(values, digits=2):
  """One run: `value ± its own uncertainty`; several seeds: `mean ± std over seeds (n)`."""
  if not values:
    return ''
  if len(values) == 1:
    mean, err = values[0][:2]
    return f'{mean:.{digits}f} ± {err:.{digits}f}' if err else f'{mean:.{digits}f}'
  means = [v[0] for v in values]
  mean = sum(means) / len(means)
  std = (sum((m - mean) ** 2 for m in means) / (len(means) - 1)) ** 0.5
  return f'{mean:.{digits}f} ± {std:.{digits}f} ({len(values)})'


def format_mean_std(values, digits=2):
  """`mean ± std (n)` over seeds (std with n - 1; one value is shown alone)."""
  values = [v for v in values if v is not None]
  if not values:
    return ''
  return format_cell([(v, 0.) for v in values], digits)

