#!/usr/bin/env bash
# session 12 call 7: carry/b7 = main + the last block's merge loading every split's partial at once (up to 16;
# LQ_DECODE_MERGE_ALL=0: the online loop, 8 splits per round trip). test_kernels + test_model_gpu; the attention
# A/B alternating twice.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b7.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b7/lq
R=/tmp/r7; mkdir -p $R; t0=$(date +%s)
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192 --shapes none --iters 50"
for cfg in "X=0" "LQ_DECODE_MERGE_ALL=0" "X=1" "LQ_DECODE_MERGE_ALL=0"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/b7/lq bench kernels $A >> $R/attn.txt 2>&1
done
grep -E "^==|^ +1 |^ +8 " $R/attn.txt | cut -c1-60
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/b7/test_kernels carry/b7/test_model_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch" $R/suites.log | head -10
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r7.tgz -C /tmp r7
