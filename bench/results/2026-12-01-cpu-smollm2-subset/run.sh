#!/bin/bash
# SmolLM2 GPTQ vs RTN on a WikiText-2 subset (CPU, 2 cores): does act-order flip GPTQ's ppl deficit?
cd /work/main
export OMP_WAIT_POLICY=passive
L=build/lq; S=../shared; D=/tmp/smol
W=$S/datasets/wikitext2/wiki.test.raw.txt; C=$S/datasets/c4/c4_validation_2k.jsonl.gz
t() { echo "== $* ($(date +%T))"; }
t convert; $L convert datasets/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $D/hf --dtype f16 >/dev/null 2>&1
t rtn; $L quantize $D/hf $D/rtn.lqq --method rtn --bits 4 --group 128 --sym --quiet
t eval-rtn; $L eval $D/hf $D/rtn.lqq $W --ctx 512 --max-windows 40 --device cpu --json --quiet > $D/eval_rtn.json
t gptq-act; $L quantize $D/hf $D/gptq_act.lqq --method gptq --bits 4 --group 128 --sym --act-order --calib $C --nsamples 128 --seqlen 256 --seed 0 --quiet
t eval-gptq-act; $L eval $D/hf $D/gptq_act.lqq $W --ctx 512 --max-windows 40 --device cpu --json --quiet > $D/eval_gptq_act.json
t gptq; $L quantize $D/hf $D/gptq.lqq --method gptq --bits 4 --group 128 --sym --calib $C --nsamples 128 --seqlen 256 --seed 0 --quiet
t eval-gptq; $L eval $D/hf $D/gptq.lqq $W --ctx 512 --max-windows 40 --device cpu --json --quiet > $D/eval_gptq.json
t done
