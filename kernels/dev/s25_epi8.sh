#!/usr/bin/env bash
# Prepared in session 24, not run (no device time left): kernels/dev/w4_epi8.patch (the small-M epilogue's sum
# over the S warps' partials with eight shared-memory loads in flight before their adds; the same adds in the
# same order, so the same bits) against main. Build both here: w4e = main + the patch (lq, the GPU test binaries,
# build/dev/bench_w4_trace), w4o = main (lq); pack them as carry/w4e.tar.xz holding folders w4e and w4o (stripped),
# with carry/libs.tar.xz and carry/shared as in bench/results/2026-12-04-h200-s24/scripts. On the device:
#   bash kernels/dev/s25_epi8.sh   (results under $OUT)
# carry ["carry/libs.tar.xz","carry/shared","carry/w4e.tar.xz"]
. kernels/dev/dev_env.sh w4e
gpu_suites w4e
K="--w4a16 --w4-paths small --shapes llama3 --iters 40 --m 1,4,8"
for r in 1 2; do for v in e o; do
  echo "== r$r w4$v" >> $R/ab.txt; timeout 40 carry/w4$v/lq bench kernels $K 2>&1 | grep -E "^(qkv|o|gate_up|down) " >> $R/ab.txt; done; done
grep -E "^==|^(qkv|o|gate_up|down) .* 1 \|" $R/ab.txt | cut -c1-80; elapsed
timeout 40 carry/w4e/bench_w4_trace 6144x4096x1 4096x4096x1 28672x4096x1 4096x14336x1 > $R/trace_clk.txt 2>&1
grep -E "inside" $R/trace_clk.txt | cut -c1-250; elapsed
M="--preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1 --ctx 512 --steps 16 --reps 3"
for v in e o; do echo "== w4$v" >> $R/model.txt; timeout 60 carry/w4$v/lq bench model $M >> $R/model.txt 2>&1; done
grep -E "^==|decode" $R/model.txt; elapsed
gzip $R/gputests.log
