#!/usr/bin/env bash
# The privacy-utility frontier of SmolLM2-135M on WikiText-2 (docs/results/frontier.md): uniform layer-drop and
# distillation (100K tokens of WikiText-2's train articles, the official code's loss) at 6, 12 and 18 of the 26
# middle blocks, plus the lossless ceiling (which also trains the FT baseline). Learning rate from {5e-5, 1e-4, 3e-4}
# (three of the paper's grid) by emulator validation; every rate's plug-in is recorded. 4 test articles.
# Resumable: run it again after an interruption and finished points are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
.venv/bin/fedot frontier --model smollm2-135m --task wikitext2 --methods uniform,distill --blocks 6,12,18 \
  --emulator-distill-tokens 102400 --emulator-distill-batch-size 8 --emulator-distill-max-length 256 \
  --emulator-distill-eval-every 10 \
  --lr 5e-5 1e-4 3e-4 --steps 30 --eval-every 15 --batch-size 4 --max-length 128 --val-limit 2 --limit 4 \
  --out docs/results/frontier/wikitext2 "$@"
