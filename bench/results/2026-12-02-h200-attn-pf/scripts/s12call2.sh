#!/usr/bin/env bash
# session 12 call 2: carry/b2 = b1 + LQ_DECODE_REGTILE=1|2: the warp's tiles after its ring read into registers
# before the PDL wait (hd 128, 8 warps) and stored into the ring as its first stages are consumed.
# The attention under the knobs, then test_kernels + test_model_gpu under them.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b2.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b2/lq
R=/tmp/r2; mkdir -p $R; t0=$(date +%s)
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for cfg in "X=0" "LQ_DECODE_REGTILE=1" "LQ_DECODE_REGTILE=2" "LQ_DECODE_REGTILE=1 LQ_DECODE_REL=1" \
           "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1" "X=1" "LQ_DECODE_REGTILE=1" "LQ_DECODE_REGTILE=2"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/b2/lq bench kernels $A >> $R/attn.txt 2>&1
done
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-60
for cfg in "LQ_DECODE_REGTILE=1 LQ_DECODE_REL=1" "LQ_DECODE_REGTILE=2 LQ_DECODE_REL=1"; do
  n=$(echo "$cfg" | tr -cd 'A-Z0-9=' | tr '=' '_')
  env $cfg LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 120 ./tests/run_tests.sh carry/b2/test_kernels carry/b2/test_model_gpu > $R/suites_$n.log 2>&1; echo "rc=$?" >> $R/suites_$n.log
  echo "[$cfg]"; tail -n 2 $R/suites_$n.log; grep -hE "FAILED|mismatch" $R/suites_$n.log | head -5
done
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r2.tgz -C /tmp r2
