#!/usr/bin/env bash
# The runs behind docs/results/compression.md: every emulator method on SmolLM2-135M at (about) equal emulator size,
# then ScaleOT's alpha/beta sweep. Small budgets so the whole set fits a 2-core CPU; each run records its command.
# Usage: bash scripts/compression.sh all | importance | sweep | tables | {pydocs|wikitext2} [METHOD...]
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
F=.venv/bin/fedot
OUT=docs/results/compression
IMP=$OUT/importance
# Dynamic LayerReplace on WikiText-2 (train split: harmonizers, validation split: rewards); pydocs is never seen.
importance() { [ -f $IMP/importance.json ] || $F emulator importance --model smollm2-135m --emulator-scaleot-replace-corpus wikitext2 --emulator-scaleot-replace-steps 200 --out $IMP; }
# 22 of 30 blocks everywhere: uniform/distill keep 2+2 adapter + 18 of the 26 middle blocks; scaleot keeps
# 4 adapter + 18 blocks and replaces 8 (alpha 0.25 -> 2 per group) with harmonizers; prune keeps 70% of the middle's
# weights (18/26 = 69%); quantize stores the whole middle at 4 bits.
method_args() {
  case $1 in
    uniform)      echo "--emulator-method uniform --emulator-blocks 18" ;;
    distill)      echo "--emulator-method distill --emulator-blocks 18 --emulator-distill-corpus wikitext2 --emulator-distill-tokens 51200 --emulator-distill-max-length 128" ;;
    scaleot)      echo "--emulator-method scaleot --emulator-scaleot-importance $IMP --emulator-scaleot-n-adapter 4 --emulator-scaleot-alpha 0.25 --emulator-src-ratio 0.8" ;;
    scaleot_nosrc) echo "--emulator-method scaleot --emulator-scaleot-importance $IMP --emulator-scaleot-n-adapter 4 --emulator-scaleot-alpha 0.25 --emulator-src-ratio 0" ;;
    prune)        echo "--emulator-method prune --emulator-prune-sparsity 0.3" ;;
    quantize)     echo "--emulator-method quantize --emulator-quantize-bits 4" ;;
  esac
}
task_args() {
  case $1 in
    pydocs)    echo "--task pydocs --lr 3e-4 --steps 30 --eval-every 15 --batch-size 4 --max-length 128 --val-limit 5 --limit 8" ;;
    wikitext2) echo "--task wikitext2 --lr 3e-4 --steps 30 --eval-every 15 --batch-size 4 --max-length 128 --val-limit 4 --limit 4" ;;
  esac
}
METHODS="uniform distill prune quantize scaleot scaleot_nosrc"
methods() {
  local task=$1; shift
  for m in "$@"; do
    case $m in scaleot*) importance ;; esac
    [ -f $OUT/$task/$m/results.json ] || $F offsite --model smollm2-135m $(task_args $task) $(method_args $m) --out $OUT/$task/$m
  done
}
sweep() {
  importance
  for a in 0.1 0.25 0.4; do
    for b in 0 0.5 0.8; do
      [ "$a" = 0.25 ] || [ "$b" = 0.8 ] || continue  # an alpha line at beta 0.8 and a beta line at alpha 0.25
      d=$OUT/sweep/a${a}_b${b}
      [ -f $d/results.json ] || $F offsite --model smollm2-135m --task pydocs --lr 3e-4 --steps 20 --eval-every 10 \
        --batch-size 4 --max-length 128 --val-limit 3 --limit 4 --emulator-method scaleot --emulator-scaleot-importance $IMP --emulator-scaleot-n-adapter 4 \
        --emulator-scaleot-alpha $a --emulator-src-ratio $b --out $d
    done
  done
}
tables() {
  # Fig. 6 with the default emulator's choice marked: adapter (N_a=4) and harmonized (alpha=0.25) blocks
  .venv/bin/python -c "
from pathlib import Path
from fedot.emulator.methods.scaleot import plot_importance, read_importance, select
r = read_importance('$IMP', 30)
plot_importance(r, Path('$OUT/importance_selection.png'), select(r['scores'], r['groups'], 4, 0.25))"
  for task in pydocs wikitext2; do
    runs=$(ls -d $OUT/$task/*/ 2>/dev/null | grep -v _table || true)
    [ -z "$runs" ] || $F compare $runs --out $OUT/${task}_table
  done
  [ ! -d $OUT/sweep ] || $F compare $OUT/sweep/*/ --out $OUT/sweep_table
}
case ${1:-all} in
  all) importance; methods pydocs $METHODS; methods wikitext2 $METHODS; sweep; tables ;;
  importance) importance ;;
  sweep) sweep ;;
  tables) tables ;;
  pydocs|wikitext2) task=$1; shift; methods $task ${@:-$METHODS} ;;
  *) echo "unknown: $1" >&2; exit 2 ;;
esac
