/* lq_tool.h — shared bits of the `lq` command: each subcommand is
 * `int lq_cmd_<name>(int argc, char **argv)` returning the exit code.
 * Only tools/ prints and chooses exit codes; library errors are reported via
 * lq_tool_fail(), which prints "lq <cmd>: error: <message>" and returns the
 * exit code for the status. */
#ifndef LQ_TOOL_H
#define LQ_TOOL_H

#include "../libquant/lq_common.h"
#include "../libquant/lq_engine.h"

int lq_cmd_inspect(int argc, char **argv);
int lq_cmd_convert(int argc, char **argv);
int lq_cmd_ppl(int argc, char **argv);
int lq_cmd_generate(int argc, char **argv);
int lq_cmd_quantize(int argc, char **argv);
int lq_cmd_eval(int argc, char **argv);
int lq_cmd_synth(int argc, char **argv);
int lq_cmd_bench(int argc, char **argv);

/* Exit codes: 0 ok, 1 runtime error, 2 usage error. */
int lq_tool_fail(const char *cmd, lq_status st);
int lq_tool_usage(const char *cmd, const char *usage, const char *fmt, ...);
/* Parse helpers: return 0 on success. */
int lq_parse_int(const char *s, long lo, long hi, long *out);
int lq_parse_float(const char *s, double *out);
/* Read a whole text file (or "-" for stdin). */
lq_status lq_tool_read_text(const char *path, char **out, size_t *n);
/* --device handling (tools/device.c): "cpu", "cuda" or "auto". weight_dtype
 * (LQ_F16/LQ_BF16/LQ_F32, -1 = engine default) and compute_dtype (-1 = the
 * weights'; LQ_F32 over 16-bit weights) apply to the CUDA engine. */
int lq_tool_device_valid(const char *d);
/* 1 when `device` (cpu|cuda|auto) runs on the GPU */
int lq_tool_use_cuda(const char *device);
/* lq_model_load for a run on `device`: a .lqq is loaded packed-only for the GPU */
lq_status lq_tool_load_model(const char *path, const char *device, lq_model **out);
lq_status lq_tool_engine(const lq_model *m, const char *device, int weight_dtype, int compute_dtype, int max_B,
                         int max_ctx, lq_engine **out);
/* "f16"/"bf16"/"f32" -> dtype; -2 when unknown. */
int lq_tool_parse_wdtype(const char *s);
/* JSON-escape s to stdout with quotes. */
void lq_print_json_string(const char *s);

#endif
