#!/usr/bin/env bash
# Session 22, call 4: sweeps with w4l (main after call 3) on the wgmma path, all shapes: M = 1280..2048 over the
# x tile / warpgroups (LQ_W4A16_WGMMA_BM, _WGS), and M = 16..32 over the 16- / 32-row tiles' blocks per SM and
# K slices (LQ_W4A16_WGMMA_BPS, _KS); the default in each.
# carry ["carry/libs.tar.xz","carry/w4l.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4l.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4l; R=$OUT
run() { local tag=$1 ms=$2; shift 2
  echo "== $tag" >> $R/sweep.txt
  env "$@" timeout 90 $B/lq bench kernels --w4-paths wgmma --shapes all --iters 10 --m $ms 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/sweep.txt; }
T0=$(date +%s)
for r in 1 2; do
  run "r$r default" 1280,1536,2048
  run "r$r bm=256 wgs=2" 1280,1536,2048 LQ_W4A16_WGMMA_BM=256
  run "r$r bm=128 wgs=3" 1280,1536,2048 LQ_W4A16_WGMMA_BM=128 LQ_W4A16_WGMMA_WGS=3
  run "r$r bm=128 wgs=4" 1280,1536,2048 LQ_W4A16_WGMMA_BM=128 LQ_W4A16_WGMMA_WGS=4
done
echo "t=$(( $(date +%s) - T0 ))" >> $R/sweep.txt
run "default" 12,16,24,32
for ks in 0 1 2 4 8; do for bps in 1 2; do
  run "bm=16 bps=$bps ks=$ks" 12,16 LQ_W4A16_WGMMA_BM=16 LQ_W4A16_WGMMA_BPS=$bps LQ_W4A16_WGMMA_KS=$ks
  run "bm=32 bps=$bps ks=$ks" 24,32 LQ_W4A16_WGMMA_BM=32 LQ_W4A16_WGMMA_BPS=$bps LQ_W4A16_WGMMA_KS=$ks
done; done
echo "t=$(( $(date +%s) - T0 ))" >> $R/sweep.txt
grep "^t=" $R/sweep.txt
