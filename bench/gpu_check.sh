#!/usr/bin/env bash
# gpu_check.sh — the GPU runtime's check on a machine with an NVIDIA GPU, in
# one go: build, the GPU test suites (what `make test-gpu` runs), and a small
# timing (perplexity and generation on stories260K, GPU vs CPU; the attention
# kernels against the ANCHORS.md decode shapes; `lq bench model` on a
# Llama-3-8B-shaped random model). Logs go to OUTDIR; the last lines printed
# are a summary table.
#
# Usage, from the repository root:   bench/gpu_check.sh [OUTDIR]
#   OUTDIR defaults to $OUT (the lent device machine's output folder) or
#   bench/results/last.
# Two ways to get binaries:
#   - the machine has the -dev packages (make deps): `make -j16` builds here;
#   - it has not (the lent device machines have nvcc but no jansson/archive/
#     cmocka headers): binaries built elsewhere wait in carry/bin (lq,
#     test_kernels, test_model_gpu, bench_attention, bench_gemv) with their runtime
#     libraries in carry/libs.tar.xz, and the model/golden/text files in
#     carry/shared (the ../shared folder does not travel). Prepare them with
#       make BUILD=build-gpu -j2 build-gpu/lq build-gpu/tests/test_kernels build-gpu/tests/test_model_gpu
#     and the nvcc lines at the top of kernels/dev/bench_attention.cu and bench_gemv.cu.
#       make BUILD=build-gpu -j2 build-gpu/lq build-gpu/tests/test_kernels build-gpu/tests/test_model_gpu \
#         build-gpu/tests/test_gptq_gpu
#     and the nvcc line at the top of kernels/dev/bench_attention.cu.
# Environment: LQ_SHARED (default carry/shared if present, else ../shared),
# SKIP_BENCH8B=1 to skip the 8B model timing, FORCE_PREBUILT=1 to use carry/bin
# even where the build could run.
set -u
OUTD=${1:-${OUT:-bench/results/last}}
mkdir -p "$OUTD"
exec > >(tee "$OUTD/gpu_check.log") 2>&1
t_start=$(date +%s)
say() { printf '\n=== %s (%ss)\n' "$*" $(( $(date +%s) - t_start )); }

if [ -f carry/libs.tar.xz ]; then
  mkdir -p /tmp/lq_carry_lib && tar xJf carry/libs.tar.xz -C /tmp/lq_carry_lib --strip-components=1
  export LD_LIBRARY_PATH=/tmp/lq_carry_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d
done
if [ -z "${LQ_SHARED:-}" ]; then
  if [ -d carry/shared ]; then export LQ_SHARED=$PWD/carry/shared; else export LQ_SHARED=$PWD/../shared; fi
fi

say "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
nvcc --version | tail -1

say "build"
if [ "${FORCE_PREBUILT:-0}" != 1 ] && pkg-config --exists jansson libpcre2-8 libarchive zlib openblas 2>/dev/null &&
   [ -f /usr/include/cmocka.h ]; then
  BUILD=build-dev
  make -j16 BUILD=$BUILD || exit 1
  make -j16 BUILD=$BUILD $BUILD/tests/test_kernels $BUILD/tests/test_model_gpu $BUILD/tests/test_gptq_gpu || exit 1
  LQ=$BUILD/lq; TESTS="$BUILD/tests/test_kernels $BUILD/tests/test_model_gpu $BUILD/tests/test_gptq_gpu"
  nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_attention.cu $BUILD/liblq.a \
    -lcublas -lopenblas -lgomp -Xcompiler -fopenmp -o $BUILD/bench_attention && BENCH_ATT=$BUILD/bench_attention
  nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a kernels/dev/bench_gemv.cu $BUILD/liblq.a \
    -lcublas -lopenblas -lgomp -Xcompiler -fopenmp -o $BUILD/bench_gemv && BENCH_GEMV=$BUILD/bench_gemv
  GPU_TESTS_CMD="make BUILD=$BUILD test-gpu"
else
  echo "no -dev packages (jansson/libarchive/cmocka headers) here: using the prebuilt binaries in carry/bin"
  LQ=carry/bin/lq; TESTS="carry/bin/test_kernels carry/bin/test_model_gpu"; BENCH_ATT=carry/bin/bench_attention
  [ -x carry/bin/bench_gemv ] && BENCH_GEMV=carry/bin/bench_gemv
  [ -x carry/bin/test_gptq_gpu ] && TESTS="$TESTS carry/bin/test_gptq_gpu" && export LQ_BIN=$PWD/carry/bin/lq
  GPU_TESTS_CMD="env LQ_REQUIRE_GPU=1 ./tests/run_tests.sh $TESTS"  # the recipe of make test-gpu
fi
missing=$(ldd $LQ $TESTS 2>/dev/null | grep "not found" | sort -u)
[ -n "$missing" ] && { echo "missing libraries:"; echo "$missing"; }
$LQ --help >/dev/null 2>&1 || echo "warning: $LQ --help failed"

say "GPU tests: $GPU_TESTS_CMD"
$GPU_TESTS_CMD > "$OUTD/tests.log" 2>&1
tests_rc=$?
grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|max \|logit|ppl n_ctx|greedy:|vs prefill|vs singles|chunked|passed, .* failed|ERROR|mismatch" "$OUTD/tests.log" | head -80
echo "tests exit status: $tests_rc"

say "timing: perplexity (stories260K on WikiText-2 test, n_ctx 256)"
M=$LQ_SHARED/models/stories260K
TXT=$LQ_SHARED/datasets/wikitext2/wiki.test.raw.txt
{
  for w in f16 bf16 f32; do
    $LQ ppl $M $TXT --ctx 256 --device cuda --weights $w --json --quiet
  done
  $LQ ppl $M $TXT --ctx 256 --device cpu --max-windows 400 --json --quiet
  $LQ ppl $M $LQ_SHARED/datasets/tinystories/sample.txt --ctx 256 --device cuda --json --quiet
} > "$OUTD/timing_ppl.jsonl" 2>&1
cat "$OUTD/timing_ppl.jsonl"

say "timing: generation (greedy, 400 tokens)"
{
  for d in "cuda --weights f16" "cuda --weights f32" "cuda --weights bf16" "cpu"; do
    echo "# --device $d"
    $LQ generate $M --prompt "Once upon a time" -n 400 --ignore-eos --device $d --json
  done
} > "$OUTD/timing_generate.jsonl" 2>&1
grep -v '^{' "$OUTD/timing_generate.jsonl"

say "attention kernels vs ANCHORS.md"
[ -n "${BENCH_ATT:-}" ] && timeout 180 $BENCH_ATT 2>&1 | tee "$OUTD/bench_attention.txt"

say "small-M GEMV vs cuBLAS (lq bench kernels; kernels/dev/bench_gemv.cu variants)"
timeout 300 $LQ bench kernels --m 1,2,4,8 --shapes llama3 --out "$OUTD/bench_kernels.json" 2>&1 | tee "$OUTD/bench_kernels.txt"
[ -n "${BENCH_GEMV:-}" ] && timeout 300 $BENCH_GEMV 2>&1 | tee "$OUTD/bench_gemv.txt"

if [ "${SKIP_BENCH8B:-0}" != 1 ]; then
  say "lq bench model: llama3-8b shapes (random weights), fp16, CUDA"
  timeout 330 $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1,8,32 --ctx 512,2048 \
    --steps 16 --reps 2 --out "$OUTD/bench_llama3_8b.json" 2>&1 | grep -v "^\[ppl\]"
fi

say "summary"
printf 'tests exit status %s\n' "$tests_rc"
tail -1 "$OUTD/tests.log"
python3 - "$OUTD" <<'PY'
import json, sys, os
d = sys.argv[1]
def rows(name):
    for line in open(os.path.join(d, name)):
        line = line.strip()
        if line.startswith("{"):
            try: yield json.loads(line)
            except ValueError: pass
print("%-52s %10s %8s %9s %12s" % ("perplexity: engine", "ppl", "windows", "seconds", "tokens/s"))
for r in rows("timing_ppl.jsonl"):
    print("%-52s %10.4f %8d %9.2f %12.0f  %s" % (r.get("engine", "?")[:52], r["ppl"], r["windows"], r["seconds"],
          r.get("tokens_per_second", 0), os.path.basename(r.get("text", ""))))
print("%-52s %10s %12s" % ("generation (400 tokens, greedy)", "tokens", "decode tok/s"))
label = "?"
for line in open(os.path.join(d, "timing_generate.jsonl")):
    if line.startswith("# "):
        label = line[2:].strip()
    elif line.startswith("{"):
        r = json.loads(line)
        print("%-52s %10d %12.1f" % (label, r["generated_tokens"], r["decode_tokens_per_second"]))
PY
exit $tests_rc
