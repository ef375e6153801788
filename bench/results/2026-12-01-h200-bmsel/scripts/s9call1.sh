#!/usr/bin/env bash
# session 9 call 1: branch wgmma-bm-select 1929094 (carry/bs) against main 2bff96b (carry/bin): kernels, model
# with --baseline, the small-M plan sweep at M = 1 (knob), then every GPU suite of carry/bs side by side
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/bin.tar.xz -C carry && tar xJf carry/bs.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/bs/lq
R=/tmp/r1; mkdir -p $R
t0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $R/info.txt
KM="--w4a16 --shapes llama3 --m 1,16,64,128,192,256,384,512 --iters 20"
timeout 90 carry/bs/lq bench kernels $KM --out $R/k_bs.json > $R/k_bs.txt 2>&1
timeout 90 carry/bin/lq bench kernels $KM --out $R/k_main.json > $R/k_main.txt 2>&1
echo "kernels $(( $(date +%s) - t0 )) s" >> $R/times.txt
timeout 150 carry/bs/lq bench model --preset llama3-8b --device cuda --rtn 4 --baseline --prompt 256,512,2048 --batch 1,4 --ctx 512 --steps 4 --out $R/m_bs.json > $R/m_bs.txt 2>&1
echo "model $(( $(date +%s) - t0 )) s" >> $R/times.txt
for p in 1,1 1,2 1,4 1,8 2,1 2,2 2,4 2,8 4,1 4,2 4,4 8,1 8,2 8,4 16,1 16,2; do
  echo "== LQ_W4S_PLAN=$p" >> $R/plan.txt
  LQ_W4S_PLAN=$p timeout 40 carry/bin/lq bench kernels --w4a16 --shapes llama3 --m 1 --iters 20 2>&1 | grep -E "^(qkv|o |gate|down)" >> $R/plan.txt
done
echo "plan $(( $(date +%s) - t0 )) s" >> $R/times.txt
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/bs/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 15 $R/suites.log
grep -hE "FAILED|mismatch at|error:" $R/suites.log | head -20
cat $R/times.txt
grep -hE "prefill|decode" $R/m_bs.txt
tar czf $OUT/r1.tgz -C /tmp r1
