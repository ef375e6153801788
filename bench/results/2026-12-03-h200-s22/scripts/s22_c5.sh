#!/usr/bin/env bash
# Session 22, call 5: the bench's timed warm-up per cell (w4m2: --warm-ms, default 50) against none (--warm-ms 0,
# the previous behaviour): the full llama3 W4A16 sweep plus decode attention, alternating; test_kernels.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4m2.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4m2.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4m2/lq
B=carry/w4m2; R=$OUT
LQ_REQUIRE_GPU=1 timeout 120 ./tests/run_tests.sh $B/test_kernels > $R/test_kernels.log 2>&1; echo "rc=$?" >> $R/test_kernels.log; tail -2 $R/test_kernels.log
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30 --attn 1x8192,1x16384,1x32768,16x8192"
T0=$(date +%s)
for w in 50 0 50; do
  echo "== warm $w" >> $R/w4k.txt; timeout 170 $B/lq bench kernels $K --warm-ms $w >> $R/w4k.txt 2>&1
  echo "t=$(( $(date +%s) - T0 ))"
done
