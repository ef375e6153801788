#!/usr/bin/env bash
# session 12 call 6: carry/b5 (main b140498). llama3-8b fp16 decode batch 1 ctx 512, default / LQ_DECODE_REL=0
# alternating twice (call 4's one fp16 run read 4.57 ms against 4.36-4.44 in session 11), then W4 once.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b5.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r6; mkdir -p $R; t0=$(date +%s)
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512 --steps 16 --reps 3"
for cfg in "X=0" "LQ_DECODE_REL=0" "X=1" "LQ_DECODE_REL=0"; do
  echo "== [$cfg]" >> $R/model_f16.txt
  env $cfg timeout 100 carry/b5/lq bench model $MM >> $R/model_f16.txt 2>&1
done
echo "== [W4]" >> $R/model_f16.txt
timeout 100 carry/b5/lq bench model $MM --rtn 4 --group 128 >> $R/model_f16.txt 2>&1
grep -E "^==|decode|copy" $R/model_f16.txt
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
tar czf $OUT/r6.tgz -C /tmp r6
