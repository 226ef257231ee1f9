"""The notebooks run top to bottom, and `experiments/figure2.py` draws Figure 2.

Notebooks are executed with nbclient in a kernel of this interpreter (a kernelspec installed in a
temporary prefix, found through `JUPYTER_PATH`), in small settings (`LVAE_TF_NOTEBOOK_SMOKE=1`,
read by each notebook's first cell). After the last cell, one extra cell prints the numbers the
notebook computed as JSON, and the test checks them.
"""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import matplotlib.image
import nbformat
from nbclient import NotebookClient
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / 'notebooks'
NOTEBOOKS = ('sample_grids.ipynb', 'flow_outside_vae.ipynb')
KERNEL = 'lvae_tf_tests'
TIMEOUT = 600  # seconds per cell


def _pythonpath():
  existing = os.environ.get('PYTHONPATH')
  return str(ROOT) + (os.pathsep + existing if existing else '')


# -- Notebooks. ------------------------------------------------------------------------------


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_committed_notebook_is_valid_and_has_no_outputs(name):
  nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == 'code':
      assert not cell.outputs, f'{name}: cell {i} has outputs; strip them before committing'
      assert cell.execution_count is None, f'{name}: cell {i} has an execution count'


@pytest.fixture(scope='module')
def jupyter_path(tmp_path_factory):
  """A kernelspec running this interpreter (`sys.executable`), in a temporary prefix."""
  from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
  prefix = tmp_path_factory.mktemp('jupyter')
  kernelspec.install(kernel_name=KERNEL, prefix=str(prefix))
  spec = json.loads((prefix / 'share' / 'jupyter' / 'kernels' / KERNEL /
                     'kernel.json').read_text())
  assert spec['argv'][0] == sys.executable, spec
  return prefix / 'share' / 'jupyter'


@pytest.fixture
def kernel_env(jupyter_path, tmp_path, monkeypatch):
  """Environment inherited by the kernel: smoke settings, no saved runs, temp dirs in tmp_path."""
  monkeypatch.setenv('JUPYTER_PATH', str(jupyter_path))
  monkeypatch.setenv('LVAE_TF_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('LVAE_TF_RUNS', str(tmp_path / 'no-runs'))
  monkeypatch.setenv('PYTHONPATH', _pythonpath())
  monkeypatch.setenv('TMPDIR', str(tmp_path))
  monkeypatch.setenv('IPYTHONDIR', str(tmp_path / 'ipython'))
  monkeypatch.setenv('MPLCONFIGDIR', str(tmp_path / 'matplotlib'))
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '2')
  return tmp_path


def _execute(name, report_source):
  """Runs notebook `name` plus one cell printing JSON; returns (executed notebook, JSON)."""
  nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(report_source))
  # Raises CellExecutionError (with the cell and its traceback) if any cell fails.
  NotebookClient(nb, kernel_name=KERNEL, timeout=TIMEOUT,
                 resources={'metadata': {'path': str(NOTEBOOK_DIR)}}).execute()
  text = ''.join(o.get('text', '') for o in nb.cells[-1].outputs
                 if o.output_type == 'stream' and o.name == 'stdout')
  return nb, json.loads(text)


def _num_images(nb):
  return sum('image/png' in o.get('data', {})
             for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs)


@pytest.mark.slow
def test_sample_grids_notebook_trains_a_tiny_model_without_checkpoints(kernel_env):
  """Slow (runs the notebook in a kernel; fast cover:
  test_train.py::test_training_reduces_loss_and_moves_flow_parameters)."""
  nb, summary = _execute('sample_grids.ipynb', 'import json; print(json.dumps(summary))')
  assert _num_images(nb) == 3  # samples, reconstructions, interpolations
  assert list(summary) == ['Langevin-VAE (tiny, trained here)'], summary
  for values in summary.values():
    assert 0. <= values['sample_min'] <= values['sample_max'] <= 1., values
    # Bernoulli NLL of 784 binary pixels: positive, and below that of a coin flip per pixel
    # (784 ln 2 = 543 nats) once the output bias has learnt the mean image.
    assert 0. < values['reconstruction_nats'] < 784 * np.log(2.), values


@pytest.mark.slow
def test_flow_outside_vae_notebook_flows_beat_the_gaussian(kernel_env):
  """Slow (runs the notebook in a kernel; fast cover of the flow: tests/test_bijectors.py)."""
  nb, result = _execute('flow_outside_vae.ipynb',
                        'import json; print(json.dumps({"elbos": elbos, "errors": errors}))')
  assert _num_images(nb) == 1
  elbos, errors = result['elbos'], result['errors']
  assert set(elbos) == {'gaussian', 'langevin', 'leapfrog'}
  for kind, value in elbos.items():
    # The banana is normalised: ELBO = -KL <= 0 (up to Monte Carlo error).
    assert np.isfinite(value) and value < 3. * errors[kind], (kind, elbos)
  for kind in ('langevin', 'leapfrog'):
    assert elbos[kind] > elbos['gaussian'] + 2. * np.hypot(errors[kind], errors['gaussian']), (
        kind, elbos, errors)


# -- Figure 2. -------------------------------------------------------------------------------

STEPS = 2  # K of the tiny runs


@pytest.fixture(scope='module')
def tiny_runs(tmp_path_factory):
  """A directory whose `runs/` holds a tiny Langevin-VAE and a tiny HVAE run (K = 2).

  Named as `experiments/table1.py` names them (`lvae_tf.config.run_name`), so
  `figure2.py --preset=tiny --steps=2` run from this directory finds them by default.
  """
  from lvae_tf import data  # pylint: disable=g-import-not-at-top
  from lvae_tf import train  # pylint: disable=g-import-not-at-top
  from lvae_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('figure2')
  mnist = data.load_mnist()
  # train_and_evaluate computes the test ELBO on every test image: 100 are enough here.
  mnist = dataclasses.replace(mnist, test_images=mnist.test_images[:100],
                              test_labels=mnist.test_labels[:100])
  for flow in ('langevin', 'hvae'):
    config = train.Config.from_preset('tiny', flow=flow, num_steps=STEPS, verbose=0,
                                      max_epochs=1, nll_passes=1, nll_test_images=25)
    config = train.resolve(config)
    train.train_and_evaluate(config, str(root / 'runs' / config_lib.run_name(config)), mnist)
  return root


def _figure2(cwd, *args):
  env = dict(os.environ, PYTHONPATH=_pythonpath(), TF_CPP_MIN_LOG_LEVEL='2',
             MPLCONFIGDIR=str(cwd / '.matplotlib'))
  return subprocess.run([sys.executable, '-m', 'experiments.figure2', *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sample_grids_notebook_finds_runs_by_their_run_name(tiny_runs, kernel_env, monkeypatch):
  """Slow (trains two tiny runs, runs the notebook; fast cover: none).

  The notebook computes the run directories with `lvae_tf.config.run_name`; `tiny_runs` holds
  runs trained under the names `experiments/table1.py` gives them, so the notebook must find
  both, print their paths and train nothing.
  """
  monkeypatch.setenv('LVAE_TF_RUNS', str(tiny_runs / 'runs'))
  monkeypatch.setenv('LVAE_TF_PRESET', 'tiny')
  monkeypatch.setenv('LVAE_TF_STEPS', str(STEPS))
  monkeypatch.setenv('LVAE_TF_SEED', '85547')
  nb, summary = _execute('sample_grids.ipynb', 'import json; print(json.dumps(summary))')
  assert list(summary) == ['Langevin-VAE', 'HVAE'], summary
  printed = ''.join(o.get('text', '') for o in nb.cells[2].outputs if o.output_type == 'stream')
  for run in sorted((tiny_runs / 'runs').iterdir()):
    assert str(run) in printed, (run, printed)
  assert 'trained in' not in printed and 'no checkpoint' not in printed, printed
  assert _num_images(nb) == 3
  for values in summary.values():
    assert 0. <= values['sample_min'] <= values['sample_max'] <= 1., values


@pytest.mark.slow
def test_figure2_writes_a_png_of_both_models(tiny_runs):
  """Slow (trains two tiny runs; no fast cover of the PNG)."""
  proc = _figure2(tiny_runs, '--preset=tiny', f'--steps={STEPS}', '--num_images=16',
                  '--output=out/figure2.png')
  assert proc.returncode == 0, proc.stderr
  path = tiny_runs / 'out' / 'figure2.png'
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  image = matplotlib.image.imread(path)
  height, width = image.shape[:2]
  assert 300 <= height <= 3000 and 600 <= width <= 5000, image.shape
  assert width > height  # two grids side by side
  assert image[..., :3].std() > 0.05  # not blank
  assert os.listdir(path.parent) == ['figure2.png']  # no temporary file left behind
  assert 'Langevin-VAE' in proc.stdout and 'HVAE' in proc.stdout, proc.stdout


@pytest.mark.slow
def test_figure2_missing_run_exits_2_naming_path_and_command(tmp_path):
  """Slow (a TensorFlow subprocess; no fast cover)."""
  proc = _figure2(tmp_path, '--preset=tiny', '--output=out/figure2.png')
  assert proc.returncode == 2, (proc.returncode, proc.stderr)
  assert os.path.join('runs', 'langevin-K5-tiny-seed85547-') in proc.stderr
  assert ('python -m experiments.table1 --preset=tiny --flow=langevin --steps=5 --seed=85547'
          in proc.stderr)
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_figure2_second_run_missing_writes_nothing(tiny_runs):
  """Slow (trains two tiny runs; fast cover:
  test_figure2_missing_run_exits_2_naming_path_and_command)."""
  missing = tiny_runs / 'runs' / 'no-such-run'
  proc = _figure2(tiny_runs, '--preset=tiny', f'--steps={STEPS}', f'--hvae_run={missing}',
                  '--output=missing/figure2.png')
  assert proc.returncode == 2, (proc.returncode, proc.stderr)
  assert str(missing) in proc.stderr
  assert '--flow=hvae' in proc.stderr
  assert not (tiny_runs / 'missing').exists()
