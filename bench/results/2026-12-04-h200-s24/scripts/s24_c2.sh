#!/usr/bin/env bash
# Session 24, call 2: w4t = main + kernels/dev/w4_tmax.patch (the small-M kernel's x rows copied into shared memory
# by cp.async.bulk after the PDL wait, then permuted from shared memory; LQ_W4S_TMAX=0: main's staging):
# every GPU suite (the default is the new staging), the small-M path at M = 1..16 A/B three rounds, the model at
# ctx 512 both ways two rounds, and the phase trace with the new staging.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4t.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4t.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4t/lq
B=carry/w4t; R=$OUT; T0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --w4-paths small --shapes all --iters 50 --m 1,2,4,8,12,16"
for r in 1 2 3; do for v in 1 0; do
  echo "== r$r tmax$v" >> $R/ab.txt; LQ_W4S_TMAX=$v timeout 100 $B/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4,8,16 --ctx 512 --steps 16 --reps 2"
for r in 1 2; do for v in 1 0; do
  echo "== r$r tmax$v" >> $R/model.txt; LQ_W4S_TMAX=$v timeout 100 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt | head -40; echo "t=$(( $(date +%s) - T0 ))"
timeout 100 $B/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 6144x4096x4 4096x14336x4 6144x4096x8 4096x4096x8 > $R/trace.txt 2>&1
grep -E "^  us" $R/trace.txt; echo "t=$(( $(date +%s) - T0 ))"
gzip $R/gputests.log
