#!/usr/bin/env bash
# Session 20, call 4: x multicast in clusters of 2 weight tiles (LQ_W4A16_WGMMA_MC: default = tiles of >= 128
# rows, 2 = every tile, 0 = none), M = 16..4096, two rounds; the model (prefill 512, decode 16 / 64).
# carry ["carry/libs.tar.xz","carry/w4m.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4m.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4m; R=$OUT
LQ_REQUIRE_GPU=1 timeout 240 $B/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT|multicast vs" $R/w4tests.log | head -20
K="--w4a16 --m 16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do for v in LQ_W4A16_WGMMA_MC=1 LQ_W4A16_WGMMA_MC=0 LQ_W4A16_WGMMA_MC=2; do
  echo "== r$r [$v]" >> $R/w4k.txt; env $v timeout 120 $B/lq bench kernels $K >> $R/w4k.txt 2>&1; echo "rc=$?" >> $R/w4k.txt
done; done
grep -c "^qkv" $R/w4k.txt
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 16,64 --ctx 512 --steps 8 --reps 2"
for r in 1 2; do for v in LQ_W4A16_WGMMA_MC=1 LQ_W4A16_WGMMA_MC=0; do
  echo "== r$r [$v]" >> $R/model.txt; env $v timeout 120 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|prefill|decode|tok/s" $R/model.txt | head -30
for v in 1 0; do
  echo "== trace MC=$v" >> $R/trace.txt
  LQ_W4A16_WGMMA_MC=$v timeout 60 $B/bench_w4_trace 4096x4096x256 6144x4096x512 4096x14336x1024 6144x4096x4096 >> $R/trace.txt 2>&1
done
grep -E "^==|^shape|route|per step" $R/trace.txt | cut -c1-180
gzip $R/w4tests.log
