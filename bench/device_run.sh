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
#   smallm    the small-M W4A16 sweep (M = 1,2,4,16,64) and the W4 model at batch 1/4
#   attention lq bench kernels --attention (decode attention sweep of ANCHORS.md)
#   prefill   lq bench model, llama3-8b fp16: prefill 512/2048 against cuBLAS on the same GEMMs, decode at 512/8k
#   sweep     tuning sweeps at M = 1 (kernels only): LQ_W4S_PLAN=B,S for the small-M W4A16 kernel,
#             LQ_GEMV_TARGET_WARPS for the fp16 GEMV; one events-timed run for comparison
#   profile   ncu per-kernel times (gpu__time_duration) of a 4-layer llama3-8b: fp16 prefill 2048 +
#             decode at 512, then RTN-4 decode at 512 (ncu serializes kernels: no PDL overlap there)
#   pdl       lq bench model on the llama3-8b preset, decode with and without PDL (--compare-pdl):
#             fp16 prefill 512/2048 + decode batch 1 at 512/8k, then RTN-4 decode batch 1/4 at 512
#   fa        prefill attention alone (carry/bin/bench_attention_fa, kernels/dev/bench_attention_fa.cu)
#             and the decode-attention split sweep (LQ_DECODE_BLOCKS_PER_SM 1..16)
#   ncuattn   ncu --set full of the decode-attention kernel at batch 1 x 1k and 1 x 8k (one shape per
#             run with --attn, event timing: launch 5 is the first timed one after 5 warm-ups)
#   attnsweep decode attention (lq bench kernels --attention) for LQ_DECODE_WARPS 4 / 8 x
#             LQ_DECODE_BLOCKS_PER_SM 1 / 2, then fp16 llama3-8b decode batch 1 at 512 / 8k for 4 and 8 warps
#   abw4      W4A16 kernels of carry/bin (the candidate) against a baseline build in the same run:
#             carry/base.tar.xz holds base/lq (make the same way: tar cJf carry/base.tar.xz -C carry base);
#             M = 1,2,4,8,16,32,64 sym g128, then asym g128 and asym g32 at M = 1,4, each baseline first
#   wgmma     the wgmma W4A16 kernel (path 4) of carry/bin against carry/base (abw4's baseline) at
#             M = 16..4096, an ncu run of one launch (the third wgmma launch of the sweep:
#             qkv M = 4096) with warp-state and scheduler sections, and the W4 prefill with
#             LQ_W4A16_WGMMA=0 / 1 / 2 (off / the automatic range / every M >= LQ_W4A16_WGMMA_MIN_M)
#   final     lq bench model, llama3-8b: fp16 prefill 512/2048 + decode batch 1 at 512/8k and batch 8
#             at 512; RTN-4 g128 prefill 512/2048 + decode batch 1/4 at 512
#   smol      SmolLM2-135M: RTN 4/8-bit and GPU GPTQ (plain, act-order) on C4, lq eval on full WikiText-2
#             at 512/2048 (cuda, f32 weights), then GPU (fp16, W4A16 fused) vs CPU on 40 windows at 512
# OUTDIR (default $OUT) gets device_run.log and results.tgz (every log and JSON, re-packed after
# each step, since a device call returns at most 8 files). Prepare the carry folder here with
#   make -j2 && make -j2 $(ls tests/test_*_gpu.c tests/test_kernels.c | sed 's/\.c$//;s/^/build\//')
#   mkdir -p carry/bin && cp build/lq build/tests/test_*_gpu build/tests/test_kernels carry/bin/ && strip carry/bin/*
#   tar cJf carry/bin.tar.xz -C carry bin && rm -r carry/bin      # 38 MB -> 1.4 MB
set -u
OUTD=${1:-${OUT:-bench/results/last}}
mkdir -p "$OUTD"; R=$(mktemp -d /tmp/lq_device_run.XXXXXX)  # packed into $OUTD/results.tgz
exec > >(tee "$OUTD/device_run.log") 2>&1
t0=$(date +%s)
tm() { local l=$1 t=$EPOCHREALTIME; shift; "$@"; local rc=$?; awk -v a=$t -v b=$EPOCHREALTIME -v l="$l" 'BEGIN{printf "%s: %.1f s\n", l, b-a}' >&2; return $rc; }
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
  tests) say tests; LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=${LQ_TEST_JOBS:-8} ./tests/run_tests.sh carry/bin/test_* > "$R/tests.log" 2>&1; grep -E "FAILED|error:|mismatch at|passed,|W4A16|engine:" "$R/tests.log" | head -40 ;;
  kernels) say kernels
    $LQ bench kernels --w4a16 --shapes llama3 --iters 40 --out "$R/kernels_w4a16_sym_g128.json" 2>&1 | tee "$R/kernels.txt"
    $LQ bench kernels --w4a16 --asym --shapes llama3 --m 1,16,64 --iters 40 --out "$R/kernels_w4a16_asym_g128.json" 2>&1 | tee -a "$R/kernels.txt" ;;
  model) say model
    $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1,8,32 --ctx 512 --out "$R/model_f16.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/model.txt"
    $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 --batch 1,8,32 --ctx 512 --out "$R/model_w4.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee -a "$R/model.txt" ;;
  smallm) say smallm  # the small-M W4A16 kernel: its columns at M <= 4 next to fused/dequant, the W4 model at batch 1/4
    $LQ bench kernels --w4a16 --shapes llama3 --m 1,2,4,16,64 --iters 30 --out "$R/kernels_w4a16_small.json" 2>&1 | tee "$R/kernels_small.txt"
    $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4 --ctx 512 --out "$R/model_w4_small.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/model_small.txt" ;;
  attention) say attention
    $LQ bench kernels --attention --shapes none --iters 40 --out "$R/attention_decode.json" 2>&1 | tee "$R/attention.txt"
    $LQ bench kernels --attention --shapes none --iters 40 --timing events --out "$R/attention_decode_events.json" 2>&1 | tee -a "$R/attention.txt" ;;
  prefill) say prefill  # fp16 llama3-8b: prefill vs cuBLAS on the same GEMMs, decode at batch 1 at 512 and 8k
    $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1 --ctx 512,8192 --out "$R/model_f16_prefill.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/prefill.txt" ;;
  sweep) say sweep
    for plan in "" 1,4 1,8 1,16 2,4 2,8 4,4 4,8 8,4; do
      echo "--- LQ_W4S_PLAN=$plan"
      LQ_W4S_PLAN=$plan $LQ bench kernels --w4a16 --m 1,4 --shapes llama3 --iters 20 --out "$R/sweep_w4s_${plan/,/x}.json" 2>&1 | grep -E "^(qkv|o |gate|down)"
    done 2>&1 | tee "$R/sweep_w4s.txt"
    for tw in 2048 4096 8192 16384 32768; do
      echo "--- LQ_GEMV_TARGET_WARPS=$tw"
      LQ_GEMV_TARGET_WARPS=$tw $LQ bench kernels --m 1 --shapes llama3 --iters 20 --out "$R/sweep_gemv_$tw.json" 2>&1 | grep -E "^(qkv|o |gate|down)| gemv "
    done 2>&1 | tee "$R/sweep_gemv.txt"
    $LQ bench kernels --w4a16 --m 1,4,16 --shapes llama3 --iters 20 --timing events --out "$R/kernels_events.json" 2>&1 | tee "$R/kernels_events.txt" ;;
  profile) say profile
    NCU="ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel"
    $NCU $LQ bench model --preset llama3-8b --layers 4 --device cuda --prompt 2048 --batch 1 --ctx 512 --steps 4 --reps 1 > "$R/ncu_f16.txt" 2>&1; tail -c 6000 "$R/ncu_f16.txt" | grep -E "^  [a-zA-Z_]|gpu__time|Kernel|kernel" | head -80
    $NCU $LQ bench model --preset llama3-8b --layers 4 --device cuda --rtn 4 --prompt 64 --batch 1 --ctx 512 --steps 4 --reps 1 > "$R/ncu_w4.txt" 2>&1 ;;
  pdl) say pdl
    $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1 --ctx 512,8192 --compare-pdl --out "$R/model_f16_pdl.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/pdl.txt"
    $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512 --batch 1,4 --ctx 512 --compare-pdl --out "$R/model_w4_pdl.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee -a "$R/pdl.txt" ;;
  fa) say fa
    carry/bin/bench_attention_fa 2>&1 | tee "$R/bench_attention_fa.txt"
    for b in 1 2 4 8 16; do echo "--- LQ_DECODE_BLOCKS_PER_SM=$b"
      LQ_DECODE_BLOCKS_PER_SM=$b $LQ bench kernels --attention --shapes none --iters 30 --out "$R/attention_bps$b.json" 2>&1 | grep -E "^ +(1|16) "
    done 2>&1 | tee "$R/attention_sweep.txt" ;;
  ncuattn) say ncuattn
    for sh in 1x1024 1x8192; do
      ncu --clock-control none --set full --kernel-name regex:attn_decode --launch-skip 5 --launch-count 1 \
        $LQ bench kernels --attn $sh --shapes none --iters 3 --timing events > "$R/ncu_attn_$sh.txt" 2>&1
      grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Grid Size|Block Size|Stall|Warp Cycles Per Issued" "$R/ncu_attn_$sh.txt" | head -30
    done ;;
  attnsweep) say attnsweep
    for w in 4 8; do for b in 1 2; do echo "--- LQ_DECODE_WARPS=$w LQ_DECODE_BLOCKS_PER_SM=$b"
      LQ_DECODE_WARPS=$w LQ_DECODE_BLOCKS_PER_SM=$b $LQ bench kernels --attention --shapes none --iters 30 --out "$R/attention_w${w}_bps$b.json" 2>&1 | grep -E "^ +(1|16) "
    done; done 2>&1 | tee "$R/attention_warps.txt"
    for w in 4 8; do echo "--- LQ_DECODE_WARPS=$w"
      LQ_DECODE_WARPS=$w $LQ bench model --preset llama3-8b --device cuda --prompt 512 --batch 1 --ctx 512,8192 --out "$R/model_f16_w$w.json" 2>&1 | grep -E "decode|prefill "
    done 2>&1 | tee "$R/model_warps.txt" ;;
  abw4) say abw4
    [ -f carry/base.tar.xz ] && tar xJf carry/base.tar.xz -C carry
    for v in "--m 1,2,4,8,16,32,64" "--asym --m 1,4" "--asym --group 32 --m 1,4"; do
      for who in base bin; do echo "--- $who: $v"
        carry/$who/lq bench kernels --w4a16 --shapes llama3 $v --iters 20 --out "$R/abw4_${who}_$(echo $v | tr -d ' -,').json" 2>&1 | grep -E "^(qkv|o |gate|down)"
      done
    done 2>&1 | tee "$R/abw4.txt" ;;
  wgmma) say wgmma
    [ -f carry/base.tar.xz ] && tar xJf carry/base.tar.xz -C carry
    # kernels/dev/bench_wgmma.cu (branch wgmma-v2), when carried: wgmma's own rate in these patterns
    [ -x carry/bin/bench_wgmma ] && carry/bin/bench_wgmma 2>&1 | tee "$R/bench_wgmma.txt"
    for who in base bin; do echo "--- $who"
      carry/$who/lq bench kernels --w4a16 --shapes llama3 --m ${WGM_M:-16,64,128,256,512,1024,4096} --iters 20 \
        --out "$R/wgmma_${who}.json" 2>&1 | grep -E "^(layer|qkv|o |gate|down)"
    done 2>&1 | tee "$R/wgmma_ab.txt"
    ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
      --section LaunchStats -k regex:wgmma --launch-skip 2 --launch-count 1 \
      $LQ bench kernels --w4a16 --shapes llama3 --m 4096 --iters 3 > "$R/ncu_wgmma.txt" 2>&1
    grep -E "Duration|Throughput|Stall|Eligible|Issued|Active Warps|Registers|Grid Size" "$R/ncu_wgmma.txt" | head -40
    for v in 0 1 2; do echo "--- LQ_W4A16_WGMMA=$v"
      LQ_W4A16_WGMMA=$v $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 \
        --batch 1 --ctx 512 2>&1 | grep -E "prefill|cuBLAS"
    done 2>&1 | tee "$R/wgmma_model.txt" ;;
  final) say final
    $LQ bench model --preset llama3-8b --device cuda --prompt 512,2048 --batch 1,8 --ctx 512,8192 --out "$R/model_f16.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee "$R/model.txt"
    $LQ bench model --preset llama3-8b --device cuda --rtn 4 --group 128 --prompt 512,2048 --batch 1,4 --ctx 512 --out "$R/model_w4.json" 2>&1 | grep -v "^\[bench\] *[0-9]*/" | tee -a "$R/model.txt" ;;
  smol) say smol  # the GGUF travels in two calls: carry/smolA/part (first call, kept while warm), carry/smolB/part
    G=/tmp/lqsmol/model.gguf; D=/tmp/lqsmol; mkdir -p $D
    A=carry/smolA/part; [ -f $A ] || A=/tmp/lqstage/smolA
    [ -f $G ] || cat $A carry/smolB/part > $G
    echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c || break
    W=$LQ_SHARED/datasets/wikitext2/wiki.test.raw.txt; C=$LQ_SHARED/datasets/c4/c4_validation_2k.jsonl.gz
    $LQ convert $G $D/hf --dtype f16 > /dev/null
    CAL="--calib $C --nsamples 128 --seqlen 256 --seed 0"
    for q in "rtn4 --method rtn --bits 4 --group 128 --sym" "rtn8 --method rtn --bits 8 --group 128 --sym" \
             "gptq --method gptq --bits 4 --group 128 --sym $CAL --device cuda" \
             "gptq_act --method gptq --bits 4 --group 128 --sym --act-order $CAL --device cuda"; do
      set -- $q; n=$1; shift
      tm "$n" $LQ quantize $D/hf $D/$n.lqq "$@" --json --quiet > "$R/quantize_$n.json"
    done
    for ctx in 512 2048; do for n in rtn4 gptq_act gptq rtn8; do
      tm "eval $n ctx $ctx (cuda, f32 weights)" \
        $LQ eval $D/hf $D/$n.lqq $W --ctx $ctx --device cuda --weights f32 --json --quiet > "$R/eval_${n}_$ctx.json"
    done; done
    # GPU vs CPU on the same 40 windows: fp16 engine (W4A16 fused for the .lqq) and the fp32 CPU runtime
    for n in rtn4 gptq_act; do for dev in cuda cpu; do
      tm "eval $n 40 windows $dev" \
        $LQ eval $D/hf $D/$n.lqq $W --ctx 512 --max-windows 40 --device $dev --json --quiet > "$R/eval40_${n}_$dev.json"
    done; done
    grep -h '"ppl' "$R"/eval*.json | head -40 ;;
  *) echo "unknown step $s" ;;
  esac
  tar czf "$OUTD/results.tgz" -C "$R" .   # a call brings back 8 files at most: one archive, after every step
done
say done
