#!/usr/bin/env bash
# Session 23, call 3: main as committed (session 22's kernels, the bench's 50 ms warm-up per timed launch set):
# every GPU suite; the llama3 W4A16 sweep twice (README row) and the decode attention sweep; all shapes once;
# the W4 model at batch 1 / 64 / 128.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4p.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4p.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4p/lq
B=carry/w4p; R=$OUT; T0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head; echo "t=$(( $(date +%s) - T0 ))"
K="--w4a16 --m 1,4,8,16,32,64,128,256,512,1024,2048,4096 --shapes llama3 --iters 30"
for r in 1 2; do echo "== r$r" >> $R/w4k.txt; timeout 150 $B/lq bench kernels $K >> $R/w4k.txt 2>&1; echo "t=$(( $(date +%s) - T0 ))"; done
timeout 120 $B/lq bench kernels --attn 1x8192,1x16384,1x32768,16x8192 --iters 30 > $R/attn.txt 2>&1
timeout 150 $B/lq bench kernels --w4a16 --m 1,16,64,256,1024 --shapes all --iters 20 --json --out $R/all.json > $R/all.txt 2>&1
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,64,128 --ctx 512 --steps 8 --reps 2"
timeout 120 $B/lq bench model $M > $R/model.txt 2>&1; grep -E "prefill|decode" $R/model.txt | head
echo "t=$(( $(date +%s) - T0 ))"
gzip $R/gputests.log
