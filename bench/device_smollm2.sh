#!/usr/bin/env bash
# device_smollm2.sh — SmolLM2-135M-Instruct and the kernel sweep on the lent GPU
# machine, in one call. The 98 MB GGUF does not fit one call's 64 MiB transfer,
# so it travels in three pieces: two earlier calls copy carryA/part00 and
# carryB/part01 to /tmp/lq_smol/ on the (still warm) machine, this one brings
# carryC/ (part02, the lq binary, its runtime libraries, WikiText-2 and C4).
# Prepare here:  split -b 33000000 -d datasets/cache/smollm2/*.gguf part ; make ; tar the lq binary.
# Writes logs and JSON to $OUT (or bench/results/last).
set -u
OUTD=${OUT:-bench/results/last}
mkdir -p "$OUTD"
exec > >(tee "$OUTD/device_smollm2.log") 2>&1
t0=$(date +%s)
say() { printf '\n=== %s (%ss)\n' "$*" $(( $(date +%s) - t0 )); }
mkdir -p /tmp/lq_lib && tar xJf carryC/libs.tar.xz -C /tmp/lq_lib --strip-components=1
export LD_LIBRARY_PATH=/tmp/lq_lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p /tmp/lq_bin && tar xJf carryC/lq.tar.xz -C /tmp/lq_bin
LQ=/tmp/lq_bin/lq
D=carryC/shared/datasets
WT=$D/wikitext2/wiki.test.raw.txt
say device
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
say "reassemble SmolLM2"
cat /tmp/lq_smol/part00 /tmp/lq_smol/part01 carryC/smol/part02 > /tmp/smol.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/smol.gguf" | sha256sum -c - || exit 3
$LQ convert /tmp/smol.gguf /tmp/smol-f16 --dtype f16
say "SmolLM2 WikiText-2 perplexity on the GPU (full text)"
for ctx in 512 2048; do
  for w in f32 f16; do
    $LQ ppl /tmp/smol-f16 $WT --ctx $ctx --device cuda --weights $w --json --quiet | tee -a "$OUTD/smollm2_ppl.jsonl"
  done
done
$LQ generate /tmp/smol-f16 --prompt "The capital of France is" -n 32 --device cuda
say "kernel sweep (cuBLAS fp16 baseline, copy bandwidth)"
$LQ bench kernels --shapes all --out "$OUTD/kernels.json" 2>&1 | tail -60
say "whole model: SmolLM2 (real weights) on the GPU"
$LQ bench model /tmp/smol-f16 --device cuda --prompt 512,2048 --batch 1,8,32 --ctx 512,2048,8000 --out "$OUTD/model-smollm2.json" 2>&1 | grep bench
say "quantization on SmolLM2 (CPU quantize on 16 cores, GPU evaluation)"
if $LQ quantize --help >/dev/null 2>&1; then
  export OMP_NUM_THREADS=16
  C4=$D/c4/c4_validation_2k.jsonl.gz
  q() { name=$1; shift; timeout 400 $LQ quantize /tmp/smol-f16 /tmp/smol-$name.lqq "$@" --dtype f16 --quiet --json > "$OUTD/quant-$name.json" || echo "quantize $name failed or timed out"; }
  q rtn-w8-g128-sym  --method rtn --bits 8 --group 128 --sym
  q rtn-w4-g128-sym  --method rtn --bits 4 --group 128 --sym
  q gptq-w4-g128-sym --method gptq --bits 4 --group 128 --sym --calib $C4 --nsamples 128 --seqlen 256 --seed 0
  q rtn-w3-g128-asym  --method rtn --bits 3 --group 128
  q gptq-w3-g128-asym --method gptq --bits 3 --group 128 --calib $C4 --nsamples 128 --seqlen 256 --seed 0
  for q in rtn-w8-g128-sym rtn-w4-g128-sym gptq-w4-g128-sym rtn-w3-g128-asym gptq-w3-g128-asym; do
    [ -f /tmp/smol-$q.lqq ] || continue
    for ctx in 512 2048; do
      $LQ eval /tmp/smol-f16 /tmp/smol-$q.lqq $WT --ctx $ctx --device cuda --weights f32 --json --quiet \
        | python3 -c "import json,sys; d=json.load(sys.stdin); d['quant']='$q'; print(json.dumps(d))" | tee -a "$OUTD/smollm2_eval.jsonl"
    done
  done
fi
say done
