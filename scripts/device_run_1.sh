#!/usr/bin/env bash
# Device session 1 (issues #2, #3): environment, GEMM standard suite, cross-checks.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv | tee $OUT/nvidia-smi.txt
python3 -m accelbench env --backend cuda 2>&1 | tee $OUT/env.txt
python3 scripts/crosscheck.py gemm energy --out $OUT/cross 2>&1 | tee $OUT/crosscheck.log
python3 -m accelbench run --backend cuda --bench gemm --suite standard --out $OUT/runs --label "${1:-gpu}-gemm-standard" 2>&1 | tail -n 60 | tee $OUT/run.log
cd $OUT/runs && tar czf $OUT/runs.tgz . && cd - >/dev/null
rm -rf $OUT/cross/crosscheck-*
