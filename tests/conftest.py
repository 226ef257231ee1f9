"""Shared pytest setup: quiet TF logs; the `slow` marker.

`make test` (CI) runs every test; `make test-fast` deselects those marked `slow` (subprocess
training runs, notebooks, multi-process distribution), each of which names in its docstring
the fast test that covers the same claim where one exists.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
