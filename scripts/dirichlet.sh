#!/usr/bin/env bash
# IID vs Dirichlet label skew on a multiple-choice task (issue 15, part 5): ARC-Easy, 10 data owners, the quickstart
# otherwise (22 of 26 middle blocks, 3 rounds x 5 local steps), scored on the first 500 test questions after round 3.
#   iid: uniform random shares;  dirichlet-<alpha>: each answer label spread over the data owners by Dirichlet(alpha).
# Usage: bash scripts/dirichlet.sh SEED...   (results in docs/results/federated/dirichlet/<config>-s<seed>)
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
common="task='arc_easy' eval-limit=500 full-ft=false seed"
for seed in "${@:-0}"; do
  for cfg in iid dirichlet-0.1 dirichlet-0.5 dirichlet-1.0; do
    case $cfg in
      iid) rc="partitioning='iid'" ;;
      dirichlet-*) rc="partitioning='dirichlet' dirichlet-alpha=${cfg#dirichlet-}" ;;
    esac
    dir=$PWD/docs/results/federated/dirichlet/$cfg-s$seed
    [ -f "$dir/results.json" ] && continue
    .venv/bin/fedot sim sims/quickstart --num-clients 10 --run-config "$rc $common=$seed" --run-dir "$dir" --overwrite
  done
done
