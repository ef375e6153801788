#!/usr/bin/env bash
# session 10 call 2: small-M plan sweep at M = 1..8 (LQ_W4S_PLAN knob, carry/lh = main 4cdb591's kernels),
# the candidates of the cost-model search (3,8,1 qkv; 14,2,1 gate_up; 16,2,8 down) against the defaults, 2 rounds
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/lh.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r5; mkdir -p $R
t0=$(date +%s)
for r in 1 2; do
  for p in default 3,8,1 4,8,1 2,8,1 6,8,1 3,4,1 6,4,1 14,2,1 8,2,1 12,2,1 7,4,1 16,2,8 16,2,4 2,16,1 1,16,1 3,8,2; do
    if [ $p = default ]; then e=""; else e="LQ_W4S_PLAN=$p"; fi
    env $e timeout 60 carry/lh/lq bench kernels --w4a16 --shapes llama3 --m 1,2,3,4,5,6,7,8 --iters 20 > $R/k_${p}_$r.txt 2>&1
    grep -E "^(qkv|o |gate_up|down)" $R/k_${p}_$r.txt | sed "s/^/$p $r /" >> $R/sweep.txt
  done
done
echo "sweep $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt
tar czf $OUT/r5.tgz -C /tmp r5
