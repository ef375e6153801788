#!/usr/bin/env bash
# session 8 call 3: wgmma-tail 01325a4 (carry/tl3): benchmarks first (GPU alone), then every GPU suite
# (test_w4a16_gpu one process per test, all suites side by side)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/tl3.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r3; mkdir -p $R; T=carry/tl3
t0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $R/info.txt
timeout 60 $T/lq bench kernels --w4a16 --shapes llama3 --m 1,4,16,64,256,512,1024,4096 --iters 20 --out $R/kernels.json > $R/kernels.txt 2>&1
M="--preset llama3-8b --device cuda --prompt 512,2048 --ctx 512 --steps 4"
timeout 90 $T/lq bench model $M --batch 1 --out $R/m_f16.json > $R/m_f16.txt 2>&1
timeout 90 $T/lq bench model $M --rtn 4 --group 128 --batch 1,4 --out $R/m_w4.json > $R/m_w4.txt 2>&1
echo "bench $(( $(date +%s) - t0 )) s" >> $R/times.txt
for b in $T/test_attention_fa_gpu $T/test_gptq_gpu $T/test_kernels $T/test_model_gpu; do
  ( LQ_REQUIRE_GPU=1 timeout 380 ./tests/run_tests.sh $b > $R/suite_$(basename $b).log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $R/suite_$(basename $b).log ) &
done
for t in fused_small_m small_m small_m_args small_m_workspace fused_larger_m dequant_cublas_path wgmma wgmma_cluster_sum swiglu dequant_bit_exact stacked_parts workspace_checked; do
  ( LQ_REQUIRE_GPU=1 LQ_TEST_FILTER=test_w4a16_gpu_$t timeout 380 ./tests/run_tests.sh $T/test_w4a16_gpu > $R/w4_$t.log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $R/w4_$t.log ) &
done
wait
for f in $R/suite_*.log $R/w4_*.log; do echo "$(basename $f): $(tail -n 2 $f | tr '\n' ' ')"; done
grep -hE "FAILED|mismatch at|error:" $R/suite_*.log $R/w4_*.log | head -20
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt
grep -hE "prefill|decode" $R/m_*.txt
tar czf $OUT/r3.tgz -C /tmp r3
