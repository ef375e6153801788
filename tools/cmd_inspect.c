/* cmd_inspect.c — `lq inspect PATH [--json]`: architecture, tensors, dtypes,
 * shapes, parameter count of any supported checkpoint. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../formats/lq_checkpoint.h"
#include "../formats/lq_lqq.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_w4a16.h"
#include "lq_tool.h"

static const char *U =
    "usage: lq inspect PATH [--json]\n"
    "  PATH    HF directory, .safetensors, .gguf, llama2.c .bin, lq .lqq, or an archive of these\n"
    "          (a .lqq also shows its quantization recipe, calibration and how many linears the\n"
    "          fused W4A16 GPU kernels take, and whether the head is quantized; its tensors are\n"
    "          listed as loaded, dequantized)\n"
    "  --json  one JSON object on stdout\n";

/* A .lqq file's recipe (metadata quantization minus the per-tensor table), its
 * calibration, and how many quantized linears the fused W4A16 kernels take. */
typedef struct {
    json_t *recipe, *calib; /* new references, or NULL */
    int n_q, n_w4, n_mma; /* quantized linears, those the fused kernels take, those stored in their layout */
    uint64_t file_bytes;
} lqq_info;

static void lqq_info_read(const char *path, lqq_info *li) {
    memset(li, 0, sizeof *li);
    lq_lqq *f = NULL;
    if (lq_lqq_open(path, LQ_LQQ_SKIP_TENSOR_CRC, &f) != LQ_OK) return; /* lq_checkpoint_open checked it already */
    const json_t *meta = lq_lqq_metadata(f);
    json_t *q = json_object_get(meta, "quantization"), *cal = json_object_get(meta, "calibration");
    if (json_is_object(q)) {
        li->recipe = json_deep_copy(q);
        json_object_del(li->recipe, "tensors");
    }
    if (json_is_object(cal)) li->calib = json_deep_copy(cal);
    li->n_q = lq_lqq_n_qweights(f);
    const json_t *qt = json_object_get(q, "tensors");
    for (int i = 0; i < li->n_q; i++) {
        const char *name = lq_lqq_qweight_name(f, i);
        const char *pk = json_string_value(json_object_get(json_object_get(qt, name), "packing"));
        if (pk && !strcmp(pk, "lq-mma-w4")) { /* checked when loaded; no need to unpack it here */
            li->n_w4++;
            li->n_mma++;
            continue;
        }
        lq_qweight qw;
        if (lq_lqq_get_qweight(f, name, &qw) == LQ_OK && lq_w4a16_supported(&qw, name) == LQ_OK) li->n_w4++;
        lq_qweight_free(&qw);
    }
    lq_clear_error();
    FILE *fp = fopen(path, "rb");
    if (fp && fseek(fp, 0, SEEK_END) == 0) li->file_bytes = (uint64_t)ftell(fp);
    if (fp) fclose(fp);
    lq_lqq_close(f);
}

int lq_cmd_inspect(int argc, char **argv) {
    int as_json = 0;
    static struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') as_json = 1;
        else if (c == 'h') {
            fputs(U, stdout);
            return 0;
        } else return lq_tool_usage("inspect", U, "bad option");
    }
    if (optind != argc - 1) return lq_tool_usage("inspect", U, "expected one PATH");
    const char *path = argv[optind];
    lq_checkpoint *ck = NULL;
    lq_status st = lq_checkpoint_open(path, &ck);
    if (st != LQ_OK) return lq_tool_fail("inspect", st);
    lq_config cfg;
    lq_status cst = lq_config_from_json(ck->config, path, &cfg);
    char cfg_err[512] = "";
    if (cst != LQ_OK) snprintf(cfg_err, sizeof cfg_err, "%s", lq_last_error());
    int64_t params = 0;
    size_t bytes = 0;
    for (int i = 0; i < ck->n_tensors; i++) {
        params += lq_tensor_numel(&ck->tensors[i]);
        bytes += ck->tensors[i].n_bytes;
    }
    const char *tok_type = NULL;
    int tok_vocab = -1;
    if (ck->tokenizer) {
        json_t *mdl = json_object_get(ck->tokenizer, "model");
        tok_type = json_string_value(json_object_get(mdl, "type"));
        tok_vocab = (int)json_object_size(json_object_get(mdl, "vocab"));
    }
    lqq_info li;
    memset(&li, 0, sizeof li);
    if (!strcmp(ck->format, "lqq")) lqq_info_read(path, &li);
    if (as_json) {
        json_t *o = json_object(), *ts = json_array();
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "format", json_string(ck->format));
        json_object_set_new(o, "config", json_deep_copy(ck->config));
        json_object_set_new(o, "supported", json_boolean(cst == LQ_OK));
        if (cst != LQ_OK) json_object_set_new(o, "unsupported_reason", json_string(cfg_err));
        json_object_set_new(o, "n_params", json_integer(params));
        json_object_set_new(o, "n_bytes", json_integer((json_int_t)bytes));
        json_object_set_new(o, "n_tensors", json_integer(ck->n_tensors));
        if (tok_type) {
            json_object_set_new(o, "tokenizer", json_pack("{s:s, s:i}", "model", tok_type, "vocab", tok_vocab));
        } else json_object_set_new(o, "tokenizer", json_null());
        for (int i = 0; i < ck->n_tensors; i++) {
            const lq_tensor_info *t = &ck->tensors[i];
            json_t *sh = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
            json_array_append_new(ts, json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "dtype",
                                                lq_dtype_name(t->dtype), "shape", sh, "n_bytes",
                                                (json_int_t)t->n_bytes));
        }
        if (li.recipe) {
            json_object_set_new(o, "quantization", li.recipe);
            json_object_set_new(o, "calibration", li.calib ? li.calib : json_null());
            json_object_set_new(o, "n_quantized", json_integer(li.n_q));
            json_object_set_new(o, "n_w4a16_fused", json_integer(li.n_w4));
            json_object_set_new(o, "n_mma_layout", json_integer(li.n_mma));
            json_object_set_new(o, "file_bytes", json_integer((json_int_t)li.file_bytes));
            li.recipe = li.calib = NULL;
        }
        json_object_set_new(o, "tensors", ts);
        char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("path:        %s\nformat:      %s\n", path, ck->format);
        if (cst == LQ_OK) {
            printf("architecture: %s\n", cfg.arch_name);
            printf("hidden %d, intermediate %d, layers %d, heads %d (kv %d, head_dim %d), vocab %d, max_pos %d\n",
                   cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                   cfg.vocab_size, cfg.max_seq_len);
            printf("rope_theta %g%s, rms_norm_eps %g, %s embeddings%s\n", cfg.rope.theta,
                   cfg.rope.type == 1 ? " (llama3 scaling)" : cfg.rope.type == 2 ? " (linear scaling)" : "",
                   cfg.rms_eps, cfg.tie_embeddings || !lq_checkpoint_find(ck, "lm_head.weight") ? "tied" : "separate",
                   cfg.attn_bias ? ", q/k/v bias" : "");
        } else {
            printf("architecture: unsupported by the runtime: %s\n", cfg_err);
        }
        if (tok_type) printf("tokenizer:   %s, %d vocabulary entries\n", tok_type, tok_vocab);
        else printf("tokenizer:   none\n");
        if (li.recipe) {
            const json_t *r = li.recipe;
            printf("quantized:   %d linears, %s %d-bit, group %lld, %s%s; %.2f MB on disk; %d of %d run on the fused "
                   "W4A16 GPU kernels\n",
                   li.n_q, json_string_value(json_object_get(r, "method")) ? json_string_value(json_object_get(r, "method")) : "?",
                   (int)json_integer_value(json_object_get(r, "bits")),
                   (long long)json_integer_value(json_object_get(r, "group_size")),
                   json_is_true(json_object_get(r, "sym")) ? "symmetric" : "asymmetric",
                   json_is_true(json_object_get(r, "act_order")) ? ", act-order" : "", li.file_bytes / 1e6, li.n_w4,
                   li.n_q);
            printf("layout:      %d of %d in the fused kernels' mma layout (lq-mma-w4), %d as bit streams\n",
                   li.n_mma, li.n_q, li.n_q - li.n_mma);
            const json_t *h = json_object_get(r, "lm_head");
            if (json_is_object(h)) {
                const char *hm = json_string_value(json_object_get(h, "method"));
                printf("lm_head:     quantized (%s %d-bit, group %lld, %s)%s\n", hm ? hm : "?",
                       (int)json_integer_value(json_object_get(h, "bits")),
                       (long long)json_integer_value(json_object_get(h, "group_size")),
                       json_is_true(json_object_get(h, "sym")) ? "symmetric" : "asymmetric",
                       json_is_true(json_object_get(h, "untied_from_embeddings"))
                           ? ", untied from the embeddings (they stay floating point)"
                           : "");
            } else {
                printf("lm_head:     floating point (not quantized)\n");
            }
            if (li.calib) {
                const char *ds = json_string_value(json_object_get(li.calib, "dataset"));
                printf("calibration: %s, %lld x %lld tokens, seed %lld\n", ds ? ds : "?",
                       (long long)json_integer_value(json_object_get(li.calib, "nsamples")),
                       (long long)json_integer_value(json_object_get(li.calib, "seqlen")),
                       (long long)json_integer_value(json_object_get(li.calib, "seed")));
            } else {
                printf("calibration: none (RTN)\n");
            }
            printf("(the tensors below are as loaded: quantized weights dequantized to F32)\n");
        }
        printf("tensors:     %d, %lld parameters (%.2f M), %.2f MB\n", ck->n_tensors, (long long)params,
               params / 1e6, bytes / 1e6);
        for (int i = 0; i < ck->n_tensors; i++) {
            const lq_tensor_info *t = &ck->tensors[i];
            char sh[96] = "", *p = sh;
            for (int d = 0; d < t->ndim; d++) p += sprintf(p, d ? ", %lld" : "%lld", (long long)t->shape[d]);
            printf("  %-56s %-5s [%s]\n", t->name, lq_dtype_name(t->dtype), sh);
        }
    }
    if (li.recipe) json_decref(li.recipe);
    if (li.calib) json_decref(li.calib);
    lq_checkpoint_free(ck);
    return 0;
}
