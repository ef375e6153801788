#!/usr/bin/env bash
# Session 18, call 1: 16- and 32-row x tiles in the W4A16 wgmma kernel (branch wgmma-n16: m64n16 / m64n32
# products for M <= 16 / <= 32, 8 stages, two blocks per SM; LQ_W4A16_WGMMA_BM=64 gives main's 64-row tiles,
# LQ_W4A16_WGMMA_BPS=1 the slice rule of one block per SM).
# 1. every GPU suite; test_w4a16_gpu's wgmma tests under BPS=1. 2. W4A16 kernels M = 8..32, default / BM=64 /
# BPS=1, two rounds (the wgmma column is path 4 at every M >= 8).
# carry/n16.tar.xz: build/lq + every build/tests/test_*_gpu + test_kernels, stripped, in n16/.
# run: bash kernels/dev/s18_n16.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n16/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/n16/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR" $R/suites.log | head -10
LQ_W4A16_WGMMA_BPS=1 LQ_TEST_FILTER='*wgmma*' LQ_REQUIRE_GPU=1 timeout 90 carry/n16/test_w4a16_gpu > $R/w4_bps1.log 2>&1; echo "rc=$?" >> $R/w4_bps1.log
grep -E "PASSED|FAILED|rc=" $R/w4_bps1.log | head -8
K="--w4a16 --m 8,12,16,24,32 --shapes llama3 --iters 50"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_BM=64" "LQ_W4A16_WGMMA_BPS=1"; do
  [ $r = 2 ] && [ "$v" = "LQ_W4A16_WGMMA_BPS=1" ] && continue
  echo "== [$v]" >> $R/w4k.txt; env $v timeout 75 carry/n16/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-28,62-140
gzip $R/suites.log $R/w4_bps1.log
