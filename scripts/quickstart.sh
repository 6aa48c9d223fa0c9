#!/usr/bin/env bash
# The main job end to end, offline: meta-train briefly, evaluate, adapt, export, pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FEWSHOT_NLP_DATA=${FEWSHOT_NLP_DATA:-../shared/data}
.venv/bin/fewshot-nlp quickstart --output_dir runs/quickstart "$@"
