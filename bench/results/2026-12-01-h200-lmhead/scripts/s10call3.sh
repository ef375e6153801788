#!/usr/bin/env bash
# session 10 call 3: carry/sr = branch w4s-search-m2 (the cost search for every small-M plan at M >= 2):
# every GPU suite, then lq bench kernels M = 1..8 against carry/lh (= main's kernels), alternating x2,
# then W4 decode batch 1 / 4 / 8 with --lm-head, lh then sr then lh then sr
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/lh.tar.xz -C carry && tar xJf carry/sr.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/sr/lq
R=/tmp/r6; mkdir -p $R
t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/sr/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 3 $R/suites.log; grep -hE "FAILED|mismatch at|error:" $R/suites.log | head -20
for r in 1 2; do for b in lh sr; do
  timeout 60 carry/$b/lq bench kernels --w4a16 --shapes llama3 --m 1,2,3,4,5,6,7,8 --iters 20 --out $R/k_${b}_$r.json > $R/k_${b}_$r.txt 2>&1
done; done
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4,8 --ctx 512 --steps 4 --lm-head"
for r in 1 2; do for b in lh sr; do
  timeout 120 carry/$b/lq bench model $MM --out $R/m_${b}_$r.json > $R/m_${b}_$r.txt 2>&1
  echo "== $b $r" >> $R/model.txt; grep -hE "decode" $R/m_${b}_$r.txt >> $R/model.txt
done; done
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt $R/model.txt
tar czf $OUT/r6.tgz -C /tmp r6
