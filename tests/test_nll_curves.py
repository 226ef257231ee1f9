"""The equal-epochs table and the curve figure, against numbers computed by hand."""

import numpy as np
import pytest

from lvae_tf import nll_curves


def _record(flow, k, seed, epochs, per_image, final_epoch):
  """A record whose kept point at epoch e has per-image NLLs `per_image(e)`."""
  curve = [{'epoch': e, 'best_epoch': e, 'train_cpu_minutes': 2. * e,
            'nll_mean': float(np.mean(per_image(e))), 'nll_sem': 0.1,
            'nll_test_images': len(per_image(e)),
            'nll_per_image': [float(v) for v in per_image(e)]} for e in epochs]
  curve.append({'epoch': final_epoch, 'final': True, 'nll_mean': 80., 'nll_sem': 0.5,
                'nll_per_image': [80.] * 8, 'train_cpu_minutes': 60.})
  return {'kind': 'table1_run', 'run_name': f'{flow}-K{k}-s{seed}',
          'config': {'flow': flow, 'num_steps': k, 'seed': seed, 'hvae_gradient': 'cached'},
          'environment': {'device': 'CPU'},
          'metrics': {'nll_curve': curve, 'nll_mean': 80. + seed, 'epochs_trained': final_epoch},
          'wall_seconds': {'train_cpu_total': 3600.}}


def test_equal_epochs_reads_the_largest_common_epoch_and_pairs_by_seed():
  rng = np.random.default_rng(0)
  base = {s: rng.normal(90., 5., 8) for s in (0, 1, 2)}
  # Langevin is 1.0 + 0.1 s below HVAE, image by image; the VAE 2 below HVAE.
  records = []
  for s in (0, 1, 2):
    records.append(_record('vae', 0, s, [5, 10, 20, 30], lambda e, s=s: base[s] - 2., 100))
    records.append(_record('langevin', 5, s, [5, 10, 20, 30],
                           lambda e, s=s: base[s] + 0.1 * s * np.arange(8) - e / 100., 30))
    records.append(_record('hvae', 5, s, [5, 10, 20],
                           lambda e, s=s: base[s] + 1. + 0.1 * s * np.arange(8), 25))
  blocks = nll_curves._by_k(records)
  assert list(blocks) == [5] and nll_curves.common_epochs(blocks[5]) == [5, 10, 20]
  text = nll_curves.equal_epochs_markdown(records)
  assert '### K = 5, at epoch 20' in text
  # Langevin - HVAE at epoch 20, per seed: -1 - 0.2 exactly on every image, s.e. 0.
  row = next(line for line in text.splitlines()
             if line.startswith('| Langevin-VAE K=5 − HVAE cached (K+1) K=5'))
  assert '-1.20 ± 0.00 (3)' in row and 's0 -1.20 ± 0.00' in row
  diff, se = nll_curves.paired(nll_curves.kept_points(records[1])[20],
                               nll_curves.kept_points(records[2])[20])
  assert diff == pytest.approx(-1.2) and se == pytest.approx(0., abs=1e-12)
  # The per-image spread enters the paired s.e.: seed 1's Langevin - VAE differences are
  # 2 - 0.2 + 0.1 i, i = 0..7.
  d, se = nll_curves.paired(nll_curves.kept_points(records[4])[20],
                            nll_curves.kept_points(records[3])[20])
  diffs = 1.8 + 0.1 * np.arange(8)
  assert d == pytest.approx(diffs.mean())
  assert se == pytest.approx(diffs.std(ddof=1) / np.sqrt(8))


def test_unpaired_points_are_refused():
  a = {'nll_per_image': [1., 2.]}
  with pytest.raises(ValueError, match='do not pair'):
    nll_curves.paired(a, {'nll_per_image': [1.]})


def test_curve_figure_is_written(tmp_path):
  records = [_record('vae', 0, s, [5, 10], lambda e: np.full(4, 90. - e / 10), 50)
             for s in (0, 1)]
  records += [_record('langevin', 1, s, [5, 10], lambda e: np.full(4, 91. - e / 10), 40)
              for s in (0, 1)]
  path = nll_curves.plot_nll_curves(records, str(tmp_path / 'curve.png'))
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with pytest.raises(ValueError, match='no record'):
    nll_curves.plot_nll_curves(records[:0], str(tmp_path / 'none.png'))
