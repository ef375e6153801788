#!/usr/bin/env bash
# Session 19, call 5: wgmma K slices (> 2) summed by the tile's own blocks (wgm_spin_sum: partials in the
# workspace, an arrival counter per tile, each block sums its share) instead of clusters of 4-8 / the reduction
# kernel (LQ_W4A16_WGMMA_SPIN=0). 1. every GPU suite. 2. the phase trace (M = 16 / 64 / 256). 3. W4A16 kernels
# M = 8..1024, default vs SPIN=0, two rounds. 4. W4 llama3-8b decode b16 / b64 + prefill 512, default vs SPIN=0.
# run: bash bench/results/2026-12-03-h200-s19/scripts/s19_spin.sh  carry ["carry/libs.tar.xz","carry/shared","carry/w4x.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4x.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4x/lq
B=carry/w4x; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls $B/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -E "\[  FAILED  \] test|ERROR|NOT" $R/suites.log | head -10
timeout 60 $B/bench_w4_trace 6144x4096x16 4096x4096x16 4096x14336x16 6144x4096x64 4096x4096x64 4096x14336x64 \
  4096x4096x256 4096x14336x256 > $R/trace.txt 2>&1
grep -E "^shape|per step" $R/trace.txt | cut -c1-200
K="--w4a16 --m 8,16,32,64,128,256,512,1024 --shapes llama3 --iters 30"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_SPIN=0"; do
  echo "== x [$v]" >> $R/w4k.txt; env $v timeout 100 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
MM="--preset llama3-8b --device cuda --prompt 512 --batch 16,64 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for v in "" "LQ_W4A16_WGMMA_SPIN=0"; do
  echo "== [$v]" >> $R/model.txt; env $v timeout 80 $B/lq bench model $MM >> $R/model.txt 2>&1
done
grep -E "^==|decode|prefill " $R/model.txt
gzip $R/suites.log
