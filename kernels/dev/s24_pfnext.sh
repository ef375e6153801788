#!/usr/bin/env bash
# Prepared in session 23, not yet run: branch w4-pfnext (kernels/dev/w4_pfnext.patch) - each W4A16 weight names
# the codes of the product a decode step runs next (lq_w4a16_weight.pf; the engine links qkv -> o -> gate_up ->
# down -> next qkv, the bench launch r -> r + 1) and the small-M kernel asks L2 for its share of them once its own
# codes are in (LQ_W4S_PF=0: ignored; LQ_W4S_PF_MB: the cap, default 32). Build the branch, carry lq + the GPU
# test binaries as BIN (a folder), then on the device: bash kernels/dev/s24_pfnext.sh BIN
set -u
B=${1:?the folder with lq and the test binaries}; R=${OUT:-/tmp}; T0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 240 ./tests/run_tests.sh $(ls $B/test_*) > $R/gputests.log 2>&1; echo "rc=$?" >> $R/gputests.log
tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head
K="--w4a16 --w4-paths small --shapes all --iters 50 --m 1,2,4,8"
for r in 1 2 3; do for pf in 1 0; do
  echo "== r$r pf$pf" >> $R/ab.txt; LQ_W4S_PF=$pf timeout 100 $B/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/ab.txt; done; done
echo "t=$(( $(date +%s) - T0 ))"
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4,8 --ctx 512,8000 --steps 16 --reps 2"
for r in 1 2; do for pf in 1 0; do
  echo "== r$r pf$pf" >> $R/model.txt; LQ_W4S_PF=$pf timeout 120 $B/lq bench model $M >> $R/model.txt 2>&1
done; done
grep -E "^==|decode" $R/model.txt | head -40; echo "t=$(( $(date +%s) - T0 ))"
gzip $R/gputests.log
