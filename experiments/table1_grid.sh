#!/usr/bin/env bash
# The whole Table 1 grid: K in {1, 5, 10} x {langevin, hvae}, plus the VAE, one run at a time.
# Resumable run by run: a run whose record exists is skipped; an interrupted run resumes from
# its checkpoint when the script is started again.
#
#   PRESET=paper experiments/table1_grid.sh     # the paper's budget (meant for a GPU)
#   PRESET=quick experiments/table1_grid.sh     # the reduced CPU grid committed in results/
#   EXTRA="--hvae_gradient=cached" ...          # extra flags for every run
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-paper}
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-results/table1}
SEED=${SEED:-85547}
runs=("vae 0")
for k in 1 5 10; do runs+=("langevin $k" "hvae $k"); done
for run in "${runs[@]}"; do
  set -- $run
  flow=$1; k=$2
  name="$flow-K$k-$PRESET-seed$SEED"
  [ "$flow" = hvae ] && name="hvae-reference-K$k-$PRESET-seed$SEED"
  if [[ " ${EXTRA:-} " == *"--hvae_gradient=cached"* && $flow = hvae ]]; then
    name="hvae-cached-K$k-$PRESET-seed$SEED"
  fi
  if [ -f "$RESULTS/records/$name.json" ]; then
    echo "== $name: record exists, skipped"
    continue
  fi
  echo "== $name"
  $PY -m experiments.table1 --flow="$flow" --steps="$k" --preset="$PRESET" \
    --seed="$SEED" --results_dir="$RESULTS" ${EXTRA:-}
done
$PY -m experiments.table1 --table_only --results_dir="$RESULTS"
