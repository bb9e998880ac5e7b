#!/usr/bin/env bash
# Emulator tiers on SmolLM2-135M / pydocs (docs/results/adaptive.md): 10 data owners with equal client steps, each
# run as the quickstart otherwise (3 rounds x 5 local steps, 6 test topics, no FT baseline):
#   mixed: tiers 12, 18 and 22 of the 26 middle blocks, by partition (4 + 3 + 3 data owners);
#   small: every data owner on the 12-block emulator;  large: every data owner on the 22-block emulator.
# Usage: bash scripts/tiers.sh SEED...   (results in docs/results/adaptive/<config>-s<seed>)
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
OUT=docs/results/adaptive
common="full-ft=false seed"
for seed in "${@:-0}"; do
  for cfg in mixed small large; do
    case $cfg in
      mixed) rc="emulator-tiers='12,18,22' emulator-tier-unnamed='by-partition'" ;;
      small) rc="emulator-blocks=12" ;;
      large) rc="emulator-blocks=22" ;;
    esac
    dir=$PWD/$OUT/$cfg-s$seed
    [ -f "$dir/results.json" ] && continue
    .venv/bin/fedot sim sims/quickstart --num-clients 10 --run-config "$rc $common=$seed" --run-dir "$dir" --overwrite
  done
done
