#!/usr/bin/env bash
# For the next session's first device call (written in session 12, not yet run): branch attn-merge-pad
# (the 8-warp merge's O rows HD + 4 floats apart: no 4-way bank conflict on its stores), as
# carry/mp.tar.xz (build/lq, test_kernels, test_model_gpu, build/dev/bench_attn_trace of that branch; rebuild
# it in a fresh checkout: git checkout attn-merge-pad, or git apply kernels/dev/attn_merge_pad.patch on main,
# then make, make build/tests/test_kernels build/tests/test_model_gpu, make dev-attn-trace).
# run: bash kernels/dev/s13_merge_pad.sh   carry ["carry/libs.tar.xz","carry/shared","carry/mp.tar.xz"]
# Predicted: the trace's loops -> part drops from ~1.5 us toward ~0.8; 1 x 8k 12.7 -> ~12.0 us if it does.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/mp.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/mp/lq
R=/tmp/rmp; mkdir -p $R
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 150 ./tests/run_tests.sh carry/mp/test_kernels carry/mp/test_model_gpu > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
timeout 60 carry/mp/bench_attn_trace 1x1024 1x8192 1x32768 > $R/trace.txt 2>&1; grep -E "x |us from|period" $R/trace.txt
timeout 60 carry/mp/lq bench kernels --attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50 > $R/attn.txt 2>&1
grep -E "^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-60
gzip $R/*.log; tar czf $OUT/rmp.tgz -C /tmp rmp
