#!/usr/bin/env bash
# Session 13, call 6 (branch attn-rt-long): the register-stage decode kernel (RT 2, hd 128, 8 warps, 243 registers)
# chosen for caches of >= 12288 positions; LQ_DECODE_REGTILE=0 / 2 force it off / on. test_kernels (the new
# test forces both on the same inputs), the batch-1 sweep and the W4 decode at ctx 512 / 16000 auto vs off.
# carry/rt.tar.xz: build/lq, build/tests/test_kernels of the branch. Outputs straight into $OUT.
# run: bash bench/results/2026-12-02-h200-s13/scripts/s13_rt.sh  carry ["carry/libs.tar.xz","carry/shared","carry/rt.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/rt.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/rt/lq
LQ_REQUIRE_GPU=1 timeout 100 ./tests/run_tests.sh carry/rt/test_kernels > $OUT/suites.log 2>&1; echo "rc=$?" >> $OUT/suites.log
tail -n 2 $OUT/suites.log
A="--attn 1x8192,1x16384,1x32768,8x16384 --shapes none --iters 50"
echo "== auto" >> $OUT/attn.txt; timeout 40 carry/rt/lq bench kernels $A >> $OUT/attn.txt 2>&1
echo "== LQ_DECODE_REGTILE=0" >> $OUT/attn.txt; LQ_DECODE_REGTILE=0 timeout 40 carry/rt/lq bench kernels $A >> $OUT/attn.txt 2>&1
grep -E "^==|^ +[18] " $OUT/attn.txt | cut -c1-60
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512,16000 --steps 8 --reps 2"
echo "== auto" >> $OUT/model.txt; timeout 60 carry/rt/lq bench model $MM >> $OUT/model.txt 2>&1
grep -E "^==|decode" $OUT/model.txt
echo "== LQ_DECODE_REGTILE=0" >> $OUT/model.txt; LQ_DECODE_REGTILE=0 timeout 60 carry/rt/lq bench model $MM >> $OUT/model.txt 2>&1
grep -E "^==|decode" $OUT/model.txt | tail -3
