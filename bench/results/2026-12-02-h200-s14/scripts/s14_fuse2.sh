#!/usr/bin/env bash
# Session 14, call 3: call 2's fusions lost (W4 b1 ~2%, b4 ~7%) and the small-M kernel at M = 2, 4 ran 1-3%
# slower than session 13's with the fusions off. Now: the norm in its own instantiations (template NORM, so the
# plain kernels are as before), the residual add's loads copied into shared memory right after the PDL wait
# (cp.async) instead of a load in the epilogue, and LQ_DECODE_FUSE a bit mask (1 norm, 2 residual add).
# Every GPU suite; W4 llama3-8b decode b1 ctx 512 under FUSE = 0 / 1 / 2 / 3, two rounds; b4 FUSE 0 / 3;
# the W4A16 kernels at M = 1, 2, 4 against session 13's main binary.
# carry/n2.tar.xz: build/lq + every build/tests/test_*_gpu + test_kernels (n2/); carry/rt.tar.xz: s13 main (rt/lq).
# run: bash bench/results/2026-12-02-h200-s14/scripts/s14_fuse2.sh
#      carry ["carry/libs.tar.xz","carry/shared","carry/n2.tar.xz","carry/rt.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/n2.tar.xz -C carry && tar xJf carry/rt.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/n2/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/n2/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
grep -E "FAIL|ERROR" $R/suites.log | head -20
MM="--preset llama3-8b --device cuda --prompt 512 --steps 8 --reps 2 --rtn 4 --group 128"
for r in 1 2; do for f in 3 0 1 2; do
  echo "== w4 b1 LQ_DECODE_FUSE=$f" >> $R/model.txt; LQ_DECODE_FUSE=$f timeout 100 carry/n2/lq bench model $MM --batch 1 --ctx 512 >> $R/model.txt 2>&1
done; done
for f in 3 0; do
  echo "== w4 b4 LQ_DECODE_FUSE=$f" >> $R/model.txt; LQ_DECODE_FUSE=$f timeout 100 carry/n2/lq bench model $MM --batch 4 --ctx 512 >> $R/model.txt 2>&1
done
grep -E "^==|decode" $R/model.txt
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do
  echo "== new" >> $R/w4k.txt; timeout 60 carry/n2/lq bench kernels $K >> $R/w4k.txt 2>&1
  echo "== s13 main" >> $R/w4k.txt; timeout 60 carry/rt/lq bench kernels $K >> $R/w4k.txt 2>&1
done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
gzip $R/suites.log
