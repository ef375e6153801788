#!/usr/bin/env bash
# Session 22, call 3: wgm_cost choosing the geometry at M = 33..1024 (w4l; the f32y baseline timed before the
# W4A16 paths): every GPU suite; A/B against w4j (main before this session's rules) on the wgmma path, all
# shapes, M = 48..1024, two rounds alternating; the full M sweep (README row); the model new vs old.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4j.tar.xz","carry/w4l.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4j.tar.xz -C carry && tar xJf carry/w4l.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4l/lq
B=carry/w4l; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "FAILED|\[  FAILED" $R/gputests.log | head
K="--w4a16 --w4-paths wgmma --shapes all --iters 20 --m 48,64,96,128,192,256,320,384,512,768,1024"
for r in 1 2; do for b in w4l w4j; do
  echo "== r$r $b" >> $R/ab.txt; timeout 120 carry/$b/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
echo "== r1" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K >> $R/w4k.txt 2>&1
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,64,128 --ctx 512 --steps 8 --reps 2"
for r in 1 2; do for b in w4l w4j; do
  echo "== r$r $b" >> $R/model.txt; timeout 100 carry/$b/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|prefill|decode" $R/model.txt | grep -v cuBLAS | head -40
gzip $R/gputests.log
