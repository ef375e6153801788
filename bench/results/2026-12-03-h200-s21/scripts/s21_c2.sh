#!/usr/bin/env bash
# Session 21, call 2: where the wgmma kernel's warps wait (ncu warp-state and per-instruction stall
# sampling, clocks not locked) at qkv M = 64 (64-row x tiles, 4 warpgroups) and M = 512 (256-row tiles), and
# the small-M kernel at qkv M = 1; main's build (w4f = 8156cf1). First the deferred refills (w4e,
# LQ_W4A16_WGMMA_DEFER=1 vs 0): test_w4a16_gpu, kernels M = 16..1024, two rounds alternating.
# carry ["carry/libs.tar.xz","carry/shared","carry/w4f.tar.xz","carry/w4e.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/w4f.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
B=carry/w4f; R=$OUT
tar xJf carry/w4e.tar.xz -C carry
LQ_REQUIRE_GPU=1 timeout 150 carry/w4e/test_w4a16_gpu > $R/w4e_gpu.log 2>&1; echo "rc=$?" >> $R/w4e_gpu.log; tail -3 $R/w4e_gpu.log
K="--w4a16 --m 16,64,128,256,512,1024 --shapes llama3 --iters 20"
for r in 1 2; do for v in 0 1; do echo "== r$r DEFER=$v" >> $R/defer.txt
  LQ_W4A16_WGMMA_DEFER=$v timeout 100 carry/w4e/lq bench kernels $K >> $R/defer.txt 2>&1; done; done
grep -c "^qkv" $R/defer.txt
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu); $NCU --version | tail -1
S="--section LaunchStats --section Occupancy --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section SourceCounters"
run() { # name kernel-regex M
  timeout 150 $NCU --clock-control none $S -k regex:$2 --launch-skip 2 --launch-count 1 -o $R/$1 -f \
    $B/lq bench kernels --w4a16 --m $3 --shapes llama3 --iters 3 --timing events > $R/$1.log 2>&1
  $NCU -i $R/$1.ncu-rep --print-details all > $R/$1.txt 2>&1
  $NCU -i $R/$1.ncu-rep --page source --csv --print-source sass > $R/$1_sass.csv 2>$R/$1_sass.err
  ls -la $R/$1*; head -c 300 $R/$1_sass.err
}
run wg64 w4a16_wgmma_kernel 64
run wg512 w4a16_wgmma_kernel 512
run sm1 w4a16_small_m_kernel 1
for f in $R/*.ncu-rep; do gzip $f; done
grep -E "Duration|Registers|Warp Cycles Per Issued|Issued Ipc|No Eligible|Active Warps" $R/wg64.txt $R/wg512.txt $R/sm1.txt | head -40
