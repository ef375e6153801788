#!/usr/bin/env bash
# Session 19, call 6: call 5's spin sum with its epilogue's loads batched (8 outputs per thread, a slice's 8
# loads in flight together). 1. test_w4a16_gpu's wgmma tests. 2. the phase trace (M = 16 / 64 / 256).
# 3. W4A16 kernels M = 16, 64, 256, default vs LQ_W4A16_WGMMA_SPIN=0, one round.
# (prepared in session 19, not run: no device time left.) Build: git apply kernels/dev/w4_spin.patch; make; make
# build/tests/test_w4a16_gpu dev-w4-trace; pack build/lq, build/tests/test_w4a16_gpu, build/dev/bench_w4_trace into carry/w4y.tar.xz (w4y/).
# run: bash kernels/dev/s19_spin2.sh  carry ["carry/libs.tar.xz","carry/w4y.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4y.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4y; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*wgmma*' timeout 100 $B/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT" $R/w4tests.log | head -6
timeout 40 $B/bench_w4_trace 6144x4096x16 4096x4096x16 6144x4096x64 4096x4096x64 4096x4096x256 4096x14336x256 > $R/trace.txt 2>&1
grep -E "^shape|per step" $R/trace.txt | cut -c1-200
K="--w4a16 --m 16,64,256 --shapes llama3 --iters 30"
for v in "" "LQ_W4A16_WGMMA_SPIN=0"; do
  echo "== y [$v]" >> $R/w4k.txt; env $v timeout 60 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-28,62-140
gzip $R/w4tests.log
