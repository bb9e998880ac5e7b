#!/usr/bin/env bash
# 1 data owner vs its early-stopping control vs 10 data owners, 3 seeds each (issue 15, part 5; docs/results/federated.md):
#   smollm2_1client:          one data owner with all the data, 40 local steps a round (120 steps in all);
#   smollm2_1client_control:  one data owner with all the data, 4 local steps a round (each of the 10's per-round steps);
#   smollm2_10clients:        ten data owners by document, 4 local steps each a round (120 steps in all).
# 3 rounds, plug-in evaluated every round on the first 6 pydocs test topics, no FT baseline.
# Usage: bash scripts/federated_seeds.sh SEED...   (results in docs/results/federated/seeds/<sim>-s<seed>)
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
for seed in "${@:-0}"; do
  for sim in smollm2_1client smollm2_1client_control smollm2_10clients; do
    dir=$PWD/docs/results/federated/seeds/$sim-s$seed
    [ -f "$dir/results.json" ] && continue
    .venv/bin/fedot sim "sims/$sim" --run-config "eval-limit=6 full-ft=false seed=$seed" --run-dir "$dir" --overwrite
  done
done
