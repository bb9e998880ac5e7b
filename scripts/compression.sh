#!/usr/bin/env bash
# The runs behind docs/results/compression.md as `fedot frontier` points (resumable: a finished point is reused, and
# each adds the lossless ceiling with FT): every emulator method on SmolLM2-135M at (about) equal emulator size, then
# ScaleOT's alpha/beta sweep. Small budgets so the whole set fits a 2-core CPU; each point records its command.
# Usage: bash scripts/compression.sh [pydocs|wikitext2|sweep|all]
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
F=.venv/bin/fedot
OUT=docs/results/compression
IMP=$OUT/importance
# Dynamic LayerReplace on WikiText-2 (train split: harmonizers, validation split: rewards); pydocs is never seen.
[ -f $IMP/importance.json ] || $F emulator importance --model smollm2-135m --emulator-scaleot-replace-corpus wikitext2 \
  --emulator-scaleot-replace-steps 200 --out $IMP
SCALEOT="emulator-method='scaleot' emulator-scaleot-importance='$IMP' emulator-scaleot-n-adapter=4"
# 22 of 30 blocks everywhere: uniform/distill keep 2+2 adapter + 18 of the 26 middle blocks; scaleot keeps 4 adapter
# + 18 blocks and replaces 8 (alpha 0.25 -> 2 per group) with harmonizers; prune keeps 70% of the middle's weights
# (18/26 = 69%); quantize stores the whole middle at 4 bits.
POINTS="uniform: emulator-blocks=18;
  distill: emulator-method='distill' emulator-blocks=18 emulator-distill-corpus='wikitext2' emulator-distill-tokens=51200 emulator-distill-max-length=128;
  prune: emulator-method='prune' emulator-blocks=-1 emulator-prune-sparsity=0.3;
  quantize: emulator-method='quantize' emulator-blocks=-1 emulator-quantize-bits=4;
  scaleot: $SCALEOT emulator-scaleot-alpha=0.25 emulator-src-ratio=0.8;
  scaleot_nosrc: $SCALEOT emulator-scaleot-alpha=0.25 emulator-src-ratio=0"
# ScaleOT's sweep: an alpha line at beta 0.8 and a beta line at alpha 0.25
SWEEP="a0.1_b0.8: $SCALEOT emulator-scaleot-alpha=0.1 emulator-src-ratio=0.8;
  a0.25_b0: $SCALEOT emulator-scaleot-alpha=0.25 emulator-src-ratio=0;
  a0.25_b0.5: $SCALEOT emulator-scaleot-alpha=0.25 emulator-src-ratio=0.5;
  a0.25_b0.8: $SCALEOT emulator-scaleot-alpha=0.25 emulator-src-ratio=0.8;
  a0.4_b0.8: $SCALEOT emulator-scaleot-alpha=0.4 emulator-src-ratio=0.8"
frontier() {  # TASK OUT POINTS EXTRA...
  local task=$1 out=$2 points=$3; shift 3
  $F frontier --model smollm2-135m --task "$task" --lr 3e-4 --batch-size 4 --max-length 128 --points "$points" \
    "$@" --out "$out"
}
case ${1:-all} in
  pydocs) frontier pydocs $OUT/pydocs-frontier "$POINTS" --steps 30 --eval-every 15 --val-limit 5 --limit 8 ;;
  wikitext2) frontier wikitext2 $OUT/wikitext2-frontier "$POINTS" --steps 30 --eval-every 15 --val-limit 4 --limit 4 ;;
  sweep) frontier pydocs $OUT/sweep-frontier "$SWEEP" --steps 20 --eval-every 10 --val-limit 3 --limit 4 ;;
  all) for t in pydocs wikitext2 sweep; do bash "$0" $t; done ;;
  *) echo "unknown: $1 (pydocs, wikitext2, sweep or all)" >&2; exit 2 ;;
esac
