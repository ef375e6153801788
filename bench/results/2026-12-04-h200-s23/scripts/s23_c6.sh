#!/usr/bin/env bash
# Session 23, call 6: path 0's wgmma threshold (LQ_W4A16_WGMMA_MIN, default 24) at 9 against the default in the
# whole W4 model at decode batch 12 / 16 / 24 (main as committed, w4p), two rounds alternating.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4p.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4p.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4p/lq
B=carry/w4p; R=$OUT; T0=$(date +%s)
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 12,16,24 --ctx 512 --steps 16 --reps 2"
for r in 1 2; do for mn in 9 0; do
  echo "== r$r min$mn" >> $R/model.txt; LQ_W4A16_WGMMA_MIN=$mn timeout 100 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt | head -40; echo "t=$(( $(date +%s) - T0 ))"
