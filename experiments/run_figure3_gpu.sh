#!/usr/bin/env bash
# Figure 3 (time and memory) on a machine with an NVIDIA GPU: set up, check, run, commit by hand.
#
#   experiments/run_figure3_gpu.sh [output_dir]      # default results/figure3-gpu
#
# The paper grid (K = 1, 5, 10; batch 1000 for time, 1200 for memory; XLA off and on; the
# largest batch in 4 GiB by capping the GPU, one subprocess per trial) has not been run here (no
# GPU was available), so its time is unmeasured. Run it on an otherwise idle GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/figure3-gpu}"

make setup
# requirements.txt pins the CPU-agnostic wheel; the CUDA libraries come with this extra.
.venv/bin/python -m pip install --quiet "tensorflow[and-cuda]==2.21.0"
.venv/bin/python - <<'PY'
import sys
import tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
if not gpus:
  sys.exit('No GPU visible to TensorFlow: check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES.')
print('GPU:', tf.config.experimental.get_device_details(gpus[0]).get('device_name', gpus[0].name))
PY
nvidia-smi || true

.venv/bin/python -m experiments.figure3 --preset=paper --output_dir="$OUT" 2>&1 | tee "$OUT.log"

echo
echo "Done. Check $OUT/figure3.md, then commit with the device named, e.g.:"
echo "  git add $OUT && git commit -m \"Figure 3 on <GPU name>: GPU results\""
