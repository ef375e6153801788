#!/usr/bin/env bash
# For the next session's first device call (written in session 12, not yet run). Branch attn-merge-pad
# (also kernels/dev/attn_merge_pad.patch on main): (1) the 8-warp merge's O rows HD + 4 floats apart (no
# 4-way bank conflict on its fragment stores; always on there); (2) LQ_DECODE_SPIN=1: split 0 merges, the
# other splits publish a flag after their partials and leave without the atomic's round trip (used only where
# the mergers are fewer than the SMs). Session 12's trace put 1.5 us (merge) + 1.0 us (count) in the tail.
# carry/mp.tar.xz (not in git; rebuild it): the branch's build/lq, build/tests/test_kernels,
# build/tests/test_model_gpu, build/dev/bench_attn_trace (make dev-attn-trace), and main's build/lq as
# mp/lq_main. run: bash kernels/dev/s13_merge_pad.sh   carry ["carry/libs.tar.xz","carry/shared","carry/mp.tar.xz"]
# Predicted: loops -> part ~1.5 -> ~0.8 us, part -> exit of the non-merging blocks ~1.0 -> ~0.5 us;
# 1 x 8k 12.7 -> ~11.5 us if both hold.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/mp.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/mp/lq
R=/tmp/rmp; mkdir -p $R
for cfg in "X=0" "LQ_DECODE_SPIN=1"; do
  n=$(echo "$cfg" | tr -cd 'A-Z0-9=' | tr '=' '_')
  env $cfg LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/mp/test_kernels carry/mp/test_model_gpu > $R/suites_$n.log 2>&1; echo "rc=$?" >> $R/suites_$n.log
  echo "[$cfg]"; tail -n 2 $R/suites_$n.log
  env $cfg timeout 60 carry/mp/bench_attn_trace 1x1024 1x8192 1x32768 > $R/trace_$n.txt 2>&1; grep -E "x |us from|period" $R/trace_$n.txt
done
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for r in 1 2; do
  echo "== main" >> $R/attn.txt; timeout 60 carry/mp/lq_main bench kernels $A >> $R/attn.txt 2>&1
  echo "== pad" >> $R/attn.txt; timeout 60 carry/mp/lq bench kernels $A >> $R/attn.txt 2>&1
  echo "== pad LQ_DECODE_SPIN=1" >> $R/attn.txt; LQ_DECODE_SPIN=1 timeout 60 carry/mp/lq bench kernels $A >> $R/attn.txt 2>&1
done
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-60
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
echo "== main" >> $R/model.txt; timeout 100 carry/mp/lq_main bench model $MM >> $R/model.txt 2>&1
echo "== pad SPIN=1" >> $R/model.txt; LQ_DECODE_SPIN=1 timeout 100 carry/mp/lq bench model $MM >> $R/model.txt 2>&1
echo "== pad" >> $R/model.txt; timeout 100 carry/mp/lq bench model $MM >> $R/model.txt 2>&1
echo "== main fp16" >> $R/model.txt; timeout 100 carry/mp/lq_main bench model --preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512 --steps 8 --reps 2 >> $R/model.txt 2>&1
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
grep -E "^==|decode" $R/model.txt
gzip $R/*.log; tar czf $OUT/rmp.tgz -C /tmp rmp
