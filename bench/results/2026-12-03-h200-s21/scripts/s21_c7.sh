#!/usr/bin/env bash
# Session 21, call 7: every GPU suite on the final source (w4i: wgmma_matmul computes its geometry once), and
# the qkv / o kernels at M = 64..512 as a check that the launches are the ones of call 5.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4i.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4i.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4i/lq
B=carry/w4i; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log
timeout 60 $B/lq bench kernels --w4a16 --shapes llama3 --iters 20 --m 64,128,256,300,512 > $R/w4k.txt 2>&1
gzip $R/gputests.log
