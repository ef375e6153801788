#!/usr/bin/env bash
# Session 21, call 5: the committed source with wgm_geom's 192-row tiles (w4h): every GPU suite; kernels
# default vs LQ_W4A16_WGMMA_WGS=4 (the previous default) at M = 48..512, two rounds; the full M sweep (README
# table); the model default vs WGS=4 (prefill 512, decode 1 / 16 / 64), two rounds.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4h.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4h.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4h/lq
B=carry/w4h; R=$OUT
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -4 $R/gputests.log; grep -E "FAILED|\[  FAILED" $R/gputests.log | head
K="--w4a16 --shapes llama3 --iters 20 --m 48,64,96,128,256,300,512"
for r in 1 2; do for v in LQ_W4A16_WGMMA_WGS= LQ_W4A16_WGMMA_WGS=4; do
  echo "== r$r $v" >> $R/ab.txt; env $v timeout 100 $B/lq bench kernels $K >> $R/ab.txt 2>&1; done; done
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do echo "== r$r" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K >> $R/w4k.txt 2>&1; done
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,16,64 --ctx 512 --steps 8 --reps 2"
for r in 1 2; do for v in LQ_W4A16_WGMMA_WGS= LQ_W4A16_WGMMA_WGS=4; do
  echo "== r$r [$v]" >> $R/model.txt; env $v timeout 120 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|prefill|decode" $R/model.txt | grep -v cuBLAS | head -30
gzip $R/gputests.log
