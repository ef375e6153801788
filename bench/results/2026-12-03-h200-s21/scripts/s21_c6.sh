#!/usr/bin/env bash
# Session 21, call 6: wgm_geom's rule on the Llama-2-7B shapes (w4h = the committed kernels): default vs
# LQ_W4A16_WGMMA_WGS=4 (the previous geometry) at M = 48..512, two rounds.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4h.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4h.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
B=carry/w4h; R=$OUT
K="--w4a16 --shapes llama2 --iters 20 --m 48,64,96,128,256,300,512"
for r in 1 2; do for v in LQ_W4A16_WGMMA_WGS= LQ_W4A16_WGMMA_WGS=4; do
  echo "== r$r $v" >> $R/ab2.txt; env $v timeout 100 $B/lq bench kernels $K >> $R/ab2.txt 2>&1; done; done
grep -c "^qkv" $R/ab2.txt
