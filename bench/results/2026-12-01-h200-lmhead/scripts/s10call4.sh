#!/usr/bin/env bash
# session 10 call 4: where the W4 decode step's time goes (carry/sr = main 872ce6d's kernels): per-kernel
# durations of decode steps of llama3-8b --layers 4 (4-bit layers and head, batch 1, ctx 512), nsys
# (real timeline, PDL overlap kept) when the machine has it, else ncu (kernels serialized)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/sr.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r7; mkdir -p $R
t0=$(date +%s)
export PATH=$PATH:/usr/local/cuda/bin
(which nsys ncu; ls -d /opt/nvidia/nsight-systems* /usr/local/cuda/nsight-systems* 2>/dev/null) > $R/tools.txt 2>&1
NSYS=$(which nsys 2>/dev/null || ls /opt/nvidia/nsight-systems*/bin/nsys /usr/local/cuda/nsight-systems*/bin/nsys 2>/dev/null | head -1)
MM="--preset llama3-8b --layers 4 --device cuda --rtn 4 --group 128 --lm-head --prompt 512 --batch 1 --ctx 512 --steps 16"
timeout 60 carry/sr/lq bench model $MM > $R/plain.txt 2>&1
if [ -n "$NSYS" ]; then
  timeout 200 $NSYS profile --cuda-graph-trace=node -t cuda -o $R/p -f true carry/sr/lq bench model $MM > $R/nsys.txt 2>&1
  timeout 120 $NSYS stats -r cuda_gpu_trace -f csv -o $R/trace $R/p.nsys-rep >> $R/nsys.txt 2>&1
  timeout 60 $NSYS stats -r cuda_gpu_kern_sum $R/p.nsys-rep > $R/kern_sum.txt 2>&1
  rm -f $R/p.sqlite
fi
if [ ! -s $R/trace_cuda_gpu_trace.csv ] && which ncu >/dev/null 2>&1; then
  timeout 300 ncu --graph-profiling node --metrics gpu__time_duration.sum --csv carry/sr/lq bench model $MM > $R/ncu.csv 2> $R/ncu.err
fi
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/tools.txt $R/times.txt; tail -3 $R/plain.txt; tail -5 $R/nsys.txt 2>/dev/null; head -30 $R/kern_sum.txt 2>/dev/null
rm -f $R/p.nsys-rep
tar czf $OUT/r7.tgz -C /tmp r7
