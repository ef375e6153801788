#!/usr/bin/env bash
# Session 13, call 4: LQ_DECODE_EARLY=k = the first k of the ring's 3 stages filled before the PDL wait
# (default all; 0 none). Session 12's trace: the whole-ring fill delays the wait's release ~2 us after the
# previous launch's end. test_kernels + test_model_gpu under EARLY=1 (the split fill), the trace and the
# sweep for k = 3, 2, 1, 0, and the W4 decode for 3 and 2. carry/e.tar.xz: build/lq, test_kernels,
# test_model_gpu, bench_attn_trace of main at the commit that adds this script.
# run: bash bench/results/2026-12-02-h200-s13/scripts/s13_early.sh  carry ["carry/libs.tar.xz","carry/shared","carry/e.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/e.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/e/lq
R=/tmp/re; mkdir -p $R
LQ_DECODE_EARLY=1 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/e/test_kernels carry/e/test_model_gpu > $R/suites_early1.log 2>&1; echo "rc=$?" >> $R/suites_early1.log
tail -n 2 $R/suites_early1.log
for k in 3 2 1 0; do
  echo "[EARLY=$k]"
  LQ_DECODE_EARLY=$k timeout 60 carry/e/bench_attn_trace 1x8192 1x16384 > $R/trace_$k.txt 2>&1
  grep -E "x |us from|period" $R/trace_$k.txt
done
A="--attn 1x4096,1x8192,1x16384,1x32768,8x8192 --shapes none --iters 50"
for r in 1 2; do for k in 3 2 1 0; do
  echo "== EARLY=$k" >> $R/attn.txt; LQ_DECODE_EARLY=$k timeout 60 carry/e/lq bench kernels $A >> $R/attn.txt 2>&1
done; done
grep -E "^==|^ +1 |^ +8 " $R/attn.txt | cut -c1-60
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
for k in 3 2 3 2; do
echo "== EARLY=$k" >> $R/model.txt; LQ_DECODE_EARLY=$k timeout 100 carry/e/lq bench model $MM >> $R/model.txt 2>&1
done
grep -E "^==|decode" $R/model.txt
gzip $R/*.log; tar czf $OUT/re.tgz -C /tmp re
