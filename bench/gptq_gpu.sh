#!/usr/bin/env bash
# gptq_gpu.sh — GPU GPTQ (`lq quantize --device cuda`) on a machine with an
# NVIDIA GPU: the test suite, stories260K GPTQ on the GPU vs the CPU (time and
# perplexity of the written .lqq), and — unless SKIP_8B=1 — the acceptance
# timing: GPTQ of a Llama-3-8B-shaped model (random weights from `lq synth`,
# 128 x 2048 random calibration tokens) on one GPU, target <= 10 minutes.
# Logs and JSON summaries go to OUTDIR.
#
# Usage, from the repository root:   bench/gptq_gpu.sh [OUTDIR]
#   LQ=path/to/lq (default build/lq), TEST=path/to/test_gptq_gpu (default
#   build/tests/test_gptq_gpu), LQ_SHARED (default ../shared),
#   SYNTH_DIR (default /tmp/lq_llama3_8b: 16 GB of f16 safetensors).
set -u
OUTD=${1:-${OUT:-bench/results/last}}
mkdir -p "$OUTD"
LQ=${LQ:-build/lq}
TEST=${TEST:-build/tests/test_gptq_gpu}
SH=${LQ_SHARED:-../shared}
SYNTH_DIR=${SYNTH_DIR:-/tmp/lq_llama3_8b}
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
say() { printf '\n=== %s\n' "$*"; }
rc=0

say "tests: $TEST"
LQ_BIN=$LQ LQ_SHARED=$SH LQ_REQUIRE_GPU=1 ./tests/run_tests.sh "$TEST" 2>&1 | tee "$OUTD/test_gptq_gpu.log" | tail -25
grep -q " 0 failed" "$OUTD/test_gptq_gpu.log" || rc=1

say "stories260K GPTQ 4-bit g128: cpu vs cuda vs cuda --cpu-forward"
M=$SH/models/stories260K
TXT=$SH/datasets/tinystories/sample.txt
for d in "cpu" "cuda" "cuda --cpu-forward"; do
  tag=$(echo "$d" | tr -d ' -')
  $LQ quantize $M "$OUTD/s-gptq-$tag.lqq" --method gptq --bits 4 --group 128 \
    --calib $TXT --nsamples 64 --seqlen 256 --device $d --json --quiet > "$OUTD/s-gptq-$tag.json" || { rc=1; continue; }
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%s: %.2f s" % (sys.argv[2], j["seconds"]))' \
    "$OUTD/s-gptq-$tag.json" "$d" || rc=1
  $LQ ppl "$OUTD/s-gptq-$tag.lqq" $TXT --ctx 256 --json --quiet 2>/dev/null | tail -1
done

if [ "${SKIP_8B:-0}" != 1 ]; then
  say "GPTQ of Llama-3-8B shapes (random weights), 128 x 2048 random tokens, --device cuda"
  [ -f "$SYNTH_DIR/config.json" ] || $LQ synth --preset llama3-8b "$SYNTH_DIR" --dtype f16 || rc=1
  $LQ quantize "$SYNTH_DIR" /tmp/lq_llama3_8b-gptq.lqq --method gptq --bits 4 --group 128 \
    --calib random --nsamples 128 --seqlen 2048 --device cuda --json > "$OUTD/gptq_llama3_8b.json" \
    2> "$OUTD/gptq_llama3_8b.log" || { rc=1; tail -3 "$OUTD/gptq_llama3_8b.log"; }
  grep -E "layer [0-9]+/|error" "$OUTD/gptq_llama3_8b.log" | tail -8
  [ -s "$OUTD/gptq_llama3_8b.json" ] && python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("seconds %.1f, GPU peak %.1f GiB, %s" % (j["seconds"], j.get("gpu_peak_bytes",0)/2**30, j.get("gpu","")))' \
    "$OUTD/gptq_llama3_8b.json" || rc=1
  rm -f /tmp/lq_llama3_8b-gptq.lqq
fi
exit $rc
