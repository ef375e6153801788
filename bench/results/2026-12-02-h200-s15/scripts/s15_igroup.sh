#!/usr/bin/env bash
# Session 15, call 6 (branch w4-igroup): LQ_W4S_ISCALE=2, the integer-weight product summed over a group's tiles
# and scaled once per group (G >= 128: half the FFMA flushes) against main's per-tile flush (=1).
# carry/ig.tar.xz: build/lq, build/tests/test_w4a16_gpu of the branch, stripped, in ig/.
# run: bash kernels/dev/s15_igroup.sh  carry ["carry/libs.tar.xz","carry/shared","carry/ig.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/ig.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/ig/lq
R=$OUT
LQ_W4S_ISCALE=2 LQ_REQUIRE_GPU=1 timeout 120 ./tests/run_tests.sh carry/ig/test_w4a16_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test" $R/suites.log | head
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do for p in 1 2; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/w4k.txt; LQ_W4S_ISCALE=$p timeout 50 carry/ig/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for p in 1 2; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/model.txt; LQ_W4S_ISCALE=$p timeout 60 carry/ig/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log
