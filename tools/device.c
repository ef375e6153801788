/* device.c — `--device cpu|cuda|auto` for the commands that run a model:
 * picks the engine (auto = CUDA when a GPU is present, else CPU). */
#include <stdio.h>
#include <string.h>

#include "../kernels/lq_cuda.h"
#include "lq_tool.h"

int lq_tool_device_valid(const char *d) { return !strcmp(d, "cpu") || !strcmp(d, "cuda") || !strcmp(d, "auto"); }

int lq_tool_use_cuda(const char *device) {
    return !strcmp(device, "cuda") || (!strcmp(device, "auto") && lq_cuda_device_count() > 0);
}

/* A run on the GPU loads a .lqq packed-only: no fp32 copy of its packed
 * linears on the host (the CUDA engine dequantizes at upload what its fused
 * kernels do not take), so the host holds about the file, not 4 bytes per
 * weight. The CPU needs the fp32 weights. */
lq_status lq_tool_load_model(const char *path, const char *device, lq_model **out) {
    return lq_model_load_ex(path, lq_tool_use_cuda(device) ? LQ_LOAD_PACKED_ONLY : 0, out);
}

lq_status lq_tool_engine(const lq_model *m, const char *device, int weight_dtype, int compute_dtype, int max_B,
                         int max_ctx, lq_engine **out) {
    if (!lq_tool_use_cuda(device)) return lq_engine_cpu_new(m, max_B, max_ctx, out);
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    if (weight_dtype >= 0) o.weight_dtype = weight_dtype;
    if (compute_dtype >= 0) o.compute_dtype = compute_dtype;
    return lq_cuda_engine_new(m, &o, max_B, max_ctx, out);
}

int lq_tool_parse_wdtype(const char *s) {
    if (!strcmp(s, "f16") || !strcmp(s, "fp16")) return LQ_F16;
    if (!strcmp(s, "bf16")) return LQ_BF16;
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) return LQ_F32;
    return -2;
}
