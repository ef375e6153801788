#!/usr/bin/env bash
# For the next session's first device call (written in session 13, not yet run). Branch attn-uneven (on main
# cb59d71): LQ_DECODE_UNEVEN=a makes the decode attention's splits uneven (split i weighs 1 + a% (1 - 2i/(E-1)):
# the first heaviest), so that the blocks' tails stop lining up and the next launch's blocks enter over time
# (session 13: batch 1 pays ~4.1 us per launch over its bytes, most of it a tail in which every SM holds a
# block that moves no data). test_kernels (test_kernels_attention_decode_uneven: a = 50, 90 against the
# reference), the trace and the sweep for a = 0 / 25 / 50 / 75, twice; and LQ_DECODE_REL=2 (dm_arrive_ar: the
# split count one atom.acq_rel.gpu instead of fence + atomic + fence), test_kernels under it, trace and sweep.
# carry/un.tar.xz (not in git; rebuild on the branch): build/lq, build/tests/test_kernels,
# build/dev/bench_attn_trace (make dev-attn-trace), stripped, in un/.
# run: bash kernels/dev/s14_uneven.sh   carry ["carry/libs.tar.xz","carry/shared","carry/un.tar.xz"]
# If a value wins at 1 x 8k without losing at 16k / 32k / batch 8: make it the default (decode_uneven) and
# rerun every GPU suite; else keep the knob's patch under kernels/dev and note it.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/un.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/un/lq
mkdir -p $OUT
LQ_REQUIRE_GPU=1 timeout 120 ./tests/run_tests.sh carry/un/test_kernels > $OUT/suites.log 2>&1; echo "rc=$?" >> $OUT/suites.log
tail -n 2 $OUT/suites.log
# LQ_DECODE_REL=2 (the count one atom.acq_rel.gpu instead of fence + atomic + fence; read once per process)
LQ_DECODE_REL=2 LQ_REQUIRE_GPU=1 timeout 120 ./tests/run_tests.sh carry/un/test_kernels > $OUT/suites_rel2.log 2>&1; echo "rc=$?" >> $OUT/suites_rel2.log
tail -n 2 $OUT/suites_rel2.log
echo "[REL=2]"; LQ_DECODE_REL=2 timeout 60 carry/un/bench_attn_trace 1x8192 1x16384 > $OUT/trace_rel2.txt 2>&1
grep -E "x |us from|period" $OUT/trace_rel2.txt
for a in 0 25 50 75; do
  echo "[UNEVEN=$a]"; LQ_DECODE_UNEVEN=$a timeout 60 carry/un/bench_attn_trace 1x8192 1x16384 > $OUT/trace_$a.txt 2>&1
  grep -E "x |us from|period" $OUT/trace_$a.txt
done
A="--attn 1x4096,1x8192,1x16384,1x32768,8x8192 --shapes none --iters 50"
for r in 1 2; do for a in 0 25 50 75; do
  echo "== UNEVEN=$a" >> $OUT/attn.txt; LQ_DECODE_UNEVEN=$a timeout 60 carry/un/lq bench kernels $A >> $OUT/attn.txt 2>&1
done
  echo "== REL=2" >> $OUT/attn.txt; LQ_DECODE_REL=2 timeout 60 carry/un/lq bench kernels $A >> $OUT/attn.txt 2>&1
done
grep -E "^==|^ +1 |^ +8 " $OUT/attn.txt | cut -c1-60
