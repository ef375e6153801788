#!/usr/bin/env bash
# Session 21, call 1: path 2 (dequantize + cuBLAS) in chunks of weight rows that stay in L2 (w4d): its tests,
# every GPU suite; W4A16 kernels M = 512..4096 with the chunk budget LQ_W4A16_DEQ_MB = 0 (whole) / 8 / 16 / 32
# and LQ_W4A16_DEQ_ROWS = 1024, two rounds, alternating.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4d.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4d.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4d/lq
B=carry/w4d; R=$OUT
LQ_REQUIRE_GPU=1 timeout 120 $B/test_w4a16_gpu > $R/w4gpu.log 2>&1; echo "rc=$?" >> $R/w4gpu.log; tail -5 $R/w4gpu.log
K="--w4a16 --m 512,1024,2048,4096 --shapes llama3 --iters 20"
for r in 1 2; do for v in LQ_W4A16_DEQ_MB=0 LQ_W4A16_DEQ_MB=8 LQ_W4A16_DEQ_MB=16 LQ_W4A16_DEQ_MB=32 LQ_W4A16_DEQ_ROWS=1024; do
  echo "== r$r $v" >> $R/w4k.txt; env $v timeout 100 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done
grep -c "^qkv" $R/w4k.txt
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -4 $R/gputests.log
gzip $R/gputests.log
