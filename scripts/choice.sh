#!/usr/bin/env bash
# Single-site offsite-tuning on multiple-choice tasks at 500 test questions (issue 15, part 4): SmolLM2-135M, the
# uniform 2-18-2 emulator, the paper's learning-rate grid {2e-5, 5e-5, 1e-4, 2e-4, 3e-4} chosen by emulator validation
# (the plug-in of every rate is recorded beside it), the FT baseline, 95% Wilson intervals in results.json.
# Usage: bash scripts/choice.sh TASK...   (results in docs/results/choice500/<task>, summary in its README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
for task in "${@:-piqa}"; do
  out=docs/results/choice500/$task
  [ -f "$out/results.json" ] && continue
  .venv/bin/fedot offsite --task "$task" --model smollm2-135m --emulator-blocks 18 --lr 2e-5 5e-5 1e-4 2e-4 3e-4 \
    --full-ft --steps 20 --eval-every 10 --batch-size 8 --max-length 96 --val-limit 40 --limit 500 --out "$out"
done
.venv/bin/python scripts/choice_table.py  # docs/results/choice500/README.md: the runs side by side
