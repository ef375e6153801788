#!/usr/bin/env bash
# Session 21, call 3: call 2's ncu runs of the wgmma kernel again (their files did not come back: too many):
# qkv M = 64 and M = 512, warp states and per-instruction stall samples; main's build (w4f).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4f.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4f.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
B=carry/w4f; R=$OUT; T=/tmp/ncu; mkdir -p $T
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
S="--section LaunchStats --section Occupancy --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section SourceCounters"
for c in "wg64 64" "wg512 512"; do set -- $c
  timeout 150 $NCU --clock-control none $S -k regex:w4a16_wgmma_kernel --launch-skip 2 --launch-count 1 -o $T/$1 -f \
    $B/lq bench kernels --w4a16 --m $2 --shapes llama3 --iters 3 --timing events > $T/$1.log 2>&1
  $NCU -i $T/$1.ncu-rep --print-details all > $R/$1.txt 2>&1
  $NCU -i $T/$1.ncu-rep --page source --csv --print-source sass | gzip > $R/$1_sass.csv.gz
done
ls -la $R
