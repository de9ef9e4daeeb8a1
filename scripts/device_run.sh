#!/usr/bin/env bash
# One device session: `bash scripts/device_run.sh LABEL SUITE BENCH[,BENCH] [crosscheck...]`.
# Writes the run folder (tarred) and logs under $OUT; the run folder is what gets committed.
set -u
label=$1 suite=$2 benches=$3; shift 3
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,temperature.gpu --format=csv > $OUT/nvidia-smi.txt
[ $# -gt 0 ] && python3 scripts/crosscheck.py "$@" --out $OUT/cross 2>&1 | tee $OUT/crosscheck.log
python3 -m accelbench run --backend cuda --bench "$benches" --suite "$suite" --out $OUT/runs --label "$label" > $OUT/run.log 2>&1
echo "exit $?"; grep -v " ok " $OUT/run.log | tail -n 60
rm -rf $OUT/cross/crosscheck-*
cd $OUT/runs && tar czf $OUT/runs.tgz . && rm -rf $OUT/runs
