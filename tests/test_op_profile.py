"""The op profile (`lvae_tf.benchmark.op_seconds`, `profile_op_seconds`, experiments/op_profile)."""

import json
import os
import subprocess
import sys
import time

import pytest

from lvae_tf import benchmark as bm

from tensorflow.tsl.profiler.protobuf import xplane_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _xspace(lines):
  """An XSpace with one plane; `lines`: {line name: [(name, op type, duration in ps)]}."""
  space = xplane_pb2.XSpace()
  plane = space.planes.add(name='/host:CPU')
  ids = {}
  for line_name, events in lines.items():
    line = plane.lines.add(name=line_name)
    for name, op, ps in events:
      if (name, op) not in ids:
        ids[(name, op)] = len(ids) + 1
        plane.event_metadata[ids[(name, op)]].name = name
        plane.event_metadata[ids[(name, op)]].display_name = op
      line.events.add(metadata_id=ids[(name, op)], duration_ps=ps)
  return space


def test_op_seconds_sums_kernels_by_op_type_over_executor_threads():
  space = _xspace({
      'tf_Compute/1': [('ExecutorState::Process', '', 9 * 10**12),   # a region, not a kernel
                       ('dec/deconv:_MklNativeConv2DBackpropInput',
                        '_MklNativeConv2DBackpropInput', 2 * 10**12),
                       ('flow/mul:Mul', 'Mul', 5 * 10**11)],
      'tf_Compute/2': [('enc/conv:Conv2DBackpropInput', 'Conv2DBackpropInput', 10**12),
                       ('dense:_MklMatMul', '_MklMatMul', 25 * 10**10),
                       ('flow/mul_1:Mul', 'Mul', 5 * 10**11)],
      'python': [('train_function', 'Mul', 7 * 10**12)],             # not an executor thread
  })
  assert bm.op_seconds(space) == pytest.approx(
      {'Conv2DBackpropInput': 3., 'Mul': 1., 'MatMul': 0.25})


def test_profile_of_a_training_step_counts_its_kernels_once(tmp_path):
  bench = bm.StepBench(bm.flow_config('langevin', 2))
  bench.train_step(16)
  t0 = time.perf_counter()
  ops = bm.profile_op_seconds(lambda: bench.train_step(16), str(tmp_path), calls=2)
  wall = (time.perf_counter() - t0) / 2
  # The decoder's transposed convolutions run forward and backward in every flow step.
  assert {'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MatMul'} <= set(ops)
  assert all(s > 0 for s in ops.values())
  # Kernels run on at most cpu_count executor threads at once (TensorFlow's default pool):
  # counted once (not again inside the executor's regions), they cannot sum to more. (Not
  # bounded by CPU time: a kernel's duration includes time its thread waits for a core.)
  assert sum(ops.values()) <= wall * os.cpu_count()


@pytest.mark.slow
def test_script_writes_a_profile_per_precision(tmp_path):
  """Slow (a subprocess building two models; fast cover: the two tests above)."""
  out = tmp_path / 'profile'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.op_profile', '--steps=1', '--batch=8', '--calls=1',
       '--warmup=1', f'--output_dir={out}'], cwd=ROOT, capture_output=True, text=True,
      timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = json.loads((out / 'op_profile.json').read_text())
  assert [p['precision'] for p in report['profiles']] == ['float32', 'mixed_bfloat16']
  for profile in report['profiles']:
    assert profile['op_seconds']['Conv2DBackpropInput'] > 0
    assert profile['step_seconds'] > 0
  md = (out / 'op_profile.md').read_text()
  assert '| convolutions |' in md and '| all ops |' in md and 'float32 / mixed_bfloat16' in md
  assert 'Cast' in md  # bf16 casts its layers' inputs: the op type only it runs


def test_script_refuses_an_unknown_precision(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.op_profile', '--precisions=float16',
       f'--output_dir={tmp_path}/p'], cwd=ROOT, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 2
  assert 'float16' in proc.stderr and 'choose from' in proc.stderr
  assert not os.path.exists(tmp_path / 'p')
