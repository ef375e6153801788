#!/usr/bin/env bash
# One lent-GPU call for the small-M W4A16 kernel (path 3): its GPU tests, the
# kernel sweep with the small/fused/dequant columns, the W4 model at batch 1/4.
# Usage there: timeout 380 bench/device_call_small_m.sh $OUT
set -u
O=${1:-$OUT}; R=$(mktemp -d /tmp/lq_small.XXXXXX)
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc && tar xJf carry/bin.tar.xz -C carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared LQ_BIN=$PWD/carry/bin/lq OMP_WAIT_POLICY=passive
pack() { tar czf "$O/results.tgz" -C "$R" .; }
LQ_REQUIRE_GPU=1 ./tests/run_tests.sh carry/bin/test_w4a16_gpu carry/bin/test_model_gpu > "$R/tests.log" 2>&1
grep -E "FAILED|ERROR|LINE|passed,|engine:|small" "$R/tests.log" | head -30; pack
carry/bin/lq bench kernels --w4a16 --shapes llama3 --m 1,2,4,16,64 --iters 30 --out "$R/kernels_w4a16_small.json" 2>&1 | tee "$R/kernels.txt"; pack
carry/bin/lq bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4 --ctx 512 --out "$R/model_w4_small.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/model.txt"; pack
