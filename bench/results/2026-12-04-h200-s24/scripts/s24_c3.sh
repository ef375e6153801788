#!/usr/bin/env bash
# Session 24, call 3: w4x = main + kernels/dev/w4_xcp.patch (the small-M kernel's x rows by 16-byte cp.async into a
# raw buffer, every chunk in flight at once, then permuted from shared memory; LQ_W4S_XCP=1 where main's staging
# takes two or more rounds, 2 everywhere it can, 0 main): every GPU suite under LQ_W4S_XCP=2 (every small-M case
# through the new staging), the small-M path at M = 1..16 XCP 1 vs 0 three rounds, the model at batch 4/8/16 both
# ways, the phase trace at M = 4 / 8 with it.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4x.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4x.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4x/lq
B=carry/w4x; R=$OUT; T0=$(date +%s)
LQ_W4S_XCP=2 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --w4-paths small --shapes all --iters 50 --m 1,2,4,8,12,16"
for r in 1 2 3; do for v in 1 0; do
  echo "== r$r xcp$v" >> $R/ab.txt; LQ_W4S_XCP=$v timeout 60 $B/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 4,8,16 --ctx 512 --steps 16 --reps 2"
for v in 1 0; do echo "== xcp$v" >> $R/model.txt; LQ_W4S_XCP=$v timeout 90 $B/lq bench model $M >> $R/model.txt 2>&1; done
grep -E "^==|decode" $R/model.txt | head -20; echo "t=$(( $(date +%s) - T0 ))"
timeout 40 $B/bench_w4_trace 6144x4096x8 4096x4096x8 4096x14336x4 > $R/trace.txt 2>&1
grep -E "^  us" $R/trace.txt; echo "t=$(( $(date +%s) - T0 ))"
gzip $R/gputests.log
