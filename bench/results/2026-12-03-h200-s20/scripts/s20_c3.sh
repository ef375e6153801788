#!/usr/bin/env bash
# Session 20, call 3: stream-K for the wgmma kernel (LQ_W4A16_WGMMA_SK=2) vs the tile grid (=0), M = 16..4096;
# the reduction kernel's block size (LQ_W4A16_REDUCE4_T) vs one output per thread.
# carry ["carry/libs.tar.xz","carry/w4s.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4s.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4s; R=$OUT
LQ_REQUIRE_GPU=1 timeout 240 $B/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT|stream-K" $R/w4tests.log | head -20
K="--w4a16 --m 16,32,48,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do for v in LQ_W4A16_WGMMA_SK=2 LQ_W4A16_WGMMA_SK=0; do
  echo "== r$r [$v]" >> $R/w4k.txt; env $v timeout 120 $B/lq bench kernels $K >> $R/w4k.txt 2>&1; echo "rc=$?" >> $R/w4k.txt
done; done
grep -c "^qkv" $R/w4k.txt
K="--w4a16 --m 4,8,16,64 --shapes llama3 --iters 30"
for v in LQ_W4A16_REDUCE4_T=256 LQ_W4A16_REDUCE4_T=128 LQ_W4A16_REDUCE4_T=64 LQ_W4A16_REDUCE4=0; do
  echo "== [$v]" >> $R/w4r.txt; env LQ_W4A16_WGMMA_SK=0 $v timeout 60 $B/lq bench kernels $K >> $R/w4r.txt 2>&1
done
for v in 2 0; do
  echo "== trace SK=$v" >> $R/trace.txt
  LQ_W4A16_WGMMA_SK=$v timeout 60 $B/bench_w4_trace 6144x4096x64 4096x4096x256 6144x4096x512 4096x14336x512 >> $R/trace.txt 2>&1
done
grep -E "^==|^shape|per step" $R/trace.txt | cut -c1-180
gzip $R/w4tests.log
