#!/usr/bin/env bash
# Prepared in session 25, not run (the lent H200 stopped answering at the first call; no other was lent):
# kernels/dev/s25_epi8.sh (epi8 A/B), then the wgmma kernel's phases at large M (main's code, w4e's trace tool).
# carry ["carry/libs.tar.xz","carry/shared","carry/w4e.tar.xz"]
set -u
bash kernels/dev/s25_epi8.sh
. kernels/dev/dev_env.sh w4e
timeout 150 carry/w4e/bench_w4_trace 6144x4096x512 4096x4096x512 28672x4096x512 4096x14336x512 \
  6144x4096x1024 4096x4096x2048 28672x4096x2048 4096x14336x2048 6144x4096x4096 28672x4096x4096 > $OUT/trace_big.txt 2>&1
grep -E "^shape|inside" $OUT/trace_big.txt | cut -c1-260; elapsed
