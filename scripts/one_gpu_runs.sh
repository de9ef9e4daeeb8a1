#!/usr/bin/env bash
# The one-GPU runs behind the fleet, explain and serve figures (docs/fleet.md, docs/metrics.md "Predicted beside
# measured", docs/benchmarks.md "Serving under load"), each step's logs and run folders under DIR/<step>/:
#
#   bash scripts/one_gpu_runs.sh --out DIR [--only fleet,explain,serve] [--tokenizer DIR] [--limit-s S]
#
#   fleet    bench fleet --quick saving a baseline; again against it (it must pass); again beside a bf16 GEMM
#            loop on the same GPU (it must fail, slow against the baseline)
#   explain  Llama-3.1-8B shape: graphs bf16 at batch 1 and 16, FP8 W8A8 per tensor at batch 1, the 4096-token
#            prefill, with --step-parts, beside the bf16 and FP8 8192^3 GEMMs and the floor probe, in one run
#   serve    a Llama-3.1-8B-shaped checkpoint of random weights (scripts/make_random_checkpoint.py, the tokenizer
#            of --tokenizer DIR, e.g. the SmolLM2 fixture) under `transformers serve`, swept 1 -> saturation at
#            1024/128, in one run with the decode graphs engine's batch-1 case on the same checkpoint
#
# --limit-s caps each `bench run` (SIGTERM: finished cases are kept). NVLink multicast stays off in every process.
set -u
out="" only="fleet,explain,serve" tokenizer="" limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --tokenizer) tokenizer=$2; shift 2 ;;
    --limit-s) limit=$2; shift 2 ;;
    *) echo "usage: bash scripts/one_gpu_runs.sh --out DIR [--only fleet,explain,serve] [--tokenizer DIR] [--limit-s S]" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "usage: bash scripts/one_gpu_runs.sh --out DIR [...]" >&2; exit 2; }
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit --format=csv > "$out/nvidia-smi.txt" 2>&1
has() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
capped() { if [ -n "$limit" ]; then timeout -s TERM "$limit" "$@"; else "$@"; fi; }
status=0

if has fleet; then
  mkdir -p "$out/fleet"
  for step in baseline pass; do
    extra=(--save-baseline "$out/fleet/baseline.json"); [ $step = pass ] && extra=(--baseline "$out/fleet/baseline.json")
    start=$(date +%s)
    python3 -m accelbench fleet --backend cuda --quick "${extra[@]}" --out "$out/fleet" > "$out/fleet/$step.log" 2>&1 || status=1
    echo "fleet $step: $(( $(date +%s) - start )) s"; tail -n 14 "$out/fleet/$step.log"
  done
  python3 scripts/gemm_loop.py 120 > "$out/fleet/gemm_loop.log" 2>&1 &
  loop=$!; sleep 5
  python3 -m accelbench fleet --backend cuda --quick --baseline "$out/fleet/baseline.json" --out "$out/fleet" \
    > "$out/fleet/loaded.log" 2>&1
  echo "fleet beside a GEMM loop: exit $? (1 expected)"; tail -n 14 "$out/fleet/loaded.log"
  kill "$loop" 2>/dev/null; wait "$loop" 2>/dev/null
fi

if has explain; then
  mkdir -p "$out/explain"
  capped python3 -m accelbench run --backend cuda --suite standard --bench fp8,decode --step-parts --no-energy \
    --case bf16/torch/gemm/normal/m8192k8192n8192 --case tensor/auto/gemm/normal/m8192k8192n8192 --case floor/copy \
    --case llama3.1-8b/graphs/bf16/b1/p512 --case llama3.1-8b/graphs/bf16/b16/p512 \
    --case llama3.1-8b/graphs/bf16-w8a8-tensor/b1/p512 --case llama3.1-8b/eager/bf16/b1/p4096 \
    --label explain-8b-step-parts --out "$out/explain" > "$out/explain/run.log" 2>&1 || status=1
  tail -n 25 "$out/explain/run.log"
  run=$(ls -d "$out"/explain/*/ 2>/dev/null | head -1)
  [ -n "$run" ] && python3 - "$run" <<'PY'
import sys
from accelbench.store import cases_frame, load_run
f = cases_frame([load_run(sys.argv[1])])
f = f[f.case_id.str.startswith("llama") & f.metric.str.contains("tpot|ttft|predicted|projections|share", na=False)]
print(f.pivot_table(index="metric", columns="case_id", values="value").to_string())
PY
fi

if has serve; then
  mkdir -p "$out/serve"
  if ! python3 -c "import fastapi, uvicorn" 2>/dev/null; then
    echo "serve: transformers serve needs FastAPI and Uvicorn (pip install 'accelbench[serve]'): skipped"; status=1
  elif [ -z "$tokenizer" ]; then
    echo "serve: needs --tokenizer DIR (a folder with tokenizer.json): skipped"; status=1
  else
    scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT  # 16 GB of random weights: rebuilt by the script, never kept
    model="$scratch/llama3.1-8b-shape-random"
    python3 scripts/make_random_checkpoint.py "$model" --shape llama3.1-8b --tokenizer "$tokenizer" --device cuda \
      > "$out/serve/checkpoint.log" 2>&1 || { echo "serve: the checkpoint was not written"; tail -n 3 "$out/serve/checkpoint.log"; exit 1; }
    capped python3 -m accelbench run --backend cuda --suite standard --bench decode,serve --engine transformers \
      --weights "$model" --case floor/copy --case graphs/bf16/b1/p512 --case in1024-out128 \
      --label serve-8b-shape-transformers --out "$out/serve/runs" > "$out/serve/run.log" 2>&1 || status=1
    tail -n 30 "$out/serve/run.log"
  fi
fi
exit $status
