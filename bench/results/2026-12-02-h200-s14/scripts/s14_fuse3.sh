#!/usr/bin/env bash
# Session 14, call 4 (branch w4-norm-fuse): the staged norm with one L2 round trip (each thread's two chunks of x
# in registers, the per-row sums of squares through shared memory; call 3's version read x twice and summed
# per warp segment). test_w4a16_gpu + test_model_gpu; W4 llama3-8b decode b1 ctx 512 under LQ_DECODE_FUSE =
# 3 / 2 / 0, two rounds; b4 3 / 2.
# run: bash bench/results/2026-12-02-h200-s14/scripts/s14_fuse3.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n3.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n3.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n3/lq
R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/n3/test_w4a16_gpu carry/n3/test_model_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
grep -E "FAIL|ERROR|norm fused" $R/suites.log | head -20
MM="--preset llama3-8b --device cuda --prompt 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for f in 3 2 0; do
  echo "== w4 b1 LQ_DECODE_FUSE=$f" >> $R/model.txt; LQ_DECODE_FUSE=$f timeout 100 carry/n3/lq bench model $MM --batch 1 --ctx 512 >> $R/model.txt 2>&1
done; done
for f in 3 2; do
  echo "== w4 b4 LQ_DECODE_FUSE=$f" >> $R/model.txt; LQ_DECODE_FUSE=$f timeout 100 carry/n3/lq bench model $MM --batch 4 --ctx 512 >> $R/model.txt 2>&1
done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log
