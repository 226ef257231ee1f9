"""Moved to `lvae_tf.filesafety.runlock`; this old import path is kept for existing code.

`import lvae_tf.runlock` gives the very module `lvae_tf.filesafety.runlock`, not a copy
of its names: its state, and anything patched on it, are shared.
"""

import sys

from lvae_tf.filesafety import runlock as _module

sys.modules[__name__] = _module
