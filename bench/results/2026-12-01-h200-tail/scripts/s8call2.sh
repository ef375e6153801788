#!/usr/bin/env bash
# session 8 call 2: branch wgmma-tail + the occupancy rule (carry/tl2): every GPU suite, kernel A/B, model prefill
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/tl2.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
R=/tmp/r2; mkdir -p $R; T=carry/tl2
t0=$(date +%s)
for b in $T/test_*; do
  ( LQ_REQUIRE_GPU=1 timeout 480 ./tests/run_tests.sh $b > $R/suite_$(basename $b).log 2>&1; echo "rc=$? $(( $(date +%s) - t0 )) s" >> $R/suite_$(basename $b).log ) &
done
wait
for f in $R/suite_*.log; do echo "$f: $(tail -n 3 $f | tr '\n' ' ')"; done
grep -hE "FAILED|mismatch at|error:" $R/suite_*.log | head -20
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
i=0
for e in "WGMMA_CLUSTER=1" "WGMMA_CLUSTER=0 LQ_W4A16_SMALL_CLUSTER=0"; do
  i=$((i+1))
  env LQ_W4A16_$e timeout 100 $T/lq bench kernels --w4a16 --shapes llama3 --m 1,4,16,64,256,512,1024,4096 --iters 20 --out $R/k$i.json > $R/k$i.txt 2>&1
done
M="--preset llama3-8b --device cuda --prompt 512,2048 --ctx 512 --steps 4"
timeout 100 $T/lq bench model $M --batch 1 --out $R/m_f16.json > $R/m_f16.txt 2>&1
timeout 100 $T/lq bench model $M --rtn 4 --group 128 --batch 1,4 --out $R/m_w4.json > $R/m_w4.txt 2>&1
LQ_W4A16_WGMMA_CLUSTER=0 LQ_W4A16_SMALL_CLUSTER=0 timeout 100 $T/lq bench model $M --rtn 4 --group 128 --batch 1,4 --out $R/m_w4_off.json > $R/m_w4_off.txt 2>&1
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt
grep -hE "prefill|decode" $R/m_*.txt
tar czf $OUT/r2.tgz -C /tmp r2
