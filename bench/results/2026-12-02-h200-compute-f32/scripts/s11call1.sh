#!/usr/bin/env bash
# session 11 call 1: carry/a1 = main + fp32 compute over 16-bit weights (--compute f32) + the
# LQ_DECODE_PREFETCH knob: every GPU suite; stories260K ppl / greedy with f16, f16 + fp32 compute, f32;
# the decode attention sweep under the W / slots / prefetch knobs (default first and last)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a1.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/a1/lq
R=/tmp/r1; mkdir -p $R; t0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem,driver_version --format=csv > $R/gpu.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/a1/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 3 $R/suites.log; grep -hE "FAILED|mismatch|error:" $R/suites.log | head -20
grep -h "fp32 compute" $R/suites.log | grep -v "logits\.[0-9]"
S=carry/shared/models/stories260K; X=carry/shared/datasets/tinystories/sample.txt
for c in 64 128 256; do for w in "--weights f16" "--weights f16 --compute f32" "--weights bf16 --compute f32" "--weights f32"; do
  echo "== ctx $c $w" >> $R/ppl.txt; timeout 60 carry/a1/lq ppl $S $X --ctx $c --device cuda $w --json >> $R/ppl.txt 2>&1; done; done
timeout 60 carry/a1/lq generate $S --prompt "Once upon a time" -n 80 --device cuda --compute f32 --json > $R/gen.txt 2>&1
echo "ppl $(( $(date +%s) - t0 )) s" >> $R/times.txt
for cfg in "X=0" "LQ_DECODE_PREFETCH=0" "LQ_DECODE_PREFETCH=8" "LQ_DECODE_WARPS=4" "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=8" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=16" "LQ_DECODE_WARPS=4 LQ_DECODE_BLOCKS_PER_SM=2" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_BLOCKS_PER_SM=2 LQ_DECODE_PREFETCH=8" "X=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/a1/lq bench kernels --attention --shapes none --iters 50 >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt; grep -E "^==|^ +1 " $R/attn.txt
tar czf $OUT/r1.tgz -C /tmp r1
