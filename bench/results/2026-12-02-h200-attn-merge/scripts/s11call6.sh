#!/usr/bin/env bash
# session 11 call 6: carry/a6 = main after the test_model_gpu refactor (one decode-vs-prefill helper):
# test_model_gpu + test_kernels; lq eval of stories260K RTN-4 against its base with fp16 and with fp32
# compute (the KLD of the same quantization measured against both baselines)
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/a6.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/a6/lq
R=/tmp/r6; mkdir -p $R; t0=$(date +%s)
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=2 timeout 150 ./tests/run_tests.sh carry/a6/test_model_gpu carry/a6/test_kernels > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log; grep -hE "FAILED|mismatch|error:" $R/suites.log | head; grep -h "decode (graph) vs prefill" $R/suites.log
S=carry/shared/models/stories260K; X=carry/shared/datasets/tinystories/sample.txt
timeout 60 carry/a6/lq quantize $S /tmp/s4.lqq --method rtn --bits 4 --group 32 --sym > $R/quantize.txt 2>&1
for c in "" "--compute f32"; do echo "== eval $c" >> $R/eval.txt
  timeout 60 carry/a6/lq eval $S /tmp/s4.lqq $X --ctx 128 --device cuda $c --json >> $R/eval.txt 2>&1; done
echo "all $(( $(date +%s) - t0 )) s"; grep -E "^==|kld|ppl" $R/eval.txt | cut -c1-400
tar czf $OUT/r6.tgz -C /tmp r6
