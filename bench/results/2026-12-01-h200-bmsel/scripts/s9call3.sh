#!/usr/bin/env bash
# session 9 call 3: carry/pl = main 4ab425c + the M = 1 small-M plan rules (uncommitted build of the next commit):
# M = 1 / 4 kernels against carry/bin (main before, same small-M kernel), alternating, 3 rounds; W4 decode of both;
# a plan sweep (B, S, KS) at M = 8 and 16; every GPU suite of carry/pl side by side
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/bin.tar.xz -C carry && tar xJf carry/pl.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/pl/lq
R=/tmp/r3; mkdir -p $R
t0=$(date +%s)
for r in 1 2 3; do for b in pl bin; do
  timeout 40 carry/$b/lq bench kernels --w4a16 --shapes llama3 --m 1,4 --iters 20 2>&1 | grep -E "^(qkv|o |gate|down)" | sed "s/^/r$r $b /" >> $R/m1.txt
done; done
echo "m1 $(( $(date +%s) - t0 )) s" >> $R/times.txt
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4 --ctx 512 --steps 4"
for b in pl bin pl; do
  timeout 120 carry/$b/lq bench model $MM >> $R/model_$b.txt 2>&1
done
echo "model $(( $(date +%s) - t0 )) s" >> $R/times.txt
for B in 1 2 4 8; do for S in 1 2 4 8 16; do for KS in 1 2 4; do
  [ $((B*S)) -le 32 ] || continue
  LQ_W4S_PLAN=$B,$S,$KS timeout 40 carry/pl/lq bench kernels --w4a16 --shapes llama3 --m 8,16 --iters 20 2>&1 | grep -E "^(qkv|o |gate|down)" | sed "s/^/$B,$S,$KS /" >> $R/sweep16.txt
done; done; done
timeout 40 carry/pl/lq bench kernels --w4a16 --shapes llama3 --m 8,16 --iters 20 2>&1 | grep -E "^(qkv|o |gate|down)" | sed "s/^/default /" >> $R/sweep16.txt
echo "sweep $(( $(date +%s) - t0 )) s" >> $R/times.txt
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/pl/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 3 $R/suites.log
grep -hE "FAILED|mismatch at|error:" $R/suites.log | head -20
cat $R/times.txt
grep -hE "decode" $R/model_*.txt
tar czf $OUT/r3.tgz -C /tmp r3
