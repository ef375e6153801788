#!/usr/bin/env bash
# Prepared in session 25 (no GPU lent then), not run: the wgmma kernel's persistent grid (branch wgmma-pers,
# kernels/dev/w4_pers.patch; LQ_W4A16_WGMMA_PERS=1 plain, =2 with the last round split in K halves in clusters
# of 2) and the tile grid's epilogue through shared memory (LQ_W4A16_WGMMA_EPI=1) against the tile grid (=0,
# main's route), one binary: carry/w4p.tar.xz holds folder w4p = the branch's
# lq, GPU test binaries and build/dev/bench_w4_trace (make dev-w4-trace), stripped;
# carry ["carry/libs.tar.xz","carry/shared","carry/w4p.tar.xz","carry/w4e.tar.xz"] (w4e.tar.xz holds w4o = main's lq)
. kernels/dev/dev_env.sh w4p w4e
# the floor of a launch that only reads the products' bytes (kernels/dev/bench_read_ceiling.cu, make dev-read-ceiling)
timeout 60 carry/w4p/bench_read_ceiling > $R/read_ceiling.txt 2>&1; cat $R/read_ceiling.txt; elapsed
LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*persistent*' timeout 100 carry/w4p/test_w4a16_gpu > $R/pers_test.log 2>&1; echo "rc=$?" >> $R/pers_test.log
cat $R/pers_test.log | tail -12; elapsed
gpu_suites w4p
K="--w4a16 --w4-paths wgmma --shapes llama3 --iters 20 --m 64,256,512,1024,2048,4096"
for r in 1 2; do for v in LQ_W4A16_WGMMA_PERS=2 LQ_W4A16_WGMMA_PERS=1 LQ_W4A16_WGMMA_EPI=1 LQ_W4A16_WGMMA_PERS=0; do
  echo "== r$r $v" >> $R/ab.txt; env $v timeout 90 carry/w4p/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down) " >> $R/ab.txt; done; done
echo "== main (w4o)" >> $R/ab.txt; timeout 90 carry/w4o/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down) " >> $R/ab.txt
cut -c1-130 $R/ab.txt; elapsed
LQ_W4A16_WGMMA_PERS=2 timeout 60 carry/w4p/bench_w4_trace 28672x4096x4096 6144x4096x2048 4096x14336x2048 > $R/trace_pers.txt 2>&1
LQ_W4A16_WGMMA_EPI=1 timeout 40 carry/w4p/bench_w4_trace 28672x4096x4096 6144x4096x2048 > $R/trace_epi.txt 2>&1
timeout 40 carry/w4p/bench_w4_trace 28672x4096x4096 6144x4096x2048 > $R/trace_base.txt 2>&1
grep -E "^shape|inside" $R/trace_pers.txt $R/trace_epi.txt $R/trace_base.txt | cut -c1-260; elapsed
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 --batch 1 --ctx 2048 --steps 4 --reps 1"
for v in LQ_W4A16_WGMMA_PERS=2 LQ_W4A16_WGMMA_EPI=1 LQ_W4A16_WGMMA_PERS=0; do echo "== $v" >> $R/model.txt; env $v timeout 70 carry/w4p/lq bench model $M >> $R/model.txt 2>&1; done
grep -E "^==|prefill" $R/model.txt; elapsed
gzip $R/gputests.log
