"""Moved to `lvae_tf.filesafety.interrupts`; this old import path is kept for existing code.

`import lvae_tf.interrupts` gives the very module `lvae_tf.filesafety.interrupts`, not a copy
of its names: its state, and anything patched on it, are shared.
"""

import sys

from lvae_tf.filesafety import interrupts as _module

sys.modules[__name__] = _module
