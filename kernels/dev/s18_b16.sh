#!/usr/bin/env bash
# Session 18, call 4: W4 llama3-8b decode at batch 12 / 16 (M = 12 / 16: path 0's wgmma with 16-row tiles on
# branch wgmma-n16 vs the small-M kernel, main's choice), main's choice first, three rounds.
# run: bash kernels/dev/s18_b16.sh  carry ["carry/libs.tar.xz","carry/shared","carry/n16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n16/lq
R=$OUT
MM="--preset llama3-8b --device cuda --prompt 512 --batch 12,16 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2 3; do for v in "LQ_W4A16_WGMMA_MIN=24 LQ_W4A16_WGMMA_BM=64" ""; do
  echo "== [$v]" >> $R/model.txt; env $v timeout 60 carry/n16/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
