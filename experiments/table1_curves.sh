#!/usr/bin/env bash
# The runs behind the equal-epochs Table 1, the NLL curves and the damping/step-size ablation at
# the `cpu` budget (docs/results/table1.md, issue 27): two lanes that share a 2-core machine,
# each a list of runs in order, every run resumable and skipped once published from this
# machine. The cpu preset keeps the best weights at epochs 5, 10, 20, 30, ... and measures their
# NLL (metrics.nll_curve), so each run gives NLL against epochs and against CPU-minutes.
#
#   LANE=a experiments/table1_curves.sh & LANE=b experiments/table1_curves.sh &
#   python -m experiments.nll_curves --protocol=cpu-7d1379        # when the records are in
#
# Lane a: Langevin K = 5 and the VAE, seeds 0-2, then the damping nu0 = 0.1 variant and K = 10
# Langevin; lane b: HVAE K = 5, seeds 0-2, K = 1 of both flows and the step-size floor, the
# scalar-damping variant, K = 10 HVAE. K = 10 trains 90 CPU-minutes (a protocol of its own):
# 60 stop short of 20 epochs. The variants publish under $ABLATION/K<k>.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-results/table1}
ABLATION=${ABLATION:-results/damping_ablation/cpu}
WORKDIR=${WORKDIR:-runs}
case "${LANE:-a}" in
  a) runs=("langevin|5|0|" "vae|0|0|" "langevin|5|1|" "vae|0|1|" "langevin|5|2|" "vae|0|2|"
           "langevin|5|0|--damping=0.1" "langevin|5|1|--damping=0.1" "langevin|5|2|--damping=0.1"
           "langevin|10|0|--train_minutes=90") ;;
  b) runs=("hvae|5|0|" "hvae|5|1|" "hvae|5|2|" "langevin|1|0|" "hvae|1|0|"
           "langevin|1|0|--min_step_size=0.1"
           "langevin|5|0|--damping_shape=scalar" "langevin|5|1|--damping_shape=scalar"
           "langevin|5|2|--damping_shape=scalar" "hvae|10|0|--train_minutes=90") ;;
  *) echo "LANE must be a or b, got ${LANE}" >&2; exit 2 ;;
esac
[ -n "${ONLY:-}" ] && IFS=' ' read -r -a runs <<< "$ONLY"
for run in "${runs[@]}"; do
  IFS='|' read -r flow k seed extra <<< "$run"
  results="$RESULTS"
  case "$extra" in --damping*|--min_step_size*) results="$ABLATION/K$k" ;; esac
  echo "== $run ($(date -u +%H:%M:%S))"
  # shellcheck disable=SC2086  # $extra is zero or one flag
  $PY -m experiments.table1 --preset=cpu --flow="$flow" --steps="$k" --seed="$seed" $extra \
    --workdir="$WORKDIR" --results_dir="$results" --skip_if_published
done
