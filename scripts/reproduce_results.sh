#!/usr/bin/env bash
# The runs behind docs/results/ (SmolLM2-135M, 2 CPU cores). Each run records its own command in results.md.
# Usage: bash scripts/reproduce_results.sh [pydocs|wikitext2|arc_easy|openbookqa|choice500|federated]...
set -euo pipefail
cd "$(dirname "$0")/.."
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
F=.venv/bin/fedot
# Learning rates: {1e-4, 3e-4} from the paper's grid, chosen per run by emulator validation score.
# OpenBookQA runs without the FT baseline: full fine-tuning of all 135M parameters did not fit the CPU budget twice.
COMMON="--model smollm2-135m --emulator-blocks 18 --lr 1e-4 3e-4 --full-ft"
[ $# -gt 0 ] || set -- pydocs wikitext2 arc_easy openbookqa choice500 federated
for what in "$@"; do
  case $what in
    pydocs)    $F offsite --task pydocs $COMMON --steps 60 --eval-every 20 --batch-size 4 --max-length 128 --val-limit 5 --out docs/results/pydocs ;;
    wikitext2) $F offsite --task wikitext2 $COMMON --steps 40 --eval-every 20 --batch-size 4 --max-length 128 --val-limit 7 --limit 20 --out docs/results/wikitext2 ;;
    arc_easy)  $F offsite --task arc_easy $COMMON --steps 20 --eval-every 10 --batch-size 8 --max-length 96 --val-limit 40 --limit 100 --out docs/results/arc_easy ;;
    openbookqa) $F offsite --task openbookqa ${COMMON% --full-ft} --steps 20 --eval-every 10 --batch-size 8 --max-length 96 --val-limit 40 --limit 100 --out docs/results/openbookqa ;;
    choice500) bash scripts/choice.sh arc_easy openbookqa piqa ;;  # the paper's full grid, 500 test questions each
    federated)
      $F sim sims/pydocs_4clients --run-dir "$PWD/docs/results/federated/quickstart"  # the former quickstart
      $F sim sims/smollm2_1client --run-dir "$PWD/docs/results/federated/one_client"
      $F sim sims/smollm2_10clients --run-dir "$PWD/docs/results/federated/ten_clients"
      $F compare docs/results/federated/one_client docs/results/federated/ten_clients --out docs/results/federated/compare ;;
    *) echo "unknown: $what" >&2; exit 2 ;;
  esac
done
