#!/usr/bin/env bash
# session 10 call 1: carry/lh = branch w4-lm-head 06dbc30 (main 751a2ab + the opt-in 4-bit lm_head): every GPU suite
# side by side, then W4 decode / prefill without and with --lm-head, alternating (same binary)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/lh.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/lh/lq
R=/tmp/r4; mkdir -p $R
t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/lh/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 3 $R/suites.log
grep -hE "FAILED|mismatch at|error:" $R/suites.log | head -20
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 --batch 1,4 --ctx 512 --steps 4"
i=0
for h in "" --lm-head "" --lm-head; do
  i=$((i+1))
  timeout 120 carry/lh/lq bench model $MM $h --out $R/model_$i.json > $R/model_$i.txt 2>&1
  echo "== run $i ${h:-fp16 head}" >> $R/model.txt; grep -hE "engine|prefill|decode" $R/model_$i.txt >> $R/model.txt
done
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt
cat $R/model.txt

# qkv M = 8 plan (4,8,1) vs the default, 3 rounds alternating
for r in 1 2 3; do
  timeout 60 carry/lh/lq bench kernels --w4a16 --shapes llama3 --m 8 --iters 20 > $R/m8_def_$r.txt 2>&1
  LQ_W4S_PLAN=4,8,1 timeout 60 carry/lh/lq bench kernels --w4a16 --shapes llama3 --m 8 --iters 20 > $R/m8_481_$r.txt 2>&1
done
grep -h qkv $R/m8_*.txt
echo "all+m8 $(( $(date +%s) - t0 )) s" >> $R/times.txt
tar czf $OUT/r4.tgz -C /tmp r4
