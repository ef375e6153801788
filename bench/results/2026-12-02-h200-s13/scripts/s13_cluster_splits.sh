#!/usr/bin/env bash
# Session 13, call 3: clusters of 16 did not all fit at once on call 2's H200 (batch 1 stayed on the
# workspace route). How many clusters of n fit (the trace tool prints it), and batch 1 with fewer splits
# (LQ_DECODE_SPLITS_MAX) in clusters vs the workspace route. Also test_kernels again (call 2's cluster test
# compared two runs on different random inputs: fixed). carry/cl.tar.xz as s13_cluster.sh (rebuilt).
# run: bash kernels/dev/s13_cluster_splits.sh   carry ["carry/libs.tar.xz","carry/shared","carry/cl.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/cl.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/cl/lq
R=/tmp/rcs; mkdir -p $R
LQ_REQUIRE_GPU=1 timeout 150 ./tests/run_tests.sh carry/cl/test_kernels > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 3 $R/suites.log; grep -E "clusters of|workspace [0-9]" $R/suites.log | sort | uniq | head -12
for sp in 16 14 12 8; do for c in 1 0; do
  echo "[splits<=$sp cluster=$c]"
  LQ_DECODE_SPLITS_MAX=$sp LQ_DECODE_CLUSTER=$c timeout 60 carry/cl/bench_attn_trace 1x8192 1x16384 > $R/trace_${sp}_$c.txt 2>&1
  grep -E "^#|x |us from|period" $R/trace_${sp}_$c.txt | grep -v "^# NVIDIA" | head -7
  echo "== splits<=$sp cluster=$c" >> $R/attn.txt
  LQ_DECODE_SPLITS_MAX=$sp LQ_DECODE_CLUSTER=$c timeout 60 carry/cl/lq bench kernels --attn 1x4096,1x8192,1x16384,1x32768 --shapes none --iters 50 >> $R/attn.txt 2>&1
done; done
grep -E "^==|^ +1 " $R/attn.txt | cut -c1-66
gzip $R/*.log; tar czf $OUT/rcs.tgz -C /tmp rcs
