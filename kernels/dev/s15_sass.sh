#!/usr/bin/env bash
# Session 15, call 3: the SASS of the small-M kernels of main (m15/lq) and of 482e310 (fz/lq) for the M = 4
# codegen question (this machine has no cuobjdump / nvdisasm), and the small-M phase trace of o / qkv / down at
# M = 1 under other plans (LQ_W4S_PLAN; the trace binary is w4-pre's, run with LQ_W4S_PRE=0 = main's kernel).
# run: bash kernels/dev/s15_sass.sh  carry ["carry/libs.tar.xz","carry/m15.tar.xz","carry/fz.tar.xz","carry/pre.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && for x in m15 fz pre; do tar xJf carry/$x.tar.xz -C carry; done
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib OMP_WAIT_POLICY=passive
R=$OUT
export PATH=$PATH:/usr/local/cuda/bin
ls /usr/local/cuda/bin > $R/cudabin.txt
for x in m15 fz; do
  cuobjdump -sass carry/$x/lq > /tmp/$x.sass 2>&1; echo "$x: $(wc -l < /tmp/$x.sass) lines"
  awk '/Function : /{p = ($0 ~ /small_m_kernel|attn_decode/)} p' /tmp/$x.sass | gzip > $R/$x.small.sass.gz
done
cuobjdump -res-usage carry/m15/lq 2>&1 | grep -A1 "small_m_kernel\|attn_decode" | gzip > $R/m15.res.txt.gz
for plan in "" 1,8 2,8 1,4 4,4; do
  echo "[LQ_W4S_PLAN=$plan]" >> $R/trace_plans.txt
  LQ_W4S_PLAN=$plan LQ_W4S_PRE=0 timeout 60 carry/pre/bench_w4_trace qkv:1 o:1 down:1 >> $R/trace_plans.txt 2>&1
done
grep -E "^\[|M=|period" $R/trace_plans.txt | cut -c1-150
