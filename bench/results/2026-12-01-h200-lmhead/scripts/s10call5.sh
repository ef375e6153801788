#!/usr/bin/env bash
# session 10 call 5: carry/sw = branch w4s-swiglu (the SwiGLU in the small-M epilogue at M <= 4):
# every GPU suite, then W4 decode batch 1 / 4 (fp16 head), sr (= main) then sw, twice
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/sr.tar.xz -C carry && tar xJf carry/sw.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/sw/lq
R=/tmp/r8; mkdir -p $R
t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 300 ./tests/run_tests.sh carry/sw/test_* > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
echo "tests $(( $(date +%s) - t0 )) s" >> $R/times.txt
tail -n 3 $R/suites.log; grep -hE "FAILED|mismatch at|error:" $R/suites.log | head -20; grep -h "swiglu M=" $R/suites.log | tail -6
MM="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4 --ctx 512 --steps 4"
for r in 1 2; do for b in sr sw; do
  timeout 100 carry/$b/lq bench model $MM --out $R/m_${b}_$r.json > $R/m_${b}_$r.txt 2>&1
  echo "== $b $r" >> $R/model.txt; grep -hE "decode" $R/m_${b}_$r.txt >> $R/model.txt
done; done
echo "all $(( $(date +%s) - t0 )) s" >> $R/times.txt
cat $R/times.txt $R/model.txt
tar czf $OUT/r8.tgz -C /tmp r8
