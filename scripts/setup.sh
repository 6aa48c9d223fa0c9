#!/usr/bin/env bash
# Create .venv (torch 2.13.0 CPU first, then the project with its dev extras) and, where node
# is installed, transformers.js for the ONNX checks (scripts/onnx). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's own notices and build warnings go to .venv/setup.log; they are shown if it fails.
log=.venv/setup.log
{
  .venv/bin/python -m pip install -q --upgrade pip &&
    .venv/bin/python -m pip install -q "torch==2.13.0" &&
    .venv/bin/python -m pip install -q -e ".[dev]"
} >"$log" 2>&1 || { cat "$log"; echo "setup failed (log: $log)" >&2; exit 1; }
if command -v npm >/dev/null && [ ! -d scripts/onnx/node_modules/@huggingface/transformers ]; then
  # onnxruntime-node's CPU binaries ship in the package; its install script only fetches CUDA
  (cd scripts/onnx && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund \
    --ignore-scripts >>"../../$log" 2>&1) ||
    echo "note: npm could not install scripts/onnx (log: $log); the transformers.js test skips" >&2
fi
