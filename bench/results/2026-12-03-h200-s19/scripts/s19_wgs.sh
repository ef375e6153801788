#!/usr/bin/env bash
# Session 19, call 1: the wgmma kernel's 64- / 128-row x tiles in 4 warpgroups of one m64 tile each
# (LQ_W4A16_WGMMA_WGS=4: 512 threads, 128 registers, the same tile / stages / copies) against 2 of two.
# 1. test_w4a16_gpu (every case; the wgmma ones run WGS=4 too). 2. W4A16 kernels, llama3 shapes, M = 48..320
# (64- / 128-row tiles), default vs WGS=4, two rounds. 3. M = 384..4096: 256-row tiles (default) vs
# BM=128 + WGS=4, two rounds.
# carry/w4g.tar.xz: build/lq + every build/tests/test_*_gpu + test_kernels, stripped, in w4g/.
# run: bash bench/results/2026-12-03-h200-s19/scripts/s19_wgs.sh  carry ["carry/libs.tar.xz","carry/shared","carry/w4g.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4g.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/w4g/lq
B=carry/w4g; R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 timeout 200 $B/test_w4a16_gpu > $R/w4tests.log 2>&1; echo "rc=$?" >> $R/w4tests.log
grep -E "PASSED|FAILED|rc=|NOT" $R/w4tests.log | head -12
K="--w4a16 --m 48,64,96,128,320 --shapes llama3 --iters 30"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_WGS=4"; do
  echo "== [$v]" >> $R/w4k_mid.txt; env $v timeout 100 $B/lq bench kernels $K >> $R/w4k_mid.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k_mid.txt | cut -c1-28,30-40,62-140
K="--w4a16 --m 256,384,512,1024,2048,4096 --shapes llama3 --iters 20"
for r in 1 2; do for v in "" "LQ_W4A16_WGMMA_BM=128 LQ_W4A16_WGMMA_WGS=4"; do
  echo "== [$v]" >> $R/w4k_big.txt; env $v timeout 120 $B/lq bench kernels $K >> $R/w4k_big.txt 2>&1
done; done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k_big.txt | cut -c1-28,30-40,62-140
gzip $R/w4tests.log
