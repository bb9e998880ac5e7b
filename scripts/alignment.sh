#!/usr/bin/env bash
# Per-round emulator alignment on SmolLM2-135M / pydocs (docs/results/adaptive.md, part a): 10 data owners, the
# quickstart otherwise (22 of 26 middle blocks, 5 local steps, 6 test topics), 4 rounds, plug-in evaluated every round:
#   fixed:   the emulator built before round 1 for the whole run (offsite-tuning);
#   fedbiot: the owner re-aligns the emulator after every aggregation and sends the changed blocks (FedBiOT).
# Usage: bash scripts/alignment.sh SEED...   (results in docs/results/adaptive/align-<config>-s<seed>)
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
OUT=docs/results/adaptive
common="num-rounds=4 eval-every=1 full-ft=false seed"
for seed in "${@:-0}"; do
  for cfg in fedbiot fixed; do
    case $cfg in
      fixed) rc="emulator-alignment='none'" ;;
      fedbiot) rc="emulator-alignment='fedbiot'" ;;
    esac
    dir=$PWD/$OUT/align-$cfg-s$seed
    [ -f "$dir/results.json" ] && continue
    .venv/bin/fedot sim sims/quickstart --num-clients 10 --run-config "$rc $common=$seed" --run-dir "$dir" --overwrite
  done
done
