#!/usr/bin/env bash
# Session 18, call 3: branch wgmma-n16 with the rules from call 2 (16-row tiles counting two blocks per SM,
# 32-row tiles one, slices of 16- / 32-row tiles past 2 through the workspace, path 0's wgmma from M = 12).
# 1. every GPU suite; test_w4a16_gpu's wgmma tests under LQ_W4A16_WGMMA_BPS=2. 2. W4A16 kernels, llama3 shapes,
# M = 1..256. 3. W4 llama3-8b decode batch 8 / 16 / 32: default vs main's choice (MIN=24, 64-row tiles), alternating.
# run: bash kernels/dev/s18_final.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n16/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/n16/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR" $R/suites.log | head -10
LQ_W4A16_WGMMA_BPS=2 LQ_TEST_FILTER='*wgmma*' LQ_REQUIRE_GPU=1 timeout 90 carry/n16/test_w4a16_gpu > $R/w4_bps2.log 2>&1; echo "rc=$?" >> $R/w4_bps2.log
grep -E "PASSED|FAILED|rc=" $R/w4_bps2.log | head -8
timeout 120 carry/n16/lq bench kernels --w4a16 --m 1,2,4,8,12,16,24,32,64,128,256 --shapes llama3 --iters 50 --out $R/w4k.json > $R/w4k.txt 2>&1
grep -E "^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-28,62-140
MM="--preset llama3-8b --device cuda --prompt 512 --batch 8,16,32 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_MIN=24 LQ_W4A16_WGMMA_BM=64"; do
  echo "== [$v]" >> $R/model.txt; env $v timeout 90 carry/n16/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log $R/w4_bps2.log
