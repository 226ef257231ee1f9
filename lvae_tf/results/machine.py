"""The machine a run is measured on: its environment, and names for it in paths and tables.

`environment()` describes this process's machine for every record (package versions, CPU and its
instruction sets, GPUs). `machine_dir` names a machine's records subdirectory, `machine_of` the
machine in a table; a CPU-time budget buys different compute on different machines, so tables
average seeds only within one machine (`machine_labels`, `per_machine`).
"""

import datetime
import os
import platform
import re

__all__ = ['cpuinfo', 'environment', 'machine_dir', 'machine_labels', 'machine_of',
           'per_machine']


def cpuinfo():
  """The first processor's `/proc/cpuinfo` fields (`{'model name': ..., 'flags': ...}`); {} off Linux."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if not line.strip():
          break
        key, _, value = line.partition(':')
        fields[key.strip()] = value.strip()
  except OSError:
    pass
  return fields


# The instruction sets that decide training speed here (bf16 above all: math.md section 7).
_ISA_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16')


def _cpu_name():
  return cpuinfo().get('model name') or platform.processor() or platform.machine()


def _cpu_details():
  """`{'family', 'model', 'isa'}`: the CPU beyond its often generic name ('AMD EPYC')."""
  info = cpuinfo()
  flags = set(info.get('flags', '').split())
  return {'family': info.get('cpu family'), 'model': info.get('model'),
          'isa': [f for f in _ISA_FLAGS if f in flags]}


def environment():
  """Package versions and devices, for every record."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  gpus = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    gpus.append(details.get('device_name', gpu.name))
  return {
      'python': platform.python_version(),
      'tensorflow': tf.__version__,
      'tensorflow_probability': tfp.__version__,
      'tf_keras': tf_keras.__version__,
      'numpy': np.__version__,
      'cpu': _cpu_name(),
      'cpu_details': _cpu_details(),
      'cpu_count': os.cpu_count(),
      'gpus': gpus,
      'device': gpus[0] if gpus else f'CPU ({_cpu_name()}, {os.cpu_count()} cores)',
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
  }


def machine_dir(environment):
  """The records subdirectory of a machine: 'amd-epyc-2c-f25m17', 'nvidia-a100-sxm4-40gb'.

  None for an environment without `cpu_details` (records written before it was kept, which
  live directly in `records/`). One run measured on two machines is two records: a CPU-time
  budget buys different compute on each (`machine_of`).
  """
  if environment.get('gpus'):
    name = environment['gpus'][0]
  elif environment.get('cpu_details'):
    details = environment['cpu_details']
    name = (f"{environment.get('cpu', 'cpu')} {environment.get('cpu_count')}c "
            f"f{details.get('family')}m{details.get('model')}")
  else:
    return None
  return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def machine_of(record):
  """The machine a record was measured on, as far as the record says.

  A CPU-time budget buys more epochs on a faster CPU, so Table 1 and the convergence table
  average seeds and pair runs only within one machine. Records written before
  `environment.cpu_details` was kept name only their device ('CPU (AMD EPYC, 2 cores)' covered
  both an AVX2-only Zen 3 and an AVX512-BF16 Zen 4).
  """
  env = record.get('environment', {})
  device = env.get('device', 'unknown device')
  details = env.get('cpu_details')
  if env.get('gpus'):
    return device
  if not details:
    return f'{device}, CPU details unrecorded'
  isa = ' '.join(details.get('isa') or ()) or 'no AVX2'
  return f"{device}, family {details.get('family')} model {details.get('model')}, {isa}"


def machine_labels(records):
  """`{machine: 'A', ...}` in sorted order; {} when all records share one machine."""
  machines = sorted({machine_of(r) for r in records})
  return {} if len(machines) < 2 else {m: chr(ord('A') + i) for i, m in enumerate(machines)}


def per_machine(records, markdown):
  """`markdown(records of one machine)` for each machine, under a heading each."""
  machines = machine_labels(records)
  blocks = [
      f'The records of this protocol come from {len(machines)} machines. Its budget is CPU '
      'time, which buys different compute on different CPUs (compare "epochs trained"), so '
      'each machine has its own table: seeds are averaged, and runs paired, only within one '
      'machine.\n']
  for machine, label in machines.items():
    blocks.append(f'### Machine {label}: {machine}\n\n' +
                  markdown([r for r in records if machine_of(r) == machine]))
  return '\n'.join(blocks)

