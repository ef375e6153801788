#!/usr/bin/env bash
# Session 19, call 3: w4d = 4 warpgroups by default for 64- / 128-row x tiles (6 stages, as call 1's w4g under
# WGS=4); w4p = w4d + prefetch.tensormap of the four maps at the top of the wgmma kernel.
# 1. every GPU suite on w4d; test_w4a16_gpu on w4p. 2. W4A16 kernels, llama3 shapes, M = 1..4096, w4d / w4p,
# two rounds. 3. W4 llama3-8b decode batch 1 / 64 + prefill 512: w4d default vs LQ_W4A16_WGMMA_WGS=2, two rounds.
# run: bash bench/results/2026-12-03-h200-s19/scripts/s19_final.sh  carry ["carry/libs.tar.xz","carry/shared","carry/w4d.tar.xz","carry/w4p.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4d.tar.xz -C carry && tar xJf carry/w4p.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4d/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 220 ./tests/run_tests.sh $(ls carry/w4d/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR" $R/suites.log | head -10
LQ_REQUIRE_GPU=1 timeout 200 carry/w4p/test_w4a16_gpu > $R/w4p_tests.log 2>&1; echo "rc=$?" >> $R/w4p_tests.log
grep -E "PASSED|FAILED|rc=|NOT" $R/w4p_tests.log | head -6
K="--w4a16 --m 1,2,4,8,12,16,24,32,48,64,96,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do for b in w4d w4p; do
  echo "== $b []" >> $R/w4k.txt; timeout 150 carry/$b/lq bench kernels $K --out $R/w4k_${b}_$r.json >> $R/w4k.txt 2>&1
done; done
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1,64 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_WGS=2"; do
  echo "== [$v]" >> $R/model.txt; env $v timeout 90 carry/w4d/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode|prefill" $R/model.txt | head -20
gzip $R/suites.log $R/w4p_tests.log
