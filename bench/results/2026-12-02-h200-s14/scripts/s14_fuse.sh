#!/usr/bin/env bash
# Session 14, call 2: main + the decode fusions (the rmsnorm staged in the small-M kernel, the residual add in its
# epilogue; LQ_DECODE_FUSE=0 turns both off) + the split count as one atom.acq_rel.gpu (LQ_DECODE_REL=2, default
# since call 1). Every GPU suite; the W4 llama3-8b decode at batch 1 and 4, fused vs LQ_DECODE_FUSE=0
# alternating; fp16 decode b1; the W4A16 kernels at M = 1..4 against session 13's main binary (the small-M
# kernel's code changed: the norm branch and the epilogue's add); the ANCHORS attention sweep.
# carry/n.tar.xz: build/lq and every build/tests/test_*_gpu + test_kernels of this build (n/);
# carry/rt.tar.xz: session 13's main binary (rt/lq).
# run: bash bench/results/2026-12-02-h200-s14/scripts/s14_fuse.sh
#      carry ["carry/libs.tar.xz","carry/shared","carry/n.tar.xz","carry/rt.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n.tar.xz -C carry && tar xJf carry/rt.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/n/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
grep -E "norm fused|FAIL|ERROR" $R/suites.log | head -20
MM="--preset llama3-8b --device cuda --prompt 512 --steps 8 --reps 2"
for r in 1 2; do
  echo "== w4 b1 fused" >> $R/model.txt; timeout 100 carry/n/lq bench model $MM --batch 1 --ctx 512,8000 --rtn 4 --group 128 >> $R/model.txt 2>&1
  echo "== w4 b1 LQ_DECODE_FUSE=0" >> $R/model.txt; LQ_DECODE_FUSE=0 timeout 100 carry/n/lq bench model $MM --batch 1 --ctx 512,8000 --rtn 4 --group 128 >> $R/model.txt 2>&1
done
echo "== w4 b4 fused" >> $R/model.txt; timeout 100 carry/n/lq bench model $MM --batch 4 --ctx 512 --rtn 4 --group 128 >> $R/model.txt 2>&1
echo "== w4 b4 LQ_DECODE_FUSE=0" >> $R/model.txt; LQ_DECODE_FUSE=0 timeout 100 carry/n/lq bench model $MM --batch 4 --ctx 512 --rtn 4 --group 128 >> $R/model.txt 2>&1
echo "== fp16 b1" >> $R/model.txt; timeout 100 carry/n/lq bench model $MM --batch 1 --ctx 512,8000 >> $R/model.txt 2>&1
grep -E "^==|decode|prefill" $R/model.txt
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do
  echo "== new" >> $R/w4k.txt; timeout 60 carry/n/lq bench kernels $K >> $R/w4k.txt 2>&1
  echo "== s13 main" >> $R/w4k.txt; timeout 60 carry/rt/lq bench kernels $K >> $R/w4k.txt 2>&1
done
grep -E "^==|^ *(qkv|o |gate|down)" $R/w4k.txt | head -60
timeout 90 carry/n/lq bench kernels --attn all --shapes none --iters 50 > $R/attn_all.txt 2>&1
grep -E "^ +[0-9]+ " $R/attn_all.txt | cut -c1-66
gzip $R/suites.log
