#!/usr/bin/env bash
# Create .venv (torch 2.13.0 CPU first, then the project with its dev extras). Idempotent.
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
