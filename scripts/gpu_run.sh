#!/usr/bin/env bash
# One GPU session's runs, with what a closing note needs beside them:
#
#   bash scripts/gpu_run.sh --out DIR [--crosscheck gemm,energy,allreduce] [--] [bench run options...]
#
# allreduce runs scripts/crosscheck_allreduce.py on every GPU after the run (compare it with a
# run of `--bench collectives --nproc N`).
#
# Writes DIR/nvidia-smi.txt (device, driver, power limit, clocks), DIR/env.txt (`bench env`),
# DIR/run.log, the run folder under DIR/runs/, and DIR/crosscheck/<check>.json for each
# cross-check named. Runs from a checkout without installing (PYTHONPATH=.). NVLink multicast
# stays off in every process it starts.
set -u
out="" checks=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --crosscheck) checks=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ -n "$out" ] || { echo "usage: bash scripts/gpu_run.sh --out DIR [--crosscheck gemm,energy] [bench run options...]" >&2; exit 2; }
cd "$(dirname "$0")/.."
mkdir -p "$out/runs"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > "$out/nvidia-smi.txt" 2>&1
python3 -m accelbench env --backend cuda > "$out/env.txt" 2>&1
single="${checks//allreduce/}"; single="${single//,/ }"
if [ -n "${single// /}" ]; then
  python3 scripts/crosscheck.py $single --out "$out/crosscheck" 2>&1 | tee "$out/crosscheck.log"
  rm -rf "$out"/crosscheck/crosscheck-*
fi
python3 -m accelbench run --backend cuda --out "$out/runs" "$@" > "$out/run.log" 2>&1
status=$?
case ",$checks," in *,allreduce,*)  # after the run, on every GPU of this machine
  python3 -m torch.distributed.run --standalone --nproc-per-node "$(nvidia-smi -L | wc -l)" \
    scripts/crosscheck_allreduce.py --out "$out/crosscheck" 2>&1 | tee -a "$out/crosscheck.log" ;;
esac
echo "bench run exit $status"
grep -v ": ok " "$out/run.log" | tail -n 80
exit $status
