#!/usr/bin/env bash
# Session 21, call 4: 3 warpgroups of one m64 tile for the 64- / 128-row x tiles (192-row weight tiles,
# LQ_W4A16_WGMMA_WGS=3; w4g): test_w4a16_gpu; kernels, two rounds: the default, WGS=3 with 128-row x tiles
# forced (LQ_W4A16_WGMMA_BM=128) at M = 128..1024, 4 warpgroups with the same forcing, WGS=3 at M = 64.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4g.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4g.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
B=carry/w4g; R=$OUT
LQ_REQUIRE_GPU=1 timeout 200 $B/test_w4a16_gpu > $R/w4g_gpu.log 2>&1; echo "rc=$?" >> $R/w4g_gpu.log; tail -3 $R/w4g_gpu.log
grep -E "3 warpgroups|FAIL|Error" $R/w4g_gpu.log | head
K="--w4a16 --shapes llama3 --iters 20"
for r in 1 2; do
  echo "== r$r default" >> $R/w3.txt; timeout 100 $B/lq bench kernels $K --m 64,128,256,512,1024 >> $R/w3.txt 2>&1
  echo "== r$r WGS=3 BM=128" >> $R/w3.txt; LQ_W4A16_WGMMA_WGS=3 LQ_W4A16_WGMMA_BM=128 timeout 100 $B/lq bench kernels $K --m 128,256,512,1024 >> $R/w3.txt 2>&1
  echo "== r$r WGS=4 BM=128" >> $R/w3.txt; LQ_W4A16_WGMMA_WGS=4 LQ_W4A16_WGMMA_BM=128 timeout 100 $B/lq bench kernels $K --m 256,512 >> $R/w3.txt 2>&1
  echo "== r$r WGS=3" >> $R/w3.txt; LQ_W4A16_WGMMA_WGS=3 timeout 100 $B/lq bench kernels $K --m 64 >> $R/w3.txt 2>&1
done
grep -c "^qkv" $R/w3.txt
