#!/usr/bin/env bash
# session 12 call 4: carry/b4 = the candidate for main: the read-ceiling column, the decode attention's split
# count fenced by thread 0 (release / acquire; LQ_DECODE_REL=0 restores a __threadfence per thread), the L2
# prefetch code gone, bias_start shared by the two cuBLAS products. Every GPU suite; the old fence path's suites;
# the attention A/B; ANCHORS' whole sweep; llama3-8b W4 decode A/B, fp16 decode once.
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b4.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/b4/lq
R=/tmp/r4; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh carry/b4/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch" $R/suites.log | head -10
LQ_DECODE_REL=0 LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 120 ./tests/run_tests.sh carry/b4/test_kernels carry/b4/test_model_gpu > $R/suites_rel0.log 2>&1; echo "rc=$?" >> $R/suites_rel0.log
echo "[REL=0]"; tail -n 2 $R/suites_rel0.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,16x8192 --shapes none --iters 50"
for cfg in "X=0" "LQ_DECODE_REL=0" "X=1" "LQ_DECODE_REL=0"; do
  echo "== [$cfg]" >> $R/attn.txt
  env $cfg timeout 60 carry/b4/lq bench kernels $A >> $R/attn.txt 2>&1
done
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-60
timeout 120 carry/b4/lq bench kernels --attn all --shapes none --iters 50 --out $R/attn_all.json > $R/attn_all.txt 2>&1
echo "attn $(( $(date +%s) - t0 )) s" >> $R/times.txt
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
for cfg in "X=0" "LQ_DECODE_REL=0" "X=1" "LQ_DECODE_REL=0"; do
  echo "== [$cfg]" >> $R/model_w4.txt
  env $cfg timeout 150 carry/b4/lq bench model $MM --rtn 4 --group 128 >> $R/model_w4.txt 2>&1
done
grep -E "^==|decode" $R/model_w4.txt
timeout 150 carry/b4/lq bench model --preset llama3-8b --device cuda --prompt 512 --batch 1,4 --ctx 512 --steps 8 --reps 2 --out $R/model_f16.json > $R/model_f16.txt 2>&1
grep -E "decode|prefill" $R/model_f16.txt
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt; cat $R/times.txt
gzip $R/*.log; tar czf $OUT/r4.tgz -C /tmp r4
