#!/usr/bin/env bash
# session 8 call 1: wgmma-tail tests + kernel A/B + model prefill
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/bin.tar.xz -C carry && tar xJf carry/tl.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
O=$OUT; T=carry/tl
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $O/info.txt
t0=$(date +%s)
( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*wgmma*' timeout 200 $T/test_w4a16_gpu > $O/t_wgmma.log 2>&1; echo rc=$? >> $O/t_wgmma.log ) &
( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*cluster*' timeout 150 $T/test_w4a16_gpu > $O/t_cluster.log 2>&1; echo rc=$? >> $O/t_cluster.log ) &
( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*small*' timeout 150 $T/test_w4a16_gpu > $O/t_small.log 2>&1; echo rc=$? >> $O/t_small.log ) &
( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*swiglu*' timeout 150 $T/test_w4a16_gpu > $O/t_swiglu.log 2>&1; echo rc=$? >> $O/t_swiglu.log ) &
( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER='*w4a16*' timeout 150 $T/test_model_gpu > $O/t_model.log 2>&1; echo rc=$? >> $O/t_model.log ) &
wait
echo "tests $(( $(date +%s) - t0 )) s" >> $O/times.txt
tail -n 3 $O/t_*.log
i=0
for e in "WGMMA_CLUSTER=0 LQ_W4A16_SMALL_CLUSTER=0" "WGMMA_TAIL=0" "WGMMA_TAIL=1"; do
  i=$((i+1))
  env LQ_W4A16_$e timeout 120 $T/lq bench kernels --w4a16 --shapes llama3 --m 4,16,64,256,512,1024,4096 --iters 20 --out $O/k$i.json > $O/k$i.txt 2>&1
  echo "k$i $(( $(date +%s) - t0 )) s" >> $O/times.txt
done
M="--preset llama3-8b --device cuda --prompt 512,2048 --batch 1 --ctx 512 --steps 4"
timeout 100 $T/lq bench model $M --out $O/m_f16.json > $O/m_f16.txt 2>&1
i=0
for e in "WGMMA_CLUSTER=0 LQ_W4A16_SMALL_CLUSTER=0" "WGMMA_TAIL=0" "WGMMA_TAIL=1"; do
  i=$((i+1))
  env LQ_W4A16_$e timeout 100 $T/lq bench model $M --rtn 4 --group 128 --out $O/m_w4_$i.json > $O/m_w4_$i.txt 2>&1
  echo "m$i $(( $(date +%s) - t0 )) s" >> $O/times.txt
done
cat $O/times.txt
grep -hE "prefill|decode" $O/m_*.txt | head -40
