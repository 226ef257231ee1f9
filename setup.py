# A shim for tools that still call `python setup.py ...`; pyproject.toml is the source of truth
# for the package's metadata, dependencies, packages and console scripts.
from setuptools import setup

setup()
