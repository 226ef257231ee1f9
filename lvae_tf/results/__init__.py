"""Run records and the tables built from them.

* `machine`: the environment of a run (`environment`) and names for its machine.
* `store`: reading records (`load_records`), their protocol and identity, their paths.
* `publishing`: `publish` a record and rebuild its protocol's table, under the protocol's lock.
* `stats`: paired NLL differences (`paired_nll`), Student-t intervals, mean ± std cells.
* `columns`: the tables' columns (flow label, K), their order, titles and pairing.
* `tables`: Table 1 (`table1_markdown`).
* `convergence`: validation ELBO at equal epochs and equal CPU time (`convergence_markdown`).
* `ablation`: runs that differ in chosen fields, paired by seed (`ablation_markdown`).
* `documents`: the tables README.md and docs/ copy from results/, refreshed and checked.

Every public name of these modules is importable from `lvae_tf.results` itself. Writes go
through `lvae_tf.filesafety` (its atomic writes are also importable from here, where they used
to live).
"""

# The atomic writes moved to lvae_tf.filesafety; they stay importable from here.
from lvae_tf.filesafety import WriteError
from lvae_tf.filesafety import append_text
from lvae_tf.filesafety import as_write_error
from lvae_tf.filesafety import atomic_path
from lvae_tf.filesafety import remove_orphan_temporaries
from lvae_tf.filesafety import write_json_atomic
from lvae_tf.filesafety import write_text_atomic
from lvae_tf.results.ablation import ablation_markdown
from lvae_tf.results.convergence import SAME_TRAINING_NATS
from lvae_tf.results.convergence import convergence_markdown
from lvae_tf.results.convergence import machine_agreement
from lvae_tf.results.documents import markdown_table
from lvae_tf.results.documents import refresh_embedded_tables
from lvae_tf.results.machine import cpuinfo
from lvae_tf.results.machine import environment
from lvae_tf.results.machine import machine_dir
from lvae_tf.results.machine import machine_labels
from lvae_tf.results.machine import machine_of
from lvae_tf.results.publishing import find_published
from lvae_tf.results.publishing import locked
from lvae_tf.results.publishing import publish
from lvae_tf.results.publishing import write_tables
from lvae_tf.results.stats import paired_nll
from lvae_tf.results.stats import t_interval
from lvae_tf.results.store import identity_name
from lvae_tf.results.store import load_records
from lvae_tf.results.store import protocol_of
from lvae_tf.results.store import record_path
from lvae_tf.results.store import record_stem
from lvae_tf.results.store import run_identity
from lvae_tf.results.store import unique_runs
from lvae_tf.results.tables import table1_markdown

# The private names lvae_tf.nll_curves used before the columns had a module of their own.
from lvae_tf.results import columns as _columns  # pylint: disable=g-bad-import-order
_column = _columns.column_of
_column_title = _columns.column_title
_sorted_columns = _columns.sorted_columns

__all__ = [
    'SAME_TRAINING_NATS',
    'WriteError',
    'ablation_markdown',
    'append_text',
    'as_write_error',
    'atomic_path',
    'convergence_markdown',
    'cpuinfo',
    'environment',
    'find_published',
    'identity_name',
    'load_records',
    'locked',
    'machine_agreement',
    'machine_dir',
    'machine_labels',
    'machine_of',
    'markdown_table',
    'paired_nll',
    'protocol_of',
    'publish',
    'record_path',
    'record_stem',
    'refresh_embedded_tables',
    'remove_orphan_temporaries',
    'run_identity',
    't_interval',
    'table1_markdown',
    'unique_runs',
    'write_json_atomic',
    'write_tables',
    'write_text_atomic',
]
