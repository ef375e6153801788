#!/usr/bin/env bash
# Prepared in session 25 (no GPU lent then), not run. Two small-M kernel changes against main (w4o):
#  w4r = branch w4-rounds (kernels/dev/w4_rounds.patch): M = 1..4 whole rounds of the ring without the per-tile
#        bound, the last tiles in straight-line code (SASS: 66.8 -> 59.0 instructions a tile, M = 1 sym g128);
#  w4b = branch w4-bulk on w4-rounds (kernels/dev/w4_bulk.patch), run with LQ_W4S_BULK=1: each warp's tiles after
#        its ring copied into shared memory by one cp.async.bulk before the PDL wait.
# carry/w4r.tar.xz and carry/w4b.tar.xz hold folders w4r / w4b = each branch's lq, GPU test binaries and
# build/dev/bench_w4_trace, stripped (git checkout <branch>; make -j2 build/lq $(ls tests/test_*_gpu.c
# tests/test_kernels.c | sed 's/\.c$//;s/^/build\//') && make dev-w4-trace); w4o comes from carry/w4e.tar.xz.
# Read s25_c2's read_ceiling.txt first: if its stage-first column is no better than ring-first, expect w4b to lose.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4r.tar.xz","carry/w4b.tar.xz","carry/w4e.tar.xz"]
. kernels/dev/dev_env.sh w4r w4b w4e
gpu_suites w4r; mv $R/gputests.log $R/gputests_w4r.log
LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*bulk*' timeout 100 carry/w4b/test_w4a16_gpu > $R/bulk_test.log 2>&1; echo "rc=$?" >> $R/bulk_test.log
tail -12 $R/bulk_test.log; elapsed
gpu_suites w4b LQ_W4S_BULK=1; mv $R/gputests.log $R/gputests_w4b.log   # the engine's decode under it too
K="--w4a16 --w4-paths small --shapes all --iters 40 --m 1,2,4,8"
for r in 1 2; do for v in "w4o" "w4r" "w4b LQ_W4S_BULK=1"; do
  set -- $v; b=$1; shift
  echo "== r$r $b $*" >> $R/ab.txt; env "$@" timeout 60 carry/$b/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
grep -E "^==| 1 \|" $R/ab.txt | cut -c1-100; elapsed
timeout 40 carry/w4r/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 > $R/trace_w4r.txt 2>&1
LQ_W4S_BULK=1 timeout 40 carry/w4b/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 6144x4096x8 > $R/trace_w4b.txt 2>&1
grep -E "^shape|inside|per tile" $R/trace_w4r.txt $R/trace_w4b.txt | cut -c1-250; elapsed
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512,4000 --steps 16 --reps 2"
for v in "w4o" "w4r" "w4b LQ_W4S_BULK=1"; do
  set -- $v; b=$1; shift
  echo "== $b $*" >> $R/model.txt; env "$@" timeout 60 carry/$b/lq bench model $M >> $R/model.txt 2>&1; done
grep -E "^==|decode|prefill" $R/model.txt; elapsed
gzip $R/gputests_*.log
