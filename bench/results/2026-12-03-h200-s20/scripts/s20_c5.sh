#!/usr/bin/env bash
# Session 20, call 5: the committed source (w4f): every GPU suite; W4A16 kernels M = 1..4096 (two rounds, the
# README table); the model: default vs LQ_W4A16_REDUCE4=0 (prefill 512, decode 1 / 16 / 64).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4f.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4f.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4f/lq
B=carry/w4f; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -4 $R/gputests.log
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do echo "== r$r" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K >> $R/w4k.txt 2>&1; done
grep -c "^qkv" $R/w4k.txt
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,16,64 --ctx 512 --steps 8 --reps 2"
for r in 1 2; do for v in LQ_W4A16_REDUCE4=1 LQ_W4A16_REDUCE4=0; do
  echo "== r$r [$v]" >> $R/model.txt; env $v timeout 120 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|prefill|decode" $R/model.txt | grep -v cuBLAS | head -30
gzip $R/gputests.log
