#!/usr/bin/env bash
# Session 20, call 2: the reduction kernel four outputs per thread (default) vs one (LQ_W4A16_REDUCE4=0), and
# the slice count forced (LQ_W4A16_WGMMA_KS=2..8; clusters where they all fit, else the reduction kernel).
# carry ["carry/libs.tar.xz","carry/w4z.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4z.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4z; R=$OUT
LQ_REQUIRE_GPU=1 timeout 200 $B/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT" $R/w4tests.log | head -8
S="6144x4096x64 4096x4096x64 4096x14336x64 6144x4096x256 4096x4096x256 4096x14336x256"
for ks in "" 2 3 4 6 8; do
  echo "== trace KS=[$ks]" >> $R/trace.txt
  env ${ks:+LQ_W4A16_WGMMA_KS=$ks} timeout 40 $B/bench_w4_trace $S >> $R/trace.txt 2>&1
done
grep -E "^==|^shape|route|per step" $R/trace.txt | cut -c1-160
K="--w4a16 --m 1,4,8,16,64,128,256,512 --shapes llama3 --iters 30"
for r in 1 2; do for v in "" "LQ_W4A16_REDUCE4=0"; do
  echo "== r$r [$v]" >> $R/w4k.txt; env $v timeout 60 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
K="--w4a16 --m 16,32,64,128,256,512 --shapes llama3 --iters 30"
for ks in 2 3 4 5 6 8; do
  echo "== KS=$ks" >> $R/w4ks.txt; LQ_W4A16_WGMMA_KS=$ks timeout 60 $B/lq bench kernels $K >> $R/w4ks.txt 2>&1
done
echo "== KS default" >> $R/w4ks.txt; timeout 60 $B/lq bench kernels $K >> $R/w4ks.txt 2>&1
grep -cE "^(qkv|o |gate|down)" $R/w4k.txt $R/w4ks.txt
gzip $R/w4tests.log
