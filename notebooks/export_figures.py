"""Executes the notebooks and saves their figures as PNGs (by default under docs/figures/).

    .venv/bin/python notebooks/export_figures.py                     # both notebooks
    .venv/bin/python notebooks/export_figures.py sample_grids.ipynb  # one
    LVAE_TF_RUNS=/path/to/runs .venv/bin/python notebooks/export_figures.py sample_grids.ipynb

Each notebook runs top to bottom with nbclient, in a kernel of this interpreter (a kernelspec
installed in a temporary prefix, as `tests/test_notebooks.py` does), with the repository on
`PYTHONPATH`; the notebook files themselves are not changed (they stay committed without
outputs). The environment is passed on, so `LVAE_TF_RUNS`, `LVAE_TF_PRESET`, `LVAE_TF_STEPS`
and `LVAE_TF_SEED` choose the runs `sample_grids.ipynb` loads (notebooks/README.md). Every
image a notebook shows is written, in order, under the names of `FIGURES`; a notebook that shows
another number of images is an error and nothing of it is written. What the cells printed (for
`sample_grids.ipynb`: which runs it loaded, or that it trained a tiny model) is printed here,
so the caption beside the figures can say under what settings they were made.
"""

import argparse
import base64
import json
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / 'notebooks'
KERNEL = 'lvae_tf_export'
TIMEOUT = 1800  # seconds per cell: the sample-grid notebook may train a tiny model

# Notebook -> the file names of the images it shows, in the order it shows them.
FIGURES = {
    'sample_grids.ipynb': ('sample_grids-samples.png', 'sample_grids-reconstructions.png',
                           'sample_grids-interpolations.png'),
    'flow_outside_vae.ipynb': ('flow_outside_vae-banana.png',),
}


def _kernel_path(prefix):
  """Installs a kernelspec running this interpreter under `prefix`; returns its JUPYTER_PATH."""
  from ipykernel import kernelspec  # pylint: disable=g-import-not-at-top
  kernelspec.install(kernel_name=KERNEL, prefix=str(prefix))
  spec = json.loads((prefix / 'share' / 'jupyter' / 'kernels' / KERNEL /
                     'kernel.json').read_text())
  if spec['argv'][0] != sys.executable:
    raise RuntimeError(f'the kernelspec runs {spec["argv"][0]}, not {sys.executable}')
  return prefix / 'share' / 'jupyter'


def execute(name):
  """Runs notebook `name` in memory; returns `(images as PNG bytes, printed text)`."""
  import nbformat  # pylint: disable=g-import-not-at-top
  from nbclient import NotebookClient  # pylint: disable=g-import-not-at-top
  nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  NotebookClient(nb, kernel_name=KERNEL, timeout=TIMEOUT,
                 resources={'metadata': {'path': str(NOTEBOOK_DIR)}}).execute()
  images, text = [], []
  for cell in nb.cells:
    if cell.cell_type != 'code':
      continue
    for output in cell.outputs:
      if output.output_type == 'stream' and output.name == 'stdout':
        text.append(output.text)
      elif 'image/png' in output.get('data', {}):
        images.append(base64.b64decode(output['data']['image/png']))
  return images, ''.join(text)


def _write(path, payload):
  """Writes `payload` to `path` whole or not at all (a temporary file, then a rename)."""
  fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(payload)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 -> as a plain open() would
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('notebooks', nargs='*', default=list(FIGURES), choices=list(FIGURES),
                      metavar='NOTEBOOK', help=f'one of {list(FIGURES)} (default: all)')
  parser.add_argument('--output_dir', default=str(ROOT / 'docs' / 'figures'),
                      help='where the PNGs go (default: docs/figures)')
  args = parser.parse_args(argv)
  out = pathlib.Path(args.output_dir)
  out.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix='lvae_tf-export-') as scratch:
    scratch = pathlib.Path(scratch)
    existing = os.environ.get('PYTHONPATH')
    os.environ.update(
        JUPYTER_PATH=str(_kernel_path(scratch / 'jupyter')),
        PYTHONPATH=str(ROOT) + (os.pathsep + existing if existing else ''),
        MPLCONFIGDIR=str(scratch / 'matplotlib'), IPYTHONDIR=str(scratch / 'ipython'))
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    for name in args.notebooks:
      images, text = execute(name)
      names = FIGURES[name]
      if len(images) != len(names):
        sys.exit(f'error: {name} showed {len(images)} images, expected {len(names)} '
                 f'({", ".join(names)}); nothing of it was written.')
      print(f'== {name}\n{text.rstrip()}')
      for file_name, png in zip(names, images):
        _write(out / file_name, png)
        print(f'wrote {out / file_name}')


if __name__ == '__main__':
  main()
