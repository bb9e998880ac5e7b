#!/usr/bin/env bash
# The GPU path on the first GPU fedot is lent (about 8 minutes on one H100; needs a CUDA build of torch in .venv).
# Each step prints PASS or FAIL with its seconds and goes on; the summary, the logs and nvidia-smi's memory samples
# (every 2 s) go to $OUT (default runs/gpu-smoke/). Run from the repository root:  bash bench/gpu_smoke.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-smoke}
mkdir -p "$OUT"
F=.venv/bin/fedot
PY=.venv/bin/python
export FEDOT_DATA_DIR="${FEDOT_DATA_DIR:-../shared/data}"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
step() {  # NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then r=PASS; else r=FAIL; fi
  echo "$r $name ($((SECONDS - t0)) s)" | tee -a "$SUMMARY"
}
nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -l 2 > "$OUT/nvidia-smi.csv" &
SMI=$!
trap 'kill $SMI 2>/dev/null' EXIT

step cuda $PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.cuda.get_device_name(0))"
# the quickstart with four data owners sharing the GPU (0.25 each) and the owner on it too; then a LoRA round
step quickstart-gpu $F sim sims/quickstart --federation-config "client-resources-num-gpus=0.25 client-resources-num-cpus=1" \
  --num-rounds 1 --run-dir "$PWD/$OUT/quickstart" --overwrite
step quickstart-lora-gpu $F sim sims/quickstart --federation-config "client-resources-num-gpus=0.25 client-resources-num-cpus=1" \
  --num-rounds 1 --tuning lora --no-full-ft --run-dir "$PWD/$OUT/lora" --overwrite
step runtime-logged $PY -c "
import json; rows = [json.loads(l) for l in open('$OUT/lora/rounds.jsonl')]
where = rows[1]['runtime']; print(where)
assert where and all(w['device'].startswith('cuda') and w['dtype'] == 'bfloat16' for w in where.values())"
# single-site: full and LoRA tuning with bf16 frozen weights, validation every 5 steps
for mode in full lora; do
  step offsite-$mode $F offsite --task pydocs --emulator-blocks 22 --tuning $mode --steps 10 --eval-every 5 \
    --batch-size 4 --max-length 128 --limit 2 --val-limit 2 --out "$OUT/offsite-$mode"
done
# fedot eval on cuda and on cpu agree within bf16's tolerance (bf16 weights on the GPU, fp32 on the CPU)
step eval-cuda $F eval --task pydocs --limit 2 --device cuda --no-eval-cache --json "$OUT/eval-cuda.json"
step eval-cpu $F eval --task pydocs --limit 2 --device cpu --no-eval-cache --json "$OUT/eval-cpu.json"
step eval-agree $PY -c "
import json; a, b = (json.load(open(f'$OUT/eval-{d}.json'))['metrics']['primary'] for d in ('cuda', 'cpu'))
print(a, b); assert abs(a / b - 1) < 0.02"
step eval-adapter-lora $F eval --task pydocs --limit 2 --device cuda --adapter "$OUT/lora/adapter.safetensors" \
  --json "$OUT/eval-lora-adapter.json"
# Table 6 on OPT-1.3B shapes (random weights), and the opt13b sim's plan checked against this GPU
step efficiency-opt-1.3b $PY bench/efficiency.py --shapes opt-1.3b --device cuda --out "$OUT/efficiency-opt-1.3b.json"
step opt13b-plan $F sim sims/opt13b_10clients --plan
echo; cat "$SUMMARY"; grep -c FAIL "$SUMMARY" > /dev/null && exit 1 || exit 0
