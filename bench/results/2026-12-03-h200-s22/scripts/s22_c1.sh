#!/usr/bin/env bash
# Session 22, call 1: the wgmma kernel's geometry swept by its A/B knobs (x tile LQ_W4A16_WGMMA_BM, warpgroups
# LQ_W4A16_WGMMA_WGS, K slices LQ_W4A16_WGMMA_KS), wgmma path only (--w4-paths wgmma), llama3 + llama2 shapes,
# M = 48..1024; the card's power / clock state before and after.
# carry ["carry/libs.tar.xz","carry/w4j.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4j.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
B=carry/w4j; R=$OUT
nvidia-smi -q -d POWER,CLOCK,PERFORMANCE > $R/smi_before.txt 2>&1
run() { # tag, m list, shapes, env...
  local tag=$1 ms=$2 sh=$3; shift 3
  echo "== $tag" >> $R/sweep.txt
  env "$@" timeout 60 $B/lq bench kernels --w4-paths wgmma --shapes $sh --iters 10 --m $ms 2>&1 | grep -E "^(qkv|o|gate_up|down|sq8192) " >> $R/sweep.txt
}
T0=$(date +%s)
for sh in llama3 llama2; do
  for ks in 0 2 3 4 6 8; do for w in 3 4; do
    run "$sh bm=nat wgs=$w ks=$ks" 48,64,96,128 $sh LQ_W4A16_WGMMA_WGS=$w LQ_W4A16_WGMMA_KS=$ks; done; done
  echo "t=$(( $(date +%s) - T0 ))" >> $R/sweep.txt
  for ks in 0 1 2 3 4; do
    for w in 3 4; do run "$sh bm=128 wgs=$w ks=$ks" 192,256,320,384,512 $sh LQ_W4A16_WGMMA_BM=128 LQ_W4A16_WGMMA_WGS=$w LQ_W4A16_WGMMA_KS=$ks; done
    run "$sh bm=256 wgs=2 ks=$ks" 192,256,320,384,512 $sh LQ_W4A16_WGMMA_BM=256 LQ_W4A16_WGMMA_KS=$ks
  done
  echo "t=$(( $(date +%s) - T0 ))" >> $R/sweep.txt
  for ks in 0 1 2; do
    for w in 3 4; do run "$sh bm=128 wgs=$w ks=$ks" 768,1024 $sh LQ_W4A16_WGMMA_BM=128 LQ_W4A16_WGMMA_WGS=$w LQ_W4A16_WGMMA_KS=$ks; done
    run "$sh bm=256 wgs=2 ks=$ks" 768,1024 $sh LQ_W4A16_WGMMA_BM=256 LQ_W4A16_WGMMA_KS=$ks
  done
  run "$sh default" 48,64,96,128,192,256,320,384,512,768,1024 $sh
  echo "t=$(( $(date +%s) - T0 ))" >> $R/sweep.txt
  [ $(( $(date +%s) - T0 )) -gt 300 ] && break
done
nvidia-smi -q -d POWER,CLOCK,PERFORMANCE > $R/smi_after.txt 2>&1
grep "^t=" $R/sweep.txt; wc -l $R/sweep.txt
grep -E "Power Limit|Graphics|SM  |Memory  |Throttle|Active|Slowdown" $R/smi_after.txt | head -30
