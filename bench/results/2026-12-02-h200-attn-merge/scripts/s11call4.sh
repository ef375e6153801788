#!/usr/bin/env bash
# session 11 call 4: carry/a4 = branch attn-merge as merged (the separate-merge experiment removed):
# every GPU suite; the attention sweep (default, early off, 4 warps for co-resident blocks); llama3-8b
# W4 and fp16 decode batch 1 / 4 at ctx 512 (the README rows)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a4.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/a4/lq
R=/tmp/r4; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh carry/a4/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch|error:" $R/suites.log | head -10
for cfg in "X=0" "LQ_DECODE_EARLY=0" "LQ_DECODE_WARPS=4" "LQ_DECODE_WARPS=4 LQ_DECODE_BLOCKS_PER_SM=2" "X=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/a4/lq bench kernels --attention --shapes none --iters 50 >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +16 " $R/attn.txt
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1,4 --ctx 512 --steps 8 --reps 2"
timeout 150 carry/a4/lq bench model $MM --rtn 4 --group 128 --out $R/model_w4.json > $R/model_w4.txt 2>&1
timeout 150 carry/a4/lq bench model $MM --out $R/model_f16.json > $R/model_f16.txt 2>&1
grep -hE "decode|prefill" $R/model_w4.txt $R/model_f16.txt; echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
tar czf $OUT/r4.tgz -C /tmp r4
