#!/usr/bin/env bash
# session 11 call 3: carry/a3 = branch attn-merge with the decode kernel's whole ring filled before the PDL
# wait (early, now the default; LQ_DECODE_EARLY=0 off) and no L2 prefetch by default (DM_PREFETCH 0):
# every GPU suite (default), test_kernels + test_model_gpu with early off; the attention sweep new vs the
# old configuration (EARLY=0 PREFETCH=4); llama3-8b fp16 and W4 decode at ctx 512 / 8192, new vs old
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a3.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/a3/lq
R=/tmp/r3; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh carry/a3/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
LQ_DECODE_EARLY=0 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=4 timeout 200 ./tests/run_tests.sh carry/a3/test_kernels carry/a3/test_model_gpu > $R/suites_early0.log 2>&1; echo "rc=$?" >> $R/suites_early0.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
for f in suites suites_early0; do tail -n 2 $R/$f.log; grep -hE "FAILED|mismatch|error:" $R/$f.log | head -10; done
OLD="LQ_DECODE_EARLY=0 LQ_DECODE_PREFETCH=4"
for cfg in "X=0" "$OLD" "LQ_DECODE_EARLY=0" "LQ_DECODE_PREFETCH=2" "X=1" "$OLD"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/a3/lq bench kernels --attention --shapes none --iters 50 >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +16 " $R/attn.txt
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
for w in "f16:" "w4:--rtn 4 --group 128"; do for cfg in "X=0" "$OLD"; do
  n=${w%%:*}; a=${w#*:}
  echo "== $n [$cfg]" >> $R/model.txt
  env $cfg timeout 150 carry/a3/lq bench model $MM $a --out $R/model_${n}_$(echo $cfg | tr -dc 'A-Z01').json >> $R/model.txt 2>&1
  echo "model $n $(( $(date +%s) - t0 )) s" >> $R/times.txt
done; done
grep -E "^==|decode" $R/model.txt; cat $R/times.txt
tar czf $OUT/r3.tgz -C /tmp r3
