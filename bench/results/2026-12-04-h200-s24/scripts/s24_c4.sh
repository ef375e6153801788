#!/usr/bin/env bash
# Session 24, call 4: main's small-M kernel phase trace with the SM clock beside each stamp (kernels/dev/
# bench_w4_trace.cu as committed after call 3): the phases inside a block in clocks, M = 1 on the four llama3
# shapes, M = 8 on qkv / o, and o at M = 1 under the two 8-warp plans.
# carry ["carry/libs.tar.xz","carry/w4c.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4c.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib
timeout 100 carry/w4c/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 6144x4096x8 4096x4096x8 > $OUT/trace_clk.txt 2>&1
LQ_W4S_PLAN=1,8 timeout 40 carry/w4c/bench_w4_trace 4096x4096x1 >> $OUT/trace_clk.txt 2>&1
grep -vE "^  per" $OUT/trace_clk.txt | cut -c1-330
