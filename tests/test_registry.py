"""The registries are the only place a flow or a data set is declared.

A toy flow (K identity steps with zero log-det) and a toy data set (MNIST's arrays under another
name) are registered here only, and go through what the built-ins go through: config checks,
the model builder, training, the record, the table and (the flow) a Figure 3 measurement. No
other file names them. Values are checked, not just that things ran: the identity flow's NLL
is the VAE's for the same weights (its momentum terms cancel and its log-det is 0), and a VAE
trained on the toy data set is the VAE trained on MNIST.
"""

# Before TensorFlow: Figure 3 reads peak memory from the oneDNN CPU allocator's statistics.
from lvae_tf import figure3  # pylint: disable=g-bad-import-order

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from lvae_tf import benchmark
from lvae_tf import config as config_lib
from lvae_tf import data
from lvae_tf import models
from lvae_tf import registry
from lvae_tf import results
from lvae_tf import train
from lvae_tf.models.base import FlowVAE

tfb, tfd = tfp.bijectors, tfp.distributions
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class IdentityFlowVAE(FlowVAE):
  """K identity steps on `[z, rho]`, log-det 0; momentum N(0, I). No weights of its own."""

  def __init__(self, num_steps=1, **kwargs):
    kwargs.setdefault('name', 'identity_vae')
    super().__init__(num_steps=num_steps, **kwargs)

  def momentum_distribution(self, loc):
    return tfd.MultivariateNormalDiag(tf.zeros_like(loc))

  def flow(self, target_log_prob_fn):
    del target_log_prob_fn
    return tfb.Chain([tfb.JointMap([tfb.Identity(), tfb.Identity()])
                      for _ in range(self.num_steps)])


TOY_FLOW = registry.FlowSpec(
    name='identity', model=IdentityFlowVAE, title='Identity flow', gradients=lambda k: 0,
    color='#2ca02c', reads=('learn_flow',), bijector='tensorflow_probability.bijectors:Identity',
    model_kwargs=lambda config: {'num_steps': config.num_steps})

TOY_SOURCE = 'MNIST arrays under another name (tests/test_registry.py)'
TOY_PROVENANCE = 'toy_mnist: MNIST registered under another name by a test. '


def _toy_loader(spec, data_dir):
  del data_dir
  mnist = data.load_mnist()
  return dataclasses.replace(mnist, source=TOY_SOURCE, name=spec.name)


TOY_DATASET = registry.DatasetSpec('toy_mnist', _toy_loader, provenance=TOY_PROVENANCE)


@pytest.fixture
def toy_flow():
  registry.register_flow(TOY_FLOW)
  yield TOY_FLOW
  registry.unregister_flow(TOY_FLOW.name)


@pytest.fixture
def toy_dataset():
  registry.register_dataset(TOY_DATASET)
  yield TOY_DATASET
  registry.unregister_dataset(TOY_DATASET.name)


def _tiny(**overrides):
  # float32, not 'auto': the run directory is named by the config training resolves to.
  config = config_lib.Config.from_preset('tiny', verbose=0, deterministic=True,
                                         precision='float32')
  return dataclasses.replace(config, **overrides)


# -- The registry itself. -----------------------------------------------------------


def test_builtins_are_the_paper_flows_and_the_data_sets():
  assert registry.flow_names() == ('vae', 'langevin', 'hvae')
  assert [v.label for v in registry.variants()] == [
      'vae', 'langevin', 'hvae-reference', 'hvae-cached']
  # Target gradients per pass at K = 5: Langevin K, HVAE reference 2K, cached K + 1.
  assert {v.label: v.gradients(5) for v in registry.variants()} == {
      'vae': 0, 'langevin': 5, 'hvae-reference': 10, 'hvae-cached': 6}
  assert figure3.flow_order() == ('langevin', 'hvae-reference', 'hvae-cached', 'vae')
  assert tuple(benchmark.FLOWS) == ('vae', 'langevin', 'hvae-reference', 'hvae-cached')
  assert benchmark.FLOWS['hvae-cached'] == {'flow': 'hvae', 'hvae_gradient': 'cached'}
  assert models.MODELS['langevin'] is models.LangevinVAE
  assert config_lib.CHOICES['dataset'][:2] == ('mnist', 'binarized_mnist')
  assert [d for d in registry.dataset_names() if registry.dataset(d).classifier_metrics] == [
      'mnist', 'binarized_mnist']
  # Every flow-specific field is read by some flow, and by no flow that does not list it.
  assert set(config_lib.FLOW_FIELDS) == {f for s in registry.flows() for f in s.reads}
  for spec in registry.flows():
    assert spec.model_class() is models.MODELS[spec.name]
    if spec.bijector:
      assert callable(registry.resolve(spec.bijector))


def test_flags_and_config_checks_read_the_registry(toy_flow):
  assert 'identity' in config_lib.CHOICES['flow'] and 'identity' in config_lib.FLOWS
  config = config_lib.Config.from_preset('tiny', flow='identity', num_steps=3)
  config.validate()
  with pytest.raises(config_lib.ConfigError, match="flow 'identity' needs steps >= 1"):
    dataclasses.replace(config, num_steps=0).validate()
  # The toy reads learn_flow, not HVAE's or Langevin's fields: those keep their defaults in
  # its run name, so changing them does not make another run.
  assert config_lib.run_name(config).startswith('identity-K3-tiny-seed85547-')
  same = dataclasses.replace(config, tempering='none', damping=0.3, step_size=0.1)
  assert config_lib.run_name(same) == config_lib.run_name(config)
  assert config_lib.run_name(dataclasses.replace(config, learn_flow=False)) != \
      config_lib.run_name(config)


def test_unregistering_removes_the_flow_everywhere(toy_flow):
  registry.unregister_flow(toy_flow.name)
  try:
    assert 'identity' not in config_lib.CHOICES['flow']
    assert 'identity' not in benchmark.FLOWS and 'identity' not in figure3.flow_order()
    with pytest.raises(config_lib.ConfigError, match=r"flow must be one of \('vae', "):
      config_lib.Config.from_preset('tiny', flow='identity', num_steps=2).validate()
  finally:
    registry.register_flow(toy_flow)


def test_bad_specs_are_refused_with_the_reason():
  with pytest.raises(ValueError, match='already registered'):
    registry.register_flow(registry.FlowSpec('vae', models.VAE, gradients=lambda k: 0))
  with pytest.raises(ValueError, match='without "-"'):
    registry.FlowSpec('my-flow', models.VAE, gradients=lambda k: 0)
  with pytest.raises(ValueError, match='gradients'):
    registry.FlowSpec('toy', models.VAE)
  with pytest.raises(ValueError, match=r'image_shape \(32, 32, 3\) is not supported'):
    registry.DatasetSpec('cifar', _toy_loader, image_shape=(32, 32, 3))
  with pytest.raises(ValueError, match="unknown flow 'nope'"):
    registry.flow('nope')


def test_data_sets_load_through_the_registry(toy_dataset):
  assert 'toy_mnist' in config_lib.CHOICES['dataset'] and 'toy_mnist' in data.DATASETS
  toy, mnist = data.load_dataset('toy_mnist'), data.load_mnist()
  assert toy.source == TOY_SOURCE and toy.name == 'toy_mnist'
  assert toy.train_images is mnist.train_images
  with pytest.raises(data.UnknownDatasetError, match='toy_mnist'):
    data.load_dataset('toy_mnis')


def test_a_loader_of_the_wrong_image_shape_is_refused():
  def loader(spec, data_dir):
    del spec, data_dir
    mnist = data.load_mnist()
    return dataclasses.replace(mnist, test_images=mnist.test_images[:, :27])
  registry.register_dataset(registry.DatasetSpec('cropped', loader))
  try:
    with pytest.raises(data.DataIntegrityError,
                       match=r'test images have shape \(10000, 27, 28\)'):
      data.load_dataset('cropped')
  finally:
    registry.unregister_dataset('cropped')


# -- The toy flow: build, NLL, training, record, table, Figure 3. ----------------------------


def test_toy_flow_builds_and_has_the_vaes_nll_for_the_same_weights(toy_flow):
  """Identity steps, log-det 0, momentum N(0, I) in and out: `ln w` is the VAE's exactly."""
  config = _tiny(flow='identity', num_steps=3)
  toy = models.build_model(config)
  vae = models.build_model(_tiny(flow='vae', num_steps=0))
  assert isinstance(toy, IdentityFlowVAE) and toy.num_steps == 3
  x = tf.zeros([1, 28, 28, 1])
  toy(x), vae(x)  # pylint: disable=expression-not-assigned
  vae.set_weights([w + 0.01 * np.random.default_rng(i).standard_normal(w.shape)
                   for i, w in enumerate(vae.get_weights())])
  toy.set_weights(vae.get_weights())
  images = data.binarize(data.load_mnist().test_images[:20], seed=3)[..., None]
  nll_toy = -toy.log_marginal_likelihood(images, num_samples=8, chunk_size=4, seed=(1, 2))
  nll_vae = -vae.log_marginal_likelihood(images, num_samples=8, chunk_size=4, seed=(1, 2))
  assert np.all(nll_vae > 50.)  # a real NLL, nats per image
  np.testing.assert_allclose(nll_toy, nll_vae, rtol=1e-6)
  flowed = toy.flow_sample(images, tf.constant([0, 1]))
  np.testing.assert_array_equal(flowed.zK.numpy(), flowed.z0.numpy())
  np.testing.assert_array_equal(flowed.log_det.numpy(), np.zeros(20))


@pytest.fixture(scope='module')
def vae_run(tiny_vae_run, tmp_path_factory):
  """A tiny VAE trained on MNIST for one epoch, published: the reference of the toys.

  A copy of the session's `tiny_vae_run` (tests/conftest.py), which is `_tiny(flow='vae',
  num_steps=0, max_epochs=1)` trained under its run name.
  """
  config = _tiny(flow='vae', num_steps=0, max_epochs=1)
  assert tiny_vae_run.config == config
  directory = tmp_path_factory.mktemp('vae')
  shutil.copytree(tiny_vae_run.workdir, directory / 'runs' / config_lib.run_name(config))
  record = tiny_vae_run.record
  results.publish(record, str(directory / 'results'))
  return record, directory


@pytest.mark.slow
def test_toy_flow_trains_is_recorded_and_gets_a_table_column(toy_flow, vae_run, tmp_path):
  """Slow (trains two tiny models; fast cover:
  test_toy_flow_builds_and_has_the_vaes_nll_for_the_same_weights).

  One epoch from the same seed: the identity flow's loss differs from the VAE's by a term
  without parameters (its momentum), so both end with the same weights and the same NLL.
  """
  vae, directory = vae_run
  config = _tiny(flow='identity', num_steps=2, max_epochs=1)
  workdir = directory / 'runs' / config_lib.run_name(config)
  record = train.train_and_evaluate(config, str(workdir))
  assert record['run_name'].startswith('identity-K2-tiny-seed85547-')
  assert record['protocol'] == vae['protocol']  # the toy reads no field the VAE ignores
  assert record['metrics']['nll_mean'] == pytest.approx(vae['metrics']['nll_mean'], abs=1e-4)
  np.testing.assert_allclose(record['metrics']['nll_per_image'],
                             vae['metrics']['nll_per_image'], atol=1e-3)
  path, table = results.publish(record, str(directory / 'results'))
  with open(path) as f:  # the record reloads
    assert config_lib.run_name(config_lib.Config.from_dict(json.load(f)['config'])) == \
        record['run_name']
  header, _, nll, vs_vae = table.splitlines()[:4]
  assert header == '| | VAE K=0 | Identity flow K=2 |'
  assert nll.split(' | ')[2].startswith(f"{record['metrics']['nll_mean']:.2f} ± ")
  assert vs_vae.startswith('| NLL − VAE of the same seed (paired) |')
  difference = float(vs_vae.split(' | ')[2].split(' ± ')[0])
  assert abs(difference) <= 0.01


@pytest.fixture
def allocator_statistics():
  from lvae_tf import benchmark as bm  # pylint: disable=g-import-not-at-top
  try:
    bm.peak_memory(lambda: None, 'CPU:0')
  except RuntimeError as e:
    pytest.skip(f'no CPU allocator statistics in this process ({e}); run this file alone')


@pytest.mark.slow
def test_toy_flow_goes_through_a_figure3_measurement(toy_flow, allocator_statistics, tmp_path):
  """Slow (builds, times and probes two models; fast cover:
  test_builtins_are_the_paper_flows_and_the_data_sets)."""
  del allocator_statistics
  settings = figure3.make_settings('tiny', flows='identity,vae', steps='2',
                                   largest_batch_xla='')
  images, _ = figure3.load_images('random', n=64)
  runs = figure3.measure_mode(settings, 'off', images, log=lambda message: None)
  by_flow = {r['flow']: r for r in runs}
  assert [(r['flow'], r['num_steps']) for r in runs] == [('identity', 2), ('vae', 0)]
  toy = by_flow['identity']
  # The bijectors' counter against the spec: identity steps evaluate no target gradient.
  assert toy['expected_gradients'] == toy['gradients_per_train_step'] == 0
  assert toy['gradients_per_test_batch'] == 0
  assert toy['train_step_seconds']['n'] == settings.repeats
  assert toy['train_step_seconds']['median'] > 0 and toy['memory']['train_peak_bytes'] > 0
  report = {
      'kind': 'figure3', 'complete': True, 'settings': settings.to_dict(),
      'environment': {'device': 'CPU', 'tensorflow': tf.__version__,
                      'tensorflow_probability': tfp.__version__, 'date': 'today'},
      'load': {'start': [0.], 'end': [0.], 'cpu_count': 2, 'samples_seconds_load1': []},
      'runs': runs, 'notes': []}
  paths = figure3.write_outputs(report, str(tmp_path))
  with open(paths[1]) as f:
    text = f.read()
  assert '| Identity flow | 2 | off | 0 | 0 |' in text
  assert os.path.getsize(paths[2]) > 0


# -- The toy data set: training, record, table. ---------------------------------------


@pytest.mark.slow
def test_toy_dataset_trains_is_recorded_and_gets_its_table(toy_dataset, vae_run):
  """Slow (trains a tiny model; fast cover: test_data_sets_load_through_the_registry).

  The toy data set holds MNIST's arrays: the VAE trained on it is the VAE trained on MNIST.
  """
  vae, directory = vae_run
  config = _tiny(flow='vae', num_steps=0, max_epochs=1, dataset='toy_mnist')
  record = train.train_and_evaluate(config, str(directory / 'runs' / config_lib.run_name(config)))
  assert record['dataset'] == 'toy_mnist' and record['data_source'] == TOY_SOURCE
  assert record['protocol'] != vae['protocol']  # the data set is part of the protocol
  assert record['metrics']['nll_per_image'] == vae['metrics']['nll_per_image']
  # The MNIST classifier's FID/IS are for registered data sets that declare it only.
  assert 'classifier_fid' in vae['metrics'] and 'classifier_fid' not in record['metrics']
  _, table = results.publish(record, str(directory / 'results'))
  assert f'| NLL (nats) | {record["metrics"]["nll_mean"]:.2f} ± ' in table
  assert TOY_PROVENANCE in table


# -- What the registry must not change. -----------------------------------------------


def test_committed_run_names_protocols_and_tables_are_unchanged():
  """Every committed record's run name recomputes from its config, the CPU protocols' names
  too, and Table 1, the convergence tables and Figure 3's table regenerate byte for byte."""
  for path in glob.glob(os.path.join(ROOT, 'results', '**', 'records', '**', '*.json'),
                        recursive=True):
    with open(path) as f:
      record = json.load(f)
    config = config_lib.Config.from_dict(record['config'])
    assert config_lib.run_name(config) == record['run_name'], path
    if '/results/table1/cpu-' in path:
      assert config_lib.protocol_name(config) == record['protocol'], path
  tables = sorted(set(glob.glob(os.path.join(ROOT, 'results', 'table1', '*', '*.md'))) | set(
      glob.glob(os.path.join(ROOT, 'results', '**', 'table1.md'), recursive=True)))
  tables = [t for t in tables if not t.endswith('equal_epochs.md')]
  assert len(tables) >= 6
  for path in tables:
    records = results.load_records(os.path.join(os.path.dirname(path), 'records'))
    make = (results.table1_markdown if path.endswith('table1.md')
            else results.convergence_markdown)
    with open(path) as f:
      assert make(records) == f.read(), path
  figure_dirs = [os.path.join(ROOT, 'results', 'figure3')] + sorted(
      glob.glob(os.path.join(ROOT, 'results', 'figure3', 'precision-*')))
  assert len(figure_dirs) >= 7
  for directory in figure_dirs:
    with open(os.path.join(directory, 'figure3.json')) as f:
      report = figure3.analyse(json.load(f))
    with open(os.path.join(directory, 'figure3.md')) as f:
      assert figure3.markdown(report) == f.read(), directory
  # The ablation tables (lvae-ablation's default --vary for damping, precision for the checks).
  ablations = {'damping_ablation/K5': ['damping', 'damping_shape'],
               'damping_ablation/K1': ['damping', 'damping_shape'],
               'precision_check': ['precision'], 'precision_check_amx': ['precision']}
  for name, vary in ablations.items():
    directory = os.path.join(ROOT, 'results', name)
    with open(os.path.join(directory, 'ablation.md')) as f:
      assert results.ablation_markdown(results.load_records(directory), vary) == f.read(), name


def test_the_grid_script_runs_every_registered_flow():
  """`experiments/table1_grid.sh` asks the registry for its flows: VAE, Langevin and HVAE."""
  script = os.path.join(ROOT, 'experiments', 'table1_grid.sh')
  with open(script) as f:
    text = f.read()
  start, end = text.index('\nSEEDS='), text.index('\n[ -n "${ONLY:-}" ]')
  out = subprocess.run(
      ['bash', '-c', 'set -euo pipefail\n' + text[start:end] + '\necho "${runs[*]}"'],
      cwd=ROOT, capture_output=True, text=True, check=True,
      env=dict(os.environ, PY=sys.executable, SEEDS='0 1',
               PYTHONPATH=ROOT))
  assert out.stdout.split() == [
      'vae:0:0', 'langevin:5:0', 'hvae:5:0', 'vae:0:0:warm', 'langevin:5:0:warm',
      'hvae:5:0:warm', 'vae:0:1', 'langevin:5:1', 'hvae:5:1',
      'langevin:1:0', 'hvae:1:0', 'langevin:10:0', 'hvae:10:0']
