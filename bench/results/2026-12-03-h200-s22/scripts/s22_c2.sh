#!/usr/bin/env bash
# Session 22, call 2: the new geometry rule (wgm_cost; 128-row x tiles at M = 384) and the bench's f32y column
# (w4k): every GPU suite; A/B against call 1's binary (w4j = main before the rule) on the wgmma path, llama3 +
# llama2, two rounds alternating; the full M sweep (README row).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4j.tar.xz","carry/w4k.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4j.tar.xz -C carry && tar xJf carry/w4k.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4k/lq
B=carry/w4k; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "FAILED|\[  FAILED" $R/gputests.log | head
K="--w4a16 --w4-paths wgmma --shapes all --iters 20 --m 48,64,96,128,192,256,320,384,512"
for r in 1 2; do for b in w4k w4j; do
  echo "== r$r $b" >> $R/ab.txt; timeout 100 carry/$b/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
echo "== r1" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
gzip $R/gputests.log
