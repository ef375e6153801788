#!/usr/bin/env bash
# Session 23, call 5: main (w4p, as committed) under the bench's warm-up: ANCHORS.md's whole decode attention sweep
# twice; the fp16 and W4 llama3-8b decode at batch 1 (ctx 512 / 8000) in one process (--baseline).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4p.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4p.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4p/lq
B=carry/w4p; R=$OUT; T0=$(date +%s)
for r in 1 2; do echo "== r$r" >> $R/attn_all.txt; timeout 150 $B/lq bench kernels --attn all --shapes none >> $R/attn_all.txt 2>&1; echo "t=$(( $(date +%s) - T0 ))"; done
timeout 150 $B/lq bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --baseline --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2 > $R/model.txt 2>&1
grep -E "prefill|decode" $R/model.txt | head -20; echo "t=$(( $(date +%s) - T0 ))"
