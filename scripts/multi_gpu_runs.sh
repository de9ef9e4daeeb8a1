#!/usr/bin/env bash
# Every run that needs several GPUs of one machine, in one stay (docs/multi-rank.md):
#
#   bash scripts/multi_gpu_runs.sh --out DIR [--only tp,fleet,collectives] [--backend cuda] [--loaded-card N]
#
#   tp           decode-tp, standard suite (Llama-3.1-70B and 8B shapes, batch 1 and 16, eager and graphs
#                engines) on 2 GPUs, then on 4 where the machine has them; --step-parts for the prediction
#   fleet        bench fleet on every GPU (default selection, with the node's all-reduce and the peer-to-peer
#                matrix), saving a baseline; again against it with a bf16 GEMM loop on one card (--loaded-card,
#                default the last): that card must fail and the others pass
#   collectives  the standard collectives on every GPU, then `bench compare` against the committed 4x H200 run
#                (results/*-h200x4-collectives-final; its fingerprint says whether the machines match)
#
# Each step writes under DIR/<step>/ and its log; a step that fails does not stop the others. NVLink
# multicast stays off in every process (NCCL_NVLS_ENABLE=0 and the rest), torchrun's children included.
# `--backend cpu` is a dry run of the same commands with gloo ranks (small cases, the machinery only).
set -u
out="" only="tp,fleet,collectives" backend="cuda" loaded=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --loaded-card) loaded=$2; shift 2 ;;
    *) echo "usage: bash scripts/multi_gpu_runs.sh --out DIR [--only tp,fleet,collectives] [--backend cuda|cpu] [--loaded-card N]" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "usage: bash scripts/multi_gpu_runs.sh --out DIR [...]" >&2; exit 2; }
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$out"
if [ "$backend" = cpu ]; then
  gpus=2 suite=quick tp_cases=(--case tiny-llama3/tp/) coll_cases=(--case all_reduce/fp32/) fleet_quick=(--quick --devices 2)
else
  nvidia-smi --query-gpu=index,name,driver_version,power.limit --format=csv > "$out/nvidia-smi.txt" 2>&1
  gpus=$(nvidia-smi -L | wc -l) suite=standard tp_cases=() coll_cases=() fleet_quick=()
fi
echo "$gpus device(s), backend $backend" | tee "$out/devices.txt"
status=0
has() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if has tp; then
  for n in 2 4; do
    [ "$gpus" -ge "$n" ] || { echo "tp: $n GPUs: this machine has $gpus, skipped" | tee -a "$out/skipped.txt"; continue; }
    mkdir -p "$out/tp$n"
    python3 -m accelbench run --backend "$backend" --bench decode-tp --nproc "$n" --suite "$suite" --step-parts \
      "${tp_cases[@]}" --label "decode-tp-$n" --out "$out/tp$n" > "$out/tp$n/run.log" 2>&1 || status=1
    echo "tp$n: exit $?"; tail -n 25 "$out/tp$n/run.log"
  done
fi

if has fleet; then
  mkdir -p "$out/fleet"
  python3 -m accelbench fleet --backend "$backend" "${fleet_quick[@]}" --save-baseline "$out/fleet/baseline.json" \
    --out "$out/fleet" > "$out/fleet/clean.log" 2>&1 || status=1
  tail -n 30 "$out/fleet/clean.log"
  card=${loaded:-$((gpus - 1))}
  if [ "$backend" = cuda ]; then
    CUDA_VISIBLE_DEVICES=$card python3 scripts/gemm_loop.py 400 > "$out/fleet/gemm_loop.log" 2>&1 &
    loop=$!; sleep 5
    python3 -m accelbench fleet --backend cuda --baseline "$out/fleet/baseline.json" --out "$out/fleet" \
      > "$out/fleet/loaded-card$card.log" 2>&1
    echo "fleet beside a GEMM loop on card $card: exit $? (1 expected: that card fails)"
    kill "$loop" 2>/dev/null; wait "$loop" 2>/dev/null
    tail -n 30 "$out/fleet/loaded-card$card.log"
  fi
fi

if has collectives; then
  mkdir -p "$out/collectives"
  python3 -m accelbench run --backend "$backend" --bench collectives --nproc "$gpus" --suite "$suite" \
    "${coll_cases[@]}" --label "collectives-$gpus" --out "$out/collectives" > "$out/collectives/run.log" 2>&1 || status=1
  tail -n 15 "$out/collectives/run.log"
  reference=$(ls -d results/*-h200x4-collectives-final 2>/dev/null | head -1)
  run=$(ls -d "$out"/collectives/*/ 2>/dev/null | head -1)
  if [ -n "$reference" ] && [ -n "$run" ]; then
    python3 -m accelbench compare "$reference" "$run" > "$out/collectives/compare.txt" 2>&1
    echo "bench compare against $reference: exit $?"; tail -n 30 "$out/collectives/compare.txt"
  fi
fi
exit $status
