#!/usr/bin/env bash
# The quality benchmark at GPU scale (one GPU, at most ~10 minutes): full fine-tune of SmolLM2-135M-Instruct in bf16
# with recipes/gpu-train.toml, abstention calibrated on validation data, then student vs noop and propagate on
# held-out repositories and Zed's eval cases; prints the same table as bench/quality.py.
#
# Usage: bench/quality_gpu.sh DATA_DIR [OUT_DIR]
#   DATA_DIR holds train.jsonl(.gz), dev.jsonl(.gz), test.jsonl(.gz) (examples after `context` and
#   `diagnostics`, split by repository) and optionally zed-evals/ (Zed Markdown cases).
# Environment: PYTHON (default python3); BASE_MODEL (a .gguf file or HF folder; default the embedded SmolLM2);
#   WHEELS (a folder of wheels to install first, for an offline GPU machine without nextedit's dependencies);
#   APPEND=1 appends the tables to BENCHMARKS.md.
set -euo pipefail
DATA=${1:?usage: bench/quality_gpu.sh DATA_DIR [OUT_DIR]}
OUT=${2:-out/quality-gpu}
PY=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/nextedit-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/nextedit-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name(0))"
pick() { for f in "$DATA/$1.jsonl.gz" "$DATA/$1.jsonl"; do [ -f "$f" ] && { echo "$f"; return; }; done; echo "missing $DATA/$1.jsonl" >&2; exit 2; }
args=(--train-config recipes/gpu-train.toml --train "$(pick train)" --dev "$(pick dev)"
      --test "held-out-repos=$(pick test)" --out "$OUT" --title "GPU recipe (recipes/gpu-train.toml)")
[ -d "$DATA/zed-evals" ] && args+=(--zed "$DATA/zed-evals")
[ -d bench/cases/handwritten ] && args+=(--zed bench/cases/handwritten)
[ -n "${BASE_MODEL:-}" ] && args+=(--base-model "$BASE_MODEL")
[ "${APPEND:-0}" = 1 ] && args+=(--append)
"$PY" bench/quality.py "${args[@]}"
