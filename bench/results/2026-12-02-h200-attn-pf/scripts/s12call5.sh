#!/usr/bin/env bash
# session 12 call 5: carry/b5 = main as committed: the read ceiling with >= 4 rotated buffers, test_model_gpu's
# shared golden-story helper. test_kernels + test_model_gpu; ANCHORS' whole attention sweep (README table).
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b5.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b5/lq
R=/tmp/r5; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/b5/test_kernels carry/b5/test_model_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch" $R/suites.log | head -10
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
timeout 150 carry/b5/lq bench kernels --attn all --shapes none --iters 50 --out $R/attn_all.json > $R/attn_all.txt 2>&1
tail -n 21 $R/attn_all.txt
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r5.tgz -C /tmp r5
