#!/usr/bin/env bash
# Session 18, call 2: the 16- / 32-row wgmma tiles (branch wgmma-n16) under each tile size x slice rule x
# cluster route, M = 8..32, llama3 shapes; path 4's column (wgmma) is what differs.
# run: bash kernels/dev/s18_sweep.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n16/lq
R=$OUT
K="--w4a16 --m 8,12,16,24,32 --shapes llama3 --iters 50"
for r in 1 2; do
for v in "LQ_W4A16_WGMMA_BM=16 LQ_W4A16_WGMMA_CLUSTER=0" "LQ_W4A16_WGMMA_BM=16 LQ_W4A16_WGMMA_BPS=1 LQ_W4A16_WGMMA_CLUSTER=0" \
         "LQ_W4A16_WGMMA_BM=32" "LQ_W4A16_WGMMA_BM=32 LQ_W4A16_WGMMA_BPS=1" "LQ_W4A16_WGMMA_BM=32 LQ_W4A16_WGMMA_CLUSTER=0" \
         "LQ_W4A16_WGMMA_BM=32 LQ_W4A16_WGMMA_BPS=1 LQ_W4A16_WGMMA_CLUSTER=0" "LQ_W4A16_WGMMA_BM=64" "LQ_W4A16_WGMMA_BM=64 LQ_W4A16_WGMMA_CLUSTER=0"; do
  echo "== [$v]" >> $R/sweep.txt; env $v timeout 60 carry/n16/lq bench kernels $K >> $R/sweep.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/sweep.txt | awk '/^==/{print; next} {printf "%s %s %s\n", $1, $4, $(NF-2)}' | paste -sd' ' | sed 's/ == /\n== /g'
