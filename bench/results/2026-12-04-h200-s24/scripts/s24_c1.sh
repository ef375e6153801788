#!/usr/bin/env bash
# Session 24, call 1: w4f = main + kernels/dev/w4_pfnext.patch (the next product's codes asked of L2 after the
# small-M kernel's loop; LQ_W4S_PF=0 ignores the hint): kernels/dev/s24_pfnext.sh (every GPU suite, M = 1..8 A/B
# three rounds, the model at ctx 512 / 8000 both ways), then kernels/dev/s24_trace.sh (the small-M phase trace;
# bench_w4_trace does not set the hint, so it is main's kernel).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4f.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4f.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4f/lq
T0=$(date +%s)
bash kernels/dev/s24_pfnext.sh carry/w4f
echo "t=$(( $(date +%s) - T0 ))"
bash kernels/dev/s24_trace.sh carry/w4f > /dev/null 2>&1; head -40 $OUT/trace_m1.txt
echo "t=$(( $(date +%s) - T0 ))"
