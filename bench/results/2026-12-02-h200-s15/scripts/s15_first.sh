#!/usr/bin/env bash
# For the next session's first device call (written in session 14, not yet run).
# 1. Every GPU suite on main as it stands (session 14's last full run was on a build with the fusion experiment;
#    main's kernels = session 13's + the acq_rel split count, tested in calls 1-2).
# 2. The long-cache kernel in a whole model: W4 llama3-8b decode b1 with a 16384-position preset
#    (lq bench model --max-pos), ctx 8000 and 16000, the register-stage kernel on (auto: capacity >= 12288)
#    vs LQ_DECODE_REGTILE=0, alternating, two rounds; fp16 once each.
# 3. The M = 4 codegen question (kernels/dev/w4a16_notes.md, "Session 14"): W4A16 kernels M = 1, 2, 4 of main
#    vs the w4-norm-fuse build of 482e310 (fz/lq; its plain kernels ran gate_up M = 4 in 19.6 us vs 22.6), two
#    rounds; if the gap repeats, find its cause in the kernel's code, not in the timing.
# carry/m15.tar.xz: main's build/lq + every build/tests/test_*_gpu + test_kernels (m15/); carry/fz.tar.xz: fz/lq
# (branch w4-norm-fuse at 482e310). Both git-ignored: rebuild if missing (see the summary's recipe).
# run: bash kernels/dev/s15_first.sh  carry ["carry/libs.tar.xz","carry/shared","carry/m15.tar.xz","carry/fz.tar.xz"]
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/m15.tar.xz -C carry && tar xJf carry/fz.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive LQ_BIN=$PWD/carry/m15/lq
R=$OUT
nvidia-smi -q -d CLOCK > $R/clocks.txt 2>&1
LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/m15/test_*) > $R/suites.log 2>&1; echo "rc=$?" >> $R/suites.log
tail -n 2 $R/suites.log
MM="--preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 8000,16000 --max-pos 16384 --steps 8 --reps 2"
for r in 1 2; do
  echo "== w4 RT auto" >> $R/model.txt; timeout 120 carry/m15/lq bench model $MM --rtn 4 --group 128 >> $R/model.txt 2>&1
  echo "== w4 LQ_DECODE_REGTILE=0" >> $R/model.txt; LQ_DECODE_REGTILE=0 timeout 120 carry/m15/lq bench model $MM --rtn 4 --group 128 >> $R/model.txt 2>&1
done
echo "== fp16 RT auto" >> $R/model.txt; timeout 120 carry/m15/lq bench model $MM >> $R/model.txt 2>&1
echo "== fp16 LQ_DECODE_REGTILE=0" >> $R/model.txt; LQ_DECODE_REGTILE=0 timeout 120 carry/m15/lq bench model $MM >> $R/model.txt 2>&1
grep -E "^==|decode" $R/model.txt
K="--w4a16 --m 1,2,4 --shapes llama3 --iters 50"
for r in 1 2; do
  echo "== main" >> $R/w4k.txt; timeout 60 carry/m15/lq bench kernels $K >> $R/w4k.txt 2>&1
  echo "== fz 482e310" >> $R/w4k.txt; timeout 60 carry/fz/lq bench kernels $K >> $R/w4k.txt 2>&1
done
grep -E "^==|^(qkv|o |gate|down)" $R/w4k.txt | cut -c1-40,62-80
gzip $R/suites.log
