#!/usr/bin/env bash
# Session 18, call 2: W4 llama3-8b decode at batch 8 / 16 / 32 with the 16- / 32-row wgmma tiles (branch wgmma-n16):
# default (path 0 gives the wgmma kernel M >= 24, now 32-row tiles at M = 24..32), LQ_W4A16_WGMMA_MIN=9 (also
# M = 9..23: 16-row tiles at 16), LQ_W4A16_WGMMA_BM=64 (main's 64-row tiles at M >= 24), alternating, two rounds.
# run: bash kernels/dev/s18_model.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n16/lq
R=$OUT
MM="--preset llama3-8b --device cuda --prompt 512 --batch 8,16,32 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_MIN=9" "LQ_W4A16_WGMMA_BM=64"; do
  echo "== [$v]" >> $R/model.txt; env $v timeout 100 carry/n16/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
