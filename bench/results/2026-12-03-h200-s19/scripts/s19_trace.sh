#!/usr/bin/env bash
# Session 19, call 4: the wgmma kernel's phase trace (kernels/dev/bench_w4_trace.cu, make dev-w4-trace) on the
# committed kernels: the llama3 products at M = 16 / 64 / 256 / 1024; then qkv / o / down at M = 64 with 2
# warpgroups, with the slices through the workspace instead of the cluster, and with 128-row x tiles.
# run: bash bench/results/2026-12-03-h200-s19/scripts/s19_trace.sh  carry ["carry/libs.tar.xz","carry/w4t.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4t.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib
R=$OUT; T=carry/w4t/bench_w4_trace
timeout 200 $T > $R/trace.txt 2>&1; echo "rc=$?" >> $R/trace.txt
for v in "LQ_W4A16_WGMMA_WGS=2" "LQ_W4A16_WGMMA_CLUSTER=0" "LQ_W4A16_WGMMA_BM=128"; do
  echo "== [$v]" >> $R/trace_ab.txt
  env $v timeout 60 $T 6144x4096x64 4096x4096x64 4096x14336x64 >> $R/trace_ab.txt 2>&1
done
cat $R/trace.txt $R/trace_ab.txt
