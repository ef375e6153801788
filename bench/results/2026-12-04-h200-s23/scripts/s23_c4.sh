#!/usr/bin/env bash
# Session 23, call 4: the small-M kernel's bulk L2 prefetch of each warp's tiles after its ring, before the PDL
# wait (w4q, default on; LQ_W4S_L2PF=0 off): every GPU suite; M = 1..8 on all shapes, three rounds alternating;
# the model at batch 1 / 4 / 8 both ways, two rounds.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4q.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4q.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4q/lq
B=carry/w4q; R=$OUT; T0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --w4-paths small --shapes all --iters 50 --m 1,2,3,4,5,8"
for r in 1 2 3; do for pf in 1 0; do
  echo "== r$r pf$pf" >> $R/ab.txt; LQ_W4S_L2PF=$pf timeout 100 $B/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4,8 --ctx 512 --steps 16 --reps 2"
for r in 1 2; do for pf in 1 0; do
  echo "== r$r pf$pf" >> $R/model.txt; LQ_W4S_L2PF=$pf timeout 100 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt | grep -v cuBLAS | head -40; echo "t=$(( $(date +%s) - T0 ))"
gzip $R/gputests.log
