#!/usr/bin/env bash
# Session 13, call 2: the decode attention's splits merged in thread-block clusters (dm_cluster_merge; on by
# default, LQ_DECODE_CLUSTER=0 = the workspace and the last block's merge, same bits). Every GPU suite (the
# cluster helpers moved from w4a16_cuda.cu to cuda_common.cuh), the phase trace and the sweep under both,
# the W4 and fp16 decode. carry/cl.tar.xz (not in git): build/lq, every build/tests/test_*_gpu and
# test_kernels, build/dev/bench_attn_trace of this tree.
# run: bash kernels/dev/s13_cluster.sh   carry ["carry/libs.tar.xz","carry/shared","carry/cl.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/cl.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/cl/lq
R=/tmp/rcl; mkdir -p $R
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/cl/test_* ) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 3 $R/suites.log; grep -E "clusters of|workspace [0-9]" $R/suites.log | sort | uniq | head -12
for cfg in "X=1" "LQ_DECODE_CLUSTER=0"; do
  n=$(echo "$cfg" | tr -cd 'A-Z0-9=' | tr '=' '_')
  env $cfg timeout 60 carry/cl/bench_attn_trace 1x1024 1x8192 1x16384 1x32768 8x8192 > $R/trace_$n.txt 2>&1
  echo "[$cfg]"; grep -E "x |us from|period" $R/trace_$n.txt
done
A="--attn 1x1024,1x4096,1x8192,1x16384,1x32768,8x8192,8x32768,16x8192 --shapes none --iters 50"
for r in 1 2; do
  echo "== cluster" >> $R/attn.txt; timeout 60 carry/cl/lq bench kernels $A >> $R/attn.txt 2>&1
  echo "== LQ_DECODE_CLUSTER=0" >> $R/attn.txt; LQ_DECODE_CLUSTER=0 timeout 60 carry/cl/lq bench kernels $A >> $R/attn.txt 2>&1
done
grep -E "^==|^ +1 |^ +8 |^ +16 " $R/attn.txt | cut -c1-66
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2"
echo "== cluster" >> $R/model.txt; timeout 100 carry/cl/lq bench model $MM >> $R/model.txt 2>&1
echo "== LQ_DECODE_CLUSTER=0" >> $R/model.txt; LQ_DECODE_CLUSTER=0 timeout 100 carry/cl/lq bench model $MM >> $R/model.txt 2>&1
echo "== cluster" >> $R/model.txt; timeout 100 carry/cl/lq bench model $MM >> $R/model.txt 2>&1
echo "== fp16 cluster" >> $R/model.txt; timeout 100 carry/cl/lq bench model --preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8000 --steps 8 --reps 2 >> $R/model.txt 2>&1
grep -E "^==|decode" $R/model.txt
gzip $R/*.log; tar czf $OUT/rcl.tgz -C /tmp rcl
