#!/usr/bin/env bash
# session 11 call 5: carry/a5 = test_w4a16_gpu with the swiglu test's fused-vs-unfused bound made
# cancellation-aware: the failing seed of call 4 replayed, then three fresh seeds
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a5.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r5; mkdir -p $R
LQ_TEST_SEED=1763668455 LQ_REQUIRE_GPU=1 timeout 120 carry/a5/test_w4a16_gpu > $R/seed_call4.log 2>&1; echo "rc=$?" >> $R/seed_call4.log
for i in 1 2 3; do LQ_REQUIRE_GPU=1 timeout 120 carry/a5/test_w4a16_gpu > $R/fresh_$i.log 2>&1; echo "rc=$?" >> $R/fresh_$i.log; done
for f in $R/*.log; do echo "== $f"; grep -hE "random seed|fused vs unfused|swiglu M=1 |swiglu M=2 |swiglu M=3 |swiglu M=4 |PASSED|FAILED|rc=" $f; done
tar czf $OUT/r5.tgz -C /tmp r5
