#!/usr/bin/env bash
# Session 19, call 2: more stages for the wgmma kernel's 64- / 128-row x tiles (12 / 8 instead of 6; build
# w4s) against call 1's build (w4g), each with 2 and 4 warpgroups (LQ_W4A16_WGMMA_WGS=4), M = 48..320, two
# rounds; test_w4a16_gpu of w4s first.
# run: bash bench/results/2026-12-03-h200-s19/scripts/s19_stages.sh  carry ["carry/libs.tar.xz","carry/shared","carry/w4g.tar.xz","carry/w4s.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4g.tar.xz -C carry && tar xJf carry/w4s.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=$OUT
LQ_REQUIRE_GPU=1 timeout 200 carry/w4s/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT" $R/w4tests.log | head -12
K="--w4a16 --m 48,64,96,128,320 --shapes llama3 --iters 30"
for r in 1 2; do for b in w4g w4s; do for v in "" "LQ_W4A16_WGMMA_WGS=4"; do
  echo "== $b [$v]" >> $R/w4k.txt; env $v LQ_BIN=$PWD/carry/$b/lq timeout 100 carry/$b/lq bench kernels $K >> $R/w4k.txt 2>&1
done; done; done
gzip $R/w4tests.log
