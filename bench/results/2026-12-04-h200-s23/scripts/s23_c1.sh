#!/usr/bin/env bash
# Session 23, call 1: the small-M kernel's offset as a second HMMA (LQ_W4S_ISCALE=2, the new default) against
# the integer weights of session 15 (=1): every GPU suite on the new default; M = 1..8 on the llama3 + llama2
# shapes, three rounds alternating; the model at batch 1 / 4 / 8 both ways; then the bench's timed warm-up
# (--warm-ms 50, default) against none (0) on the full llama3 sweep (session 22's call 5, never run).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4o.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4o.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4o/lq
B=carry/w4o; R=$OUT; T0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv > $R/smi.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "FAILED|\[  FAILED" $R/gputests.log | head; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --w4-paths small --shapes all --iters 50 --m 1,2,3,4,5,8"
for r in 1 2 3; do for im in 2 1; do
  echo "== r$r im$im" >> $R/ab.txt; LQ_W4S_ISCALE=$im timeout 100 $B/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4,8 --ctx 512 --steps 16 --reps 2"
for r in 1 2; do for im in 2 1; do
  echo "== r$r im$im" >> $R/model.txt; LQ_W4S_ISCALE=$im timeout 100 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt | grep -v cuBLAS | head -40; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30 --attn 1x8192,1x16384,1x32768,16x8192"
for w in 50 0; do
  echo "== warm $w" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K --warm-ms $w >> $R/w4k.txt 2>&1
  echo "t=$(( $(date +%s) - T0 ))"
done
gzip $R/gputests.log
