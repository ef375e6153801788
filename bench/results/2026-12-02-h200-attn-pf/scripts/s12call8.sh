#!/usr/bin/env bash
# session 12 call 8: carry/b8 = build/dev/bench_attn_trace of main (make dev-attn-trace): the decode attention's
# phase trace at the bench shapes, default, then 1 x 8k with the ring fill after the wait (LQ_DECODE_EARLY=0).
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/b8.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
R=/tmp/r8; mkdir -p $R
timeout 120 carry/b8/bench_attn_trace > $R/trace.txt 2>&1; echo "rc=$?" >> $R/trace.txt
echo "== LQ_DECODE_EARLY=0" >> $R/trace.txt
LQ_DECODE_EARLY=0 timeout 60 carry/b8/bench_attn_trace 1x8192 >> $R/trace.txt 2>&1
cat $R/trace.txt
tar czf $OUT/r8.tgz -C /tmp r8
