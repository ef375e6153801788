#!/usr/bin/env bash
# Session 17, call 2: integer weights in the small-M W4A16 kernel for 2 and 4 n-tiles (LQ_W4S_ISC_NT=k: M = 9..16
# with k >= 2, 17..32 with k = 4; default 1 = main's M <= 8 only).
# 1. every GPU suite at the default; test_w4a16_gpu under LQ_W4S_ISC_NT=4. 2. W4A16 kernels M = 8, 12, 16, 24, 32
# for k = 1 / 2 / 4, two rounds. 3. W4 llama3-8b decode batch 16 / 32 at ctx 512, k = 1 vs 4, alternating.
# carry/iscnt.tar.xz: build/lq + every build/tests/test_*_gpu + test_kernels, stripped, in iscnt/.
# run: bash kernels/dev/s17_iscnt.sh  carry ["carry/libs.tar.xz","carry/shared","carry/iscnt.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/iscnt.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/iscnt/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/iscnt/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR" $R/suites.log | head -10
LQ_W4S_ISC_NT=4 LQ_REQUIRE_GPU=1 timeout 150 carry/iscnt/test_w4a16_gpu > $R/w4_iscnt4.log 2>&1; echo "rc=$?" >> $R/w4_iscnt4.log
grep -E "PASSED|FAILED|rc=" $R/w4_iscnt4.log | head -8
K="--w4a16 --m 8,12,16,24,32 --shapes llama3 --iters 50"
for r in 1 2; do for k in 1 2 4; do
  echo "== LQ_W4S_ISC_NT=$k" >> $R/w4k.txt; LQ_W4S_ISC_NT=$k timeout 80 carry/iscnt/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
MM="--preset llama3-8b --device cuda --prompt 512 --batch 16,32 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for k in 1 4 1 4; do
  echo "== LQ_W4S_ISC_NT=$k" >> $R/model.txt; LQ_W4S_ISC_NT=$k timeout 120 carry/iscnt/lq bench model $MM >> $R/model.txt 2>&1
done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log $R/w4_iscnt4.log
