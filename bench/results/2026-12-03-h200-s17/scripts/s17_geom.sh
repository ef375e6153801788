#!/usr/bin/env bash
# Session 17, call 1: smaller decode-attention blocks for hd 128 (LQ_DECODE_GEOM=W,S; 4,3 = 104 KB two per SM,
# 4,2 = 70 KB three, 2,3 = 52 KB four, 2,2 = 35 KB six) with LQ_DECODE_BLOCKS_PER_SM for the split count, so the
# next launch's blocks are resident and fill their rings while this launch's blocks tail.
# 1. test_kernels' decode tests under each geometry. 2. the trace at 1 x 8k for default and each geometry.
# 3. the decode sweep: default vs geometry x blocks/SM, two rounds.
# carry/g16.tar.xz: build/lq, build/tests/test_*_gpu + test_kernels, build/dev/bench_attn_trace, stripped, in g16/.
# run: bash kernels/dev/s17_geom.sh  carry ["carry/libs.tar.xz","carry/shared","carry/g16.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/g16.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/g16/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
for g in "" 4,3 4,2 2,3 2,2; do for b in 1 3; do
  echo "== GEOM=$g BPS=$b" >> $R/tests.log
  LQ_DECODE_GEOM=$g LQ_DECODE_BLOCKS_PER_SM=$b LQ_TEST_FILTER='*attention_decode*' LQ_REQUIRE_GPU=1 timeout 60 carry/g16/test_kernels >> $R/tests.log 2>&1; echo "rc=$?" >> $R/tests.log
done; done
grep -E "^==|rc=|FAILED  \] t" $R/tests.log
V="_,1 4,3,2 4,2,2 4,2,3 2,3,3 2,3,4 2,2,4 2,2,6"
for v in $V; do g=${v%%,[0-9]}; g=${g#_}; b=${v##*,}; [ "$v" = "_,1" ] && g= && b=1
  echo "[GEOM=$g BPS=$b]" >> $R/trace.txt
  LQ_DECODE_GEOM=$g LQ_DECODE_BLOCKS_PER_SM=$b timeout 40 carry/g16/bench_attn_trace 1x8192 >> $R/trace.txt 2>&1
done
grep -E "^\[|x |us from|period" $R/trace.txt | head -60
A="--attn 1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for r in 1 2; do for v in $V; do g=${v%%,[0-9]}; g=${g#_}; b=${v##*,}; [ "$v" = "_,1" ] && g= && b=1
  echo "== GEOM=$g BPS=$b" >> $R/attn.txt; LQ_DECODE_GEOM=$g LQ_DECODE_BLOCKS_PER_SM=$b timeout 60 carry/g16/lq bench kernels $A >> $R/attn.txt 2>&1
done; done
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-80
