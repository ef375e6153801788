#!/usr/bin/env bash
# session 12 call 1: carry/b1 = main + the read-ceiling column (kernels/dev/bench_read_ceiling.patch applied)
# + two decode-attention knobs: LQ_DECODE_PREFETCH=n now prefetches the n tiles per warp AFTER the ring
# into L2 before the PDL wait; LQ_DECODE_REL=1 counts splits with one release/acquire fence by thread 0.
# Every GPU suite (default), test_kernels + test_model_gpu under the knobs, the attention under the knobs
# (with 4-warp blocks: two launches' blocks co-resident per SM), ANCHORS' whole sweep with the ceiling.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b1.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b1/lq
R=/tmp/r1; mkdir -p $R; t0=$(date +%s)
A="--attn 1x1024,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for cfg in "X=0" "LQ_DECODE_REL=1" "LQ_DECODE_PREFETCH=1" "LQ_DECODE_PREFETCH=2" "LQ_DECODE_PREFETCH=5" \
           "LQ_DECODE_PREFETCH=1 LQ_DECODE_REL=1" "LQ_DECODE_WARPS=4" "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=2" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=5" "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=5 LQ_DECODE_REL=1" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_PREFETCH=12 LQ_DECODE_REL=1" "X=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/b1/lq bench kernels $A >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt
timeout 120 carry/b1/lq bench kernels --attn all --shapes none --iters 50 --out $R/attn_all.json > $R/attn_all.txt 2>&1
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/attn_all.txt | tail -30
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh carry/b1/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch|error:" $R/suites.log | head -10
for cfg in "LQ_DECODE_REL=1 LQ_DECODE_PREFETCH=5" "LQ_DECODE_WARPS=4 LQ_DECODE_REL=1 LQ_DECODE_PREFETCH=5"; do
  n=$(echo "$cfg" | tr -cd 'A-Z0-9=' | tr '=' '_')
  env $cfg LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 120 ./tests/run_tests.sh carry/b1/test_kernels carry/b1/test_model_gpu > $R/suites_$n.log 2>&1; echo "rc=$?" >> $R/suites_$n.log
  echo "[$cfg]"; tail -n 2 $R/suites_$n.log
done
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r1.tgz -C /tmp r1
