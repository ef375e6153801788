#!/usr/bin/env bash
# Session 13, call 5: main as committed (the merge pad; LQ_DECODE_EARLY=k and LQ_DECODE_SPLITS_MAX knobs at their
# defaults): every GPU suite, the whole ANCHORS attention sweep, the W4 and fp16 llama3-8b decode at batch 1.
# carry/f.tar.xz: build/lq and every build/tests/test_*_gpu + test_kernels of that commit.
# run: bash bench/results/2026-12-02-h200-s13/scripts/s13_final.sh  carry ["carry/libs.tar.xz","carry/shared","carry/f.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/f.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/f/lq
R=/tmp/rf; mkdir -p $R
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/f/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
timeout 90 carry/f/lq bench kernels --attn all --shapes none --iters 50 > $R/attn_all.txt 2>&1
grep -E "^ +[0-9]+ " $R/attn_all.txt | cut -c1-66
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
for r in 1 2; do
echo "== w4" >> $R/model.txt; timeout 100 carry/f/lq bench model $MM --rtn 4 --group 128 >> $R/model.txt 2>&1
done
echo "== fp16" >> $R/model.txt; timeout 100 carry/f/lq bench model $MM >> $R/model.txt 2>&1
grep -E "^==|decode|prefill" $R/model.txt
gzip $R/*.log; tar czf $OUT/rf.tgz -C /tmp rf
