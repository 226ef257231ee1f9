"""Result records: publishing per protocol, tables that never mix protocols, bad files skipped."""

import dataclasses
import json
import os

import pytest

from lvae_tf import config as config_lib
from lvae_tf import results


def _record(flow='vae', k=0, seed=0, nll=90., **overrides):
  config = config_lib.Config.from_preset('cpu', flow=flow, num_steps=k, seed=seed,
                                         precision='float32', **overrides)
  return {
      'kind': 'table1_run', 'run_name': config_lib.run_name(config),
      'protocol': config_lib.protocol_name(config), 'config': dataclasses.asdict(config),
      'environment': {'device': 'CPU (test)'},
      'metrics': {'nll_mean': nll, 'nll_sem': 0.5, 'test_elbo': -nll - 5, 'epochs_trained': 3},
      'wall_seconds': {'train_total': 120.},
  }


def test_publish_writes_record_and_table_under_the_protocol(tmp_path):
  record = _record()
  path, table = results.publish(record, str(tmp_path))
  assert path == os.path.join(str(tmp_path), record['protocol'], 'records',
                              record['run_name'] + '.json')
  assert json.loads(open(path).read()) == record
  assert table == (tmp_path / record['protocol'] / 'table1.md').read_text()
  assert '| NLL (nats) | 90.00 ± 0.50 |' in table  # one run: its standard error
  assert '| training minutes (wall) | 2.0 |' in table


def test_seeds_of_one_protocol_are_averaged_protocols_never(tmp_path):
  for seed, nll in ((0, 90.), (1, 92.), (2, 94.)):
    results.publish(_record(seed=seed, nll=nll), str(tmp_path))
  results.publish(_record(seed=0, nll=200., train_minutes=1.), str(tmp_path))  # other protocol
  paths = results.write_tables(str(tmp_path))
  assert len(paths) == 2
  tables = {p: open(p).read() for p in paths}
  main = [t for t in tables.values() if '(3)' in t]
  assert len(main) == 1 and '| NLL (nats) | 92.00 ± 2.00 (3) |' in main[0]
  other = [t for t in tables.values() if '200.00' in t]
  assert len(other) == 1 and '92.00' not in other[0]
  with pytest.raises(ValueError, match='one protocol'):
    results.table1_markdown(results.load_records(str(tmp_path)))


def test_malformed_records_are_skipped_with_a_warning_naming_the_file(tmp_path):
  results.publish(_record(), str(tmp_path))
  records_dir = next(tmp_path.glob('*/records'))
  (records_dir / 'truncated.json').write_text('{"kind": "table1_run", "conf')
  (records_dir / 'nometrics.json').write_text(json.dumps({'kind': 'table1_run', 'config': {}}))
  with pytest.warns(UserWarning) as caught:
    records = results.load_records(str(tmp_path))
  assert len(records) == 1
  messages = ' '.join(str(w.message) for w in caught)
  assert 'truncated.json' in messages and 'nometrics.json' in messages
  with pytest.warns(UserWarning):
    assert len(results.write_tables(str(tmp_path))) == 1


def test_convergence_figure_draws_one_line_per_run(tmp_path):
  from lvae_tf import visualize  # pylint: disable=g-import-not-at-top
  records = []
  for flow, k, seed in (('vae', 0, 0), ('vae', 0, 1), ('langevin', 5, 0), ('hvae', 1, 0)):
    record = _record(flow=flow, k=k, seed=seed)
    record['history'] = [{'epoch': e, 'train_seconds': 60. * e, 'cpu_seconds': 90. * e,
                          'val_elbo': -120. + e} for e in range(1, 6)]
    records.append(record)
  path = tmp_path / 'convergence.png'
  assert visualize.plot_convergence(records, str(path)) == 3  # HVAE K = 1 is not drawn
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert [p.name for p in tmp_path.iterdir()] == ['convergence.png']
