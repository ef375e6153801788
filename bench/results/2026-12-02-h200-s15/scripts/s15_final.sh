#!/usr/bin/env bash
# Session 15, call 5: main with the integer-weight small-M kernels as the default (LQ_W4S_ISCALE=0 = before).
# 1. every GPU suite (default: ISC on). 2. W4A16 kernels M = 1, 2, 4, 8, 16 default vs LQ_W4S_ISCALE=0, two rounds.
# 3. W4 llama3-8b decode b1 / b4 ctx 512 / 8000, default vs 0, alternating, two rounds.
# carry/isc2.tar.xz: build/lq + every build/tests/test_*_gpu + test_kernels, stripped, in isc2/.
# run: bash kernels/dev/s15_final.sh  carry ["carry/libs.tar.xz","carry/shared","carry/isc2.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/isc2.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/isc2/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/isc2/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR" $R/suites.log | head -10
K="--w4a16 --m 1,2,4,8,16 --shapes llama3 --iters 50"
for r in 1 2; do for p in 1 0; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/w4k.txt; LQ_W4S_ISCALE=$p timeout 80 carry/isc2/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1,4 --ctx 512,8000 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for p in 1 0; do
  echo "== LQ_W4S_ISCALE=$p" >> $R/model.txt; LQ_W4S_ISCALE=$p timeout 120 carry/isc2/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode|prefill   512" $R/model.txt
gzip $R/suites.log
