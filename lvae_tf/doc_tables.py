"""Moved to `lvae_tf.results.documents`; this old import path is kept for existing code.

`import lvae_tf.doc_tables` gives the very module `lvae_tf.results.documents`, not a copy of
its names: anything patched on it is shared.
"""

import sys

from lvae_tf.results import documents as _module

sys.modules[__name__] = _module
