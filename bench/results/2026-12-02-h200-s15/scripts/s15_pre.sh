#!/usr/bin/env bash
# For the next session (written in session 14 on branch w4-pre, not yet run on a GPU): the small-M kernel's PRE
# stage, LQ_W4S_PRE=1 — at M <= 4 in one K slice every code tile after a warp's register ring is copied into
# shared memory (cp.async, one group per tile) before the PDL wait, so the launch asks for all of its weight
# before it waits (today 6 of 14 tiles per warp on down at M = 1: the other 8 are asked for only after x is
# staged). Expected where a warp has more tiles than its ring: down (14 per warp, 128 KB stage), qkv (8), gate_up
# (16); o (4) is unchanged. 1. test_w4a16_gpu (incl. test_w4a16_gpu_small_m_prefetch: same bits on / off, the
# CPU reference under it). 2. W4A16 kernels M = 1, 2, 4, PRE 0 / 1 alternating, two rounds. 3. W4 llama3-8b
# decode b1 / b4 ctx 512, PRE 0 / 1 alternating, two rounds. Also the phase trace of the small-M kernel
# (kernels/dev/bench_w4_trace.cu, new: where a launch's ~3 us over its bytes go) with the stage off and on.
# If it wins at M = 1 without losing at M = 2 / 4 or in the model: make it the default (no knob needed:
# small_pre_bytes decides), rerun every GPU suite, README's W4A16 table.
# carry/pre.tar.xz (git-ignored; rebuild on the branch): build/lq, build/tests/test_w4a16_gpu and
# build/dev/bench_w4_trace (make dev-w4-trace), stripped, in pre/.
# run: bash kernels/dev/s15_pre.sh  carry ["carry/libs.tar.xz","carry/shared","carry/pre.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/pre.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/pre/lq
R=$OUT
LQ_REQUIRE_GPU=1 timeout 150 ./tests/run_tests.sh carry/pre/test_w4a16_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
grep -E "prefetch M=|FAIL|ERROR" $R/suites.log | head -12
# the phase trace (kernels/dev/bench_w4_trace.cu) with the stage off and on
for p in 0 1; do
  echo "[LQ_W4S_PRE=$p]"; LQ_W4S_PRE=$p timeout 120 carry/pre/bench_w4_trace qkv:1 o:1 gate_up:1 down:1 down:4 > $R/trace_$p.txt 2>&1
  grep -E "M=|period" $R/trace_$p.txt | cut -c1-200
done
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do for p in 0 1; do
  echo "== LQ_W4S_PRE=$p" >> $R/w4k.txt; LQ_W4S_PRE=$p timeout 60 carry/pre/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1,4 --ctx 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for p in 0 1; do
  echo "== LQ_W4S_PRE=$p" >> $R/model.txt; LQ_W4S_PRE=$p timeout 100 carry/pre/lq bench model $MM >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt
gzip $R/suites.log
