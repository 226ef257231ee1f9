#!/usr/bin/env bash
# The damping ablation (docs/results/damping.md, docs/math.md section 6): Langevin-VAE at a fixed
# budget (the quick preset: 1,200 steps of batch 100), 3 seeds, started from
#   K = 5: the matched damping (default), the old nu0 = 0.1, and the paper's scalar nu;
#   K = 1: matched against 0.1 (where they differ ten-fold: 1.014 vs 0.1).
# Variants before seeds, so that a complete 3-seed comparison lands first. Resumable run by
# run: a published run is skipped, an interrupted one resumes from its checkpoint.
#
#   experiments/damping_ablation.sh            # then: python -m experiments.ablation
#   SEEDS="0" K="5" ...                        # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-results/damping_ablation}
WORKDIR=${WORKDIR:-runs}
SEEDS=${SEEDS:-0 1 2}
K=${K:-5 1}
for k in $K; do
  variants=("" "--damping=0.1")
  if [ "$k" = 5 ]; then variants+=("--damping_shape=scalar"); fi
  for variant in "${variants[@]}"; do
    for seed in $SEEDS; do
      echo "== K=$k seed $seed ${variant:-matched} ($(date -u +%H:%M:%S))"
      $PY -m experiments.table1 --flow=langevin --steps="$k" --preset=quick --seed="$seed" \
        $variant --workdir="$WORKDIR" --results_dir="$RESULTS/K$k" --skip_if_published
    done
  done
  $PY -m experiments.ablation --results_dir="$RESULTS/K$k"
done
