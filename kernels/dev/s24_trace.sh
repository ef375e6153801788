#!/usr/bin/env bash
# Prepared in session 23, not yet run: the small-M kernel's phase trace at M = 1 (and 2 / 4 / 8) on main, the
# picture of the ~3 us per launch beyond the bytes (kernels/dev/w4a16_notes.md, session 23, "Where M = 1 stands").
# Build here: make -j2 && make dev-w4-trace; carry build/dev/bench_w4_trace beside lq (stripped, as the other
# device scripts do) with the runtime libraries. On the device:
#   bash kernels/dev/s24_trace.sh DIR   (DIR holds bench_w4_trace; results under $OUT)
set -u
D=${1:?the folder with bench_w4_trace}
R=${OUT:-/tmp}
# the four llama3-8b products at M = 1 on path 3, then M = 2 / 4 / 8 (path 3 by default for M <= 8)
timeout 200 $D/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 \
    6144x4096x4 4096x4096x4 28672x4096x4 4096x14336x4 6144x4096x8 4096x4096x8 > $R/trace_m1.txt 2>&1
# the plans that leave room for the next launch's blocks (session 15's o 1,8 case), for the comparison
for p in 1,8 2,8 1,16; do echo "== LQ_W4S_PLAN=$p" >> $R/trace_plans.txt
  LQ_W4S_PLAN=$p timeout 60 $D/bench_w4_trace 4096x4096x1 4096x14336x1 >> $R/trace_plans.txt 2>&1; done
cat $R/trace_m1.txt | head -60
