#!/usr/bin/env bash
# session 11 call 2: carry/a2 = branch attn-merge (LQ_DECODE_MERGE=1: the split merge in its own kernel;
# LQ_DECODE_EARLY=1: the first ring stages copied before the PDL wait): test_kernels + test_model_gpu
# with the knobs off and on; the decode attention sweep under the knobs; llama3-8b fp16 decode at
# ctx 512 / 8192 with the knobs off and on; the fp16-weight fp32-compute mode's speed
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a2.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/a2/lq
R=/tmp/r2; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=4 timeout 200 ./tests/run_tests.sh carry/a2/test_kernels carry/a2/test_model_gpu > $R/suites_off.log 2>&1; echo "rc=$?" >> $R/suites_off.log
LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=4 timeout 200 ./tests/run_tests.sh carry/a2/test_kernels carry/a2/test_model_gpu > $R/suites_on.log 2>&1; echo "rc=$?" >> $R/suites_on.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
for f in off on; do tail -n 2 $R/suites_$f.log; grep -hE "FAILED|mismatch|error:" $R/suites_$f.log | head -10; done
for cfg in "X=0" "LQ_DECODE_MERGE=1" "LQ_DECODE_EARLY=1" "LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1" \
           "LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1 LQ_DECODE_PREFETCH=0" "LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1 LQ_DECODE_PREFETCH=8" \
           "LQ_DECODE_MERGE=1 LQ_DECODE_PREFETCH=0" "LQ_DECODE_EARLY=1 LQ_DECODE_PREFETCH=0" "X=1" "LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/a2/lq bench kernels --attention --shapes none --iters 50 >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +16 " $R/attn.txt
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8192 --steps 8 --reps 2"
for cfg in "X=0" "LQ_DECODE_MERGE=1 LQ_DECODE_EARLY=1"; do
  echo "== [$cfg]" >> $R/model.txt
  env $cfg timeout 120 carry/a2/lq bench model $MM --out $R/model_$(echo $cfg | tr -dc 'A-Z01').json >> $R/model.txt 2>&1
  echo "model $(( $(date +%s) - t0 )) s" >> $R/times.txt
done
grep -E "^==|decode|prefill" $R/model.txt
timeout 150 carry/a2/lq bench model --preset llama3-8b --device cuda --compute f32 --prompt 512 --batch 1 --ctx 512 --steps 4 --reps 1 > $R/model_f32c.txt 2>&1
echo "f32c $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "decode|prefill|error" $R/model_f32c.txt; cat $R/times.txt
tar czf $OUT/r2.tgz -C /tmp r2
