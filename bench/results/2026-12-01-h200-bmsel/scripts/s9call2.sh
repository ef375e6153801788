#!/usr/bin/env bash
# session 9 call 2: main (carry/bin 2bff96b; its small-M kernel = main 4ab425c's): the small-M plan (B row blocks
# per block, S warps along K) forced by LQ_W4S_PLAN at M = 1 and 4, three rounds in rotating order (run-to-run noise)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/bin.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r2; mkdir -p $R
t0=$(date +%s)
P="default 1,2 2,2 4,2 8,2 16,2 1,4 2,4 4,4 8,4 1,8 2,8 4,8 1,16 2,16 1,32"
for r in 1 2 3; do
  for p in $P; do
    if [ $p = default ]; then e=""; else e="LQ_W4S_PLAN=$p"; fi
    env $e timeout 40 carry/bin/lq bench kernels --w4a16 --shapes llama3 --m 1,4 --iters 20 2>&1 | grep -E "^(qkv|o |gate|down)" | sed "s/^/r$r $p /" >> $R/plan.txt
  done
  P="$(echo $P | awk '{for(i=2;i<=NF;i++) printf "%s ", $i; print $1}')"
done
echo "plan $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt
tar czf $OUT/r2.tgz -C /tmp r2
