#!/usr/bin/env bash
# session 11 call 7: carry/a7 = build/lq of branch attn-splits (LQ_DECODE_SPLITS=n forces the decode
# attention's split count): batch-1 decode attention at 1k / 8k / 32k for n = 4..16, default first and last
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a7.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
R=/tmp/r7; mkdir -p $R; t0=$(date +%s)
for cfg in "X=0" "LQ_DECODE_SPLITS=4" "LQ_DECODE_SPLITS=6" "LQ_DECODE_SPLITS=8" "LQ_DECODE_SPLITS=10" "LQ_DECODE_SPLITS=12" "LQ_DECODE_SPLITS=14" "X=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 30 carry/a7/lq bench kernels --attn 1x1024,1x8192,1x32768 --shapes none --iters 50 >> $R/attn.txt 2>&1
done
echo "all $(( $(date +%s) - t0 )) s"; grep -E "^==|^ +1 " $R/attn.txt
tar czf $OUT/r7.tgz -C /tmp r7
