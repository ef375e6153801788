#!/bin/bash
cd /work/main; export OMP_WAIT_POLICY=passive
L=build/lq; S=../shared; D=/tmp/smol; W=$S/datasets/wikitext2/wiki.test.raw.txt
while pgrep -f "/tmp/smol/run.sh" >/dev/null; do sleep 5; done
echo "== eval2048-rtn ($(date +%T))"; $L eval $D/hf $D/rtn.lqq $W --ctx 2048 --max-windows 10 --device cpu --json --quiet > $D/eval2048_rtn.json
echo "== eval2048-gptq-act ($(date +%T))"; $L eval $D/hf $D/gptq_act.lqq $W --ctx 2048 --max-windows 10 --device cpu --json --quiet > $D/eval2048_gptq_act.json
echo "== eval2048-gptq ($(date +%T))"; $L eval $D/hf $D/gptq.lqq $W --ctx 2048 --max-windows 10 --device cpu --json --quiet > $D/eval2048_gptq.json
echo "== done2 ($(date +%T))"
