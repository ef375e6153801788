#!/usr/bin/env bash
# session 12 call 3: carry/b3 = b2 + the register stage only where all RT tiles fill (LQ_DECODE_RTPART=1: also
# partly), the register stage for 4-warp blocks too, LQ_DECODE_CARVEOUT=1 (4-warp blocks ask for the whole
# shared-memory carveout), LQ_DECODE_VERBOSE=1 (blocks per SM of the instantiation).
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b3.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b3/lq
R=/tmp/r3; mkdir -p $R; t0=$(date +%s)
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for cfg in "X=0" "LQ_DECODE_REGTILE=2" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1" "LQ_DECODE_WARPS=4" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_CARVEOUT=1" "LQ_DECODE_WARPS=4 LQ_DECODE_REGTILE=1 LQ_DECODE_CARVEOUT=1" \
           "LQ_DECODE_WARPS=4 LQ_DECODE_REGTILE=2 LQ_DECODE_CARVEOUT=1" "LQ_DECODE_WARPS=4 LQ_DECODE_REGTILE=2 LQ_DECODE_CARVEOUT=1 LQ_DECODE_RTPART=1" \
           "X=1" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg LQ_DECODE_VERBOSE=1 timeout 60 carry/b3/lq bench kernels $A >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +8 |^ +16 |blocks per SM" $R/attn.txt | cut -c1-72
for cfg in "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1 LQ_DECODE_RTPART=1"; do
  n=$(echo "$cfg" | tr -cd 'A-Z0-9=' | tr '=' '_')
  env $cfg LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 120 ./tests/run_tests.sh carry/b3/test_kernels carry/b3/test_model_gpu > $R/suites_$n.log 2>&1; echo "rc=$?" >> $R/suites_$n.log
  echo "[$cfg]"; tail -n 2 $R/suites_$n.log; grep -hE "FAILED|mismatch" $R/suites_$n.log | head -5
done
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 8000,16000 --steps 8 --reps 2"
for cfg in "X=0" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1" "X=1" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1"; do
  echo "== [$cfg]" >> $R/model.txt
  env $cfg timeout 150 carry/b3/lq bench model $MM >> $R/model.txt 2>&1
done
grep -E "^==|decode" $R/model.txt
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r3.tgz -C /tmp r3
