#!/usr/bin/env bash
# device_run.sh — one call on a lent GPU machine that has no -dev packages:
# unpack the runtime libraries carried in carry/libs.tar.xz (libarchive,
# cmocka and friends; appended after the system's own), point LQ_SHARED at
# carry/shared (../shared does not travel), then run the steps named in
# STEPS (space-separated):
#   info      nvidia-smi and clocks
#   tests     every carry/bin/test_* binary under LQ_REQUIRE_GPU=1 (make test-gpu's recipe)
#   kernels   lq bench kernels --w4a16 on the Llama-3-8B shapes (sym g128, then asym g128 at M=1,16,64)
#   model     lq bench model on the llama3-8b preset: fp16, then RTN W4A16 g128
#   smol      SmolLM2-135M W4A16 on WikiText-2, if carry/smol holds the model
# Logs and JSON go to OUTDIR (default $OUT). Prepare the carry folder here with
#   make -j2 && make -j2 $(ls tests/test_*_gpu.c tests/test_kernels.c | sed 's/\.c$//;s/^/build\//')
#   mkdir -p carry/bin && cp build/lq build/tests/test_*_gpu build/tests/test_kernels carry/bin/ && strip carry/bin/*
#   tar cJf carry/bin.tar.xz -C carry bin && rm -r carry/bin      # 38 MB -> 1.4 MB
set -u
OUTD=${1:-${OUT:-bench/results/last}}
mkdir -p "$OUTD"
exec > >(tee "$OUTD/device_run.log") 2>&1
t0=$(date +%s)
say() { printf '\n=== %s (%ss)\n' "$*" $(( $(date +%s) - t0 )); }
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc
[ -f carry/bin.tar.xz ] && tar xJf carry/bin.tar.xz -C carry
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64:/tmp/lqc/lqlib
export LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
LQ=carry/bin/lq
export LQ_BIN=$PWD/carry/bin/lq
for s in ${STEPS:-info tests kernels}; do
  case $s in
  info) say info; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv ;;
  tests) say tests; LQ_REQUIRE_GPU=1 ./tests/run_tests.sh carry/bin/test_* > "$OUTD/tests.log" 2>&1; grep -E "FAILED|error:|mismatch at|passed,|W4A16|engine:" "$OUTD/tests.log" | head -40 ;;
  kernels) say kernels
    $LQ bench kernels --w4a16 --shapes llama3 --iters 40 --out "$OUTD/kernels_w4a16_sym_g128.json" 2>&1 | tee "$OUTD/kernels.txt"
    $LQ bench kernels --w4a16 --asym --shapes llama3 --m 1,16,64 --iters 40 --out "$OUTD/kernels_w4a16_asym_g128.json" 2>&1 | tee -a "$OUTD/kernels.txt" ;;
  model) say model
    $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1,8,32 --ctx 512 --out "$OUTD/model_f16.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$OUTD/model.txt"
    $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 --batch 1,8,32 --ctx 512 --out "$OUTD/model_w4.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee -a "$OUTD/model.txt" ;;
  *) echo "unknown step $s" ;;
  esac
done
say done
