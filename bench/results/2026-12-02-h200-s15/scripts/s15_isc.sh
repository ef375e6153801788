#!/usr/bin/env bash
# Session 15, call 4 (branch w4-iscale): LQ_W4S_ISCALE=1, the one-n-tile small-M kernels (M <= 8) with integer
# weights — (code - zero) exact in fp16, no HMUL2 by the scale (9 instead of 13 instructions per code word), the
# scale applied to each group's fp32 product (4 FFMA per tile) — because the M = 1 loop phase is bound by issue
# (call 3's trace). 1. test_w4a16_gpu and test_model_gpu under ISCALE=1 (the tolerance assumes fp16-rounded
# weights on both sides: a failure there says by how much the exact weights differ). 2. W4A16 kernels M = 1, 2, 4,
# ISCALE 0 / 1 alternating, two rounds. 3. W4 llama3-8b decode b1 / b4 ctx 512, 0 / 1 alternating, two rounds.
# carry/isc.tar.xz: build/lq, build/tests/test_w4a16_gpu, test_model_gpu of the branch, stripped, in isc/.
# run: bash kernels/dev/s15_isc.sh  carry ["carry/libs.tar.xz","carry/shared","carry/isc.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/isc.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/isc/lq
R=$OUT
LQ_W4S_ISCALE=1 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=2 timeout 200 ./tests/run_tests.sh carry/isc/test_w4a16_gpu carry/isc/test_model_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "FAIL|ERROR|\[  FAILED" $R/suites.log | head -20
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do for p in 0 1; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/w4k.txt; LQ_W4S_ISCALE=$p timeout 60 carry/isc/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1,4 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for p in 0 1; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/model.txt; LQ_W4S_ISCALE=$p timeout 100 carry/isc/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log
