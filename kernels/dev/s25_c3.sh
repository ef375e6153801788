#!/usr/bin/env bash
# Prepared in session 25 (no GPU lent then), not run: the small-M kernel's bulk stage (branch w4-bulk,
# kernels/dev/w4_bulk.patch, LQ_W4S_BULK=1: each warp's tiles after its register ring copied into shared memory by
# one cp.async.bulk before the PDL wait, the ring refilled from there) against main's route (=0), one binary:
# carry/w4b.tar.xz holds folder w4b = the branch's lq, GPU test binaries and build/dev/bench_w4_trace, stripped
# (rebuild: git checkout w4-bulk; make -j2 build/lq $(ls tests/test_*_gpu.c tests/test_kernels.c | sed
# 's/\.c$//;s/^/build\//') && make dev-w4-trace). Read kernels/dev/s25_c2.sh's read_ceiling.txt first: if its
# stage-first column is no better than ring-first, expect this to lose the same way.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4b.tar.xz"]
. kernels/dev/dev_env.sh w4b
LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*bulk*' timeout 100 carry/w4b/test_w4a16_gpu > $R/bulk_test.log 2>&1; echo "rc=$?" >> $R/bulk_test.log
tail -12 $R/bulk_test.log; elapsed
# every GPU suite with the bulk stage on wherever it applies (the engine's decode included)
gpu_suites w4b LQ_W4S_BULK=1
K="--w4a16 --w4-paths small --shapes all --iters 40 --m 1,2,4,8"
for r in 1 2; do for v in 1 0; do
  echo "== r$r BULK=$v" >> $R/ab.txt; LQ_W4S_BULK=$v timeout 60 carry/w4b/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
grep -E "^==| 1 \|" $R/ab.txt | cut -c1-100; elapsed
for v in 1 0; do LQ_W4S_BULK=$v timeout 40 carry/w4b/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 6144x4096x8 > $R/trace_bulk$v.txt 2>&1; done
grep -E "^shape|inside|hand|per tile" $R/trace_bulk1.txt $R/trace_bulk0.txt | cut -c1-250; elapsed
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,16 --ctx 512 --steps 16 --reps 2"
for v in 1 0; do echo "== BULK=$v" >> $R/model.txt; LQ_W4S_BULK=$v timeout 75 carry/w4b/lq bench model $M >> $R/model.txt 2>&1; done
grep -E "^==|decode|prefill" $R/model.txt; elapsed
gzip $R/gputests.log
