"""Moved to `lvae_tf.filesafety.recovery`; this old import path is kept for existing code.

`import lvae_tf.recovery` gives the very module `lvae_tf.filesafety.recovery`, not a copy
of its names: its state, and anything patched on it, are shared.
"""

import sys

from lvae_tf.filesafety import recovery as _module

sys.modules[__name__] = _module
