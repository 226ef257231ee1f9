"""File safety: what keeps a run's files whole through crashes, kills, full disks and Ctrl-C.

* `lvae_tf.filesafety.atomic`: writes that never leave a half-written file (`atomic_path`,
  `write_text_atomic`, `write_json_atomic`, `append_text`), the clean-up of temporaries a kill
  left behind (`remove_orphan_temporaries`), and `WriteError`, a failed write naming its file.
  Re-exported here: `filesafety.write_json_atomic(path, obj)`.
* `lvae_tf.filesafety.runlock`: one run at a time per run directory (`RunLock`).
* `lvae_tf.filesafety.interrupts`: Ctrl-C and SIGTERM as an exception raised only at safe points.
* `lvae_tf.filesafety.recovery`: what a run finds in its directory after a crash (intact
  checkpoints, budgets, orphaned temporaries) and what it does about it.

Nothing here imports TensorFlow at import time.
"""

from lvae_tf.filesafety.atomic import WriteError
from lvae_tf.filesafety.atomic import append_text
from lvae_tf.filesafety.atomic import as_write_error
from lvae_tf.filesafety.atomic import atomic_path
from lvae_tf.filesafety.atomic import remove_orphan_temporaries
from lvae_tf.filesafety.atomic import write_json_atomic
from lvae_tf.filesafety.atomic import write_text_atomic

__all__ = ['WriteError', 'append_text', 'as_write_error', 'atomic_path',
           'remove_orphan_temporaries', 'write_json_atomic', 'write_text_atomic']
