/* test_model_gpu.c — the CUDA engine (kernels/engine_cuda.cu) on stories260K
 * against Hugging Face transformers' float64 golden outputs
 * (../shared/golden/stories260K) and against itself:
 *   - logits of the five golden stories: fp32 weights within 2e-4 of
 *     golden (max abs); fp16 within 0.1 max / 0.01 rms, bf16 within 0.75 /
 *     0.08, also against the CPU reference on the same rounded weights (why
 *     not 2e-2 for fp16: see the bounds below);
 *   - perplexity at n_ctx 64/128/256 within 1e-4 of golden.json (fp32),
 *     0.5% (fp16), 2% (bf16);
 *   - the greedy continuation of golden.json (prefill + graph decode) equal
 *     to its ids with fp32 weights;
 *   - graph decode = non-graph decode = prefill logits; chunked prefill =
 *     one prefill; batch of 3 = each alone; chunked score = the CPU engine;
 *   - the W4A16 engine (RTN-4 in memory, .lqq files in both packings), with
 *     and without a packed head (lq quantize --lm-head);
 *   - fp32 compute over fp16 / bf16 weights: the CPU reference on the same
 *     rounded weights to 2e-4, and within 2e-2 of golden with fp16 weights;
 *   - argument errors, out-of-memory reporting, and device_count() == 0
 *     without a GPU (this one runs everywhere).
 * Without a GPU the GPU cases print "skipped: no CUDA device"; with
 * LQ_REQUIRE_GPU=1 (make test-gpu) they fail instead.
 * Run: make test-gpu, or build/tests/test_model_gpu. */
#include "lq_test.h"

#include "../formats/lq_formats.h"
#include "../kernels/lq_cuda.h"
#include "../libquant/lq_eval.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_synth.h"

static char g_lq[1024] = "build/lq"; /* the lq binary, for the tests that write a file with it */

typedef struct {
    lq_model *m;
    lq_checkpoint *golden;
    json_t *gjson;
    char *sample;
    size_t n_sample;
    int n_gpu;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    f->n_gpu = lq_cuda_device_count();
    char p[1024];
    if (f->n_gpu > 0) {
        char desc[512];
        if (lq_cuda_device_describe(0, desc, sizeof desc) == LQ_OK) print_message("device: %s\n", desc);
    }
    if (!lq_test_shared_path(p, sizeof p, "models/stories260K/config.json")) return 0;
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    if (lq_model_load(p, &f->m) != LQ_OK) print_message("load %s: %s\n", p, lq_last_error());
    lq_test_shared_path(p, sizeof p, "golden/stories260K/golden.safetensors");
    if (lq_safetensors_open(p, &f->golden) != LQ_OK) print_message("load %s: %s\n", p, lq_last_error());
    lq_test_shared_path(p, sizeof p, "golden/stories260K/golden.json");
    f->gjson = json_load_file(p, 0, NULL);
    lq_test_shared_path(p, sizeof p, "datasets/tinystories/sample.txt");
    if (lq_read_file(p, &f->sample, &f->n_sample) != LQ_OK) f->sample = NULL;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    lq_model_free(f->m);
    lq_checkpoint_free(f->golden);
    if (f->gjson) json_decref(f->gjson);
    free(f->sample);
    free(f);
    return 0;
}

#define NEED(f)                                                                                          \
    do {                                                                                                 \
        LQ_SKIP_IF_NO_GPU((f)->n_gpu);                                                                   \
        if (!(f)->m || !(f)->golden || !(f)->gjson || !(f)->sample) {                                    \
            print_message("skipped: stories260K model/golden data not found under %s\n", lq_test_shared()); \
            skip();                                                                                      \
        }                                                                                                \
    } while (0)

static const char *dtn(int dt) { return dt == LQ_F32 ? "fp32" : dt == LQ_F16 ? "fp16" : "bf16"; }

static lq_engine *new_engine(fixture *f, int dt, int graph, int B, int ctx) {
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    o.weight_dtype = dt;
    o.use_graph = graph;
    lq_engine *e = NULL;
    lq_status st = lq_cuda_engine_new(f->m, &o, B, ctx, &e);
    if (st != LQ_OK) print_message("lq_cuda_engine_new: %s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    return e;
}

/* Bounds on the logits of the five golden stories per weight dtype, asserted
 * after every number is printed. Measured on an H100 (bench/results/):
 *                 max |gpu-golden|  rms     max |gpu - cpu on the same rounded weights|
 *   fp32 weights  7.0e-5            4.4e-6  3.8e-5
 *   fp16 weights  0.080             0.0054  0.072
 *   bf16 weights  0.51              0.042   0.48
 * A max-abs bound of 2e-2 for fp16 is below what fp16 can do here: rounding
 * the weights alone costs 0.0235 (exact arithmetic after it), and the fp16 KV
 * cache alone 0.056 (softmax turns key rounding into probability errors);
 * kernels/dev/error_budget.c simulates each rounding point on the CPU (all
 * of them together: 0.065). Perplexity stays within 5e-5 of golden. */
static double logit_bound(int dt) { return dt == LQ_F32 ? 2e-4 : dt == LQ_F16 ? 0.1 : 0.75; }
static double engine_bound(int dt) { return dt == LQ_F32 ? 2e-4 : dt == LQ_F16 ? 0.1 : 0.75; }
static double rms_bound(int dt) { return dt == LQ_F32 ? 2e-5 : dt == LQ_F16 ? 0.01 : 0.08; }

/* CPU reference logits of story s with the model's weights rounded to dt. */
static float *cpu_logits_rounded(lq_model *m, const lq_tensor_info *tt, int dt) {
    int T = (int)tt->shape[0];
    lq_runstate *rs = NULL;
    assert_int_equal(lq_runstate_new(m, 1, T, T, &rs), LQ_OK);
    assert_int_equal(lq_forward(m, rs, (const int32_t *)tt->data, 1, T, 0, 0), LQ_OK);
    float *out = malloc(sizeof(float) * (size_t)T * 512);
    memcpy(out, rs->logits, sizeof(float) * (size_t)T * 512);
    lq_runstate_free(rs);
    (void)dt;
    return out;
}

/* Golden story s through engine e and the CPU reference mr (its weights already rounded as the caller's
 * engine stores them, dtype dt): max |gpu - golden| (*mg), |gpu - cpu| (*mc), |cpu - golden| (*mw); adds the
 * squared gpu - golden differences to *sq and the logits compared to *cnt. Returns the story's length. */
static int golden_story(const fixture *f, lq_engine *e, lq_model *mr, int s, int dt, double *mg, double *mc,
                        double *mw, double *sq, size_t *cnt) {
    char tn[32], ln[32];
    snprintf(tn, sizeof tn, "tokens.%d", s);
    snprintf(ln, sizeof ln, "logits.%d", s);
    const lq_tensor_info *tt = lq_checkpoint_find(f->golden, tn), *lt = lq_checkpoint_find(f->golden, ln);
    assert_non_null(tt);
    assert_non_null(lt);
    const int T = (int)tt->shape[0];
    const size_t n = (size_t)T * 512;
    float *lg = malloc(sizeof(float) * n);
    assert_non_null(lg);
    for (size_t i = 0; i < n; i++) lg[i] = NAN;
    assert_int_equal(e->logits(e, (const int32_t *)tt->data, 1, T, lg), LQ_OK);
    float *ref = cpu_logits_rounded(mr, tt, dt);
    const float *gold = (const float *)lt->data;
    double rr;
    lq_test_errors(lg, gold, n, mg, &rr);
    lq_test_errors(lg, ref, n, mc, &rr);
    lq_test_errors(ref, gold, n, mw, &rr);
    for (size_t i = 0; i < n; i++) *sq += ((double)lg[i] - gold[i]) * ((double)lg[i] - gold[i]);
    *cnt += n;
    free(lg);
    free(ref);
    return T;
}

static void test_model_gpu_golden_logits(void **state) {
    fixture *f = *state;
    NEED(f);
    const int dts[3] = {LQ_F32, LQ_F16, LQ_BF16};
    double worst_g[3] = {0}, worst_c[3] = {0}, rms_g[3] = {0};
    char p[1024];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    for (int di = 0; di < 3; di++) {
        lq_engine *e = new_engine(f, dts[di], 1, 1, 512);
        lq_model *mr = NULL; /* the CPU reference on the same rounded weights */
        assert_int_equal(lq_model_load(p, &mr), LQ_OK);
        for (size_t i = 0; i < mr->w.n_floats; i++) {
            float x = mr->w.mem[i];
            if (dts[di] == LQ_F16) mr->w.mem[i] = lq_f16_to_f32(lq_f32_to_f16(x));
            if (dts[di] == LQ_BF16) mr->w.mem[i] = lq_bf16_to_f32(lq_f32_to_bf16(x));
        }
        double sq = 0;
        size_t cnt = 0;
        for (int s = 0; s < 5; s++) {
            double mg, mc, mw;
            const int T = golden_story(f, e, mr, s, dts[di], &mg, &mc, &mw, &sq, &cnt);
            print_message("%s logits.%d: T=%d max |gpu - golden| %.3g, |gpu - cpu same weights| %.3g, "
                          "|cpu same weights - golden| %.3g\n", dtn(dts[di]), s, T, mg, mc, mw);
            if (mg > worst_g[di]) worst_g[di] = mg;
            if (mc > worst_c[di]) worst_c[di] = mc;
        }
        rms_g[di] = sqrt(sq / (double)cnt);
        lq_model_free(mr);
        lq_engine_free(e);
    }
    for (int di = 0; di < 3; di++)
        print_message("%s weights: max |logit - golden| %.3g (bound %.2g), rms %.3g (bound %.2g); max |gpu - cpu same "
                      "weights| %.3g (bound %.2g)\n", dtn(dts[di]), worst_g[di], logit_bound(dts[di]), rms_g[di],
                      rms_bound(dts[di]), worst_c[di], engine_bound(dts[di]));
    for (int di = 0; di < 3; di++) {
        assert_true(worst_g[di] <= logit_bound(dts[di]));
        assert_true(rms_g[di] <= rms_bound(dts[di]));
        assert_true(worst_c[di] <= engine_bound(dts[di]));
    }
}

static void test_model_gpu_golden_ppl(void **state) {
    fixture *f = *state;
    NEED(f);
    if (!f->m->tok) {
        print_message("skipped: the model has no tokenizer\n");
        skip();
    }
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(lq_tokenizer_encode(f->m->tok, f->sample, f->n_sample, 1, &ids, &n), LQ_OK);
    json_t *arr = json_object_get(json_object_get(f->gjson, "ppl"), "stories");
    assert_true(json_array_size(arr) == 3);
    const int dts[3] = {LQ_F32, LQ_F16, LQ_BF16};
    for (int di = 0; di < 3; di++)
        for (size_t i = 0; i < 3; i++) {
            json_t *g = json_array_get(arr, i);
            int ctx = (int)json_integer_value(json_object_get(g, "n_ctx"));
            assert_int_equal((long)n, (long)json_integer_value(json_object_get(g, "n_tokens_total")));
            lq_engine *e = new_engine(f, dts[di], 1, 8, ctx);
            lq_ppl_opts o = {ctx, 0, 0, NULL, NULL};
            lq_ppl_result r;
            assert_int_equal(lq_ppl_eval(e, ids, n, &o, &r), LQ_OK);
            lq_engine_free(e);
            double want = json_real_value(json_object_get(g, "ppl")), rel = fabs(r.ppl / want - 1);
            double bound = dts[di] == LQ_F32 ? 1e-4 : dts[di] == LQ_F16 ? 5e-3 : 2e-2;
            print_message("%s ppl n_ctx %d: %.6f golden %.6f rel %.2e (bound %.0e)\n", dtn(dts[di]), ctx, r.ppl, want,
                          rel, bound);
            assert_int_equal(r.windows, (int)json_integer_value(json_object_get(g, "windows")));
            assert_int_equal((long)r.scored, (long)json_integer_value(json_object_get(g, "scored")));
            assert_true(rel <= bound);
        }
    free(ids);
}

/* Prefill the prompt with one step, then decode token by token (graph). */
static int greedy_run(fixture *f, int dt, int32_t *all, size_t n_prompt, size_t total) {
    lq_engine *e = new_engine(f, dt, 1, 1, (int)total);
    float *lg = malloc(sizeof(float) * 512);
    lq_sampler smp = {0, 1, 0};
    json_t *want = json_object_get(json_object_get(f->gjson, "greedy"), "ids");
    int match = 0;
    for (size_t i = n_prompt; i < total; i++) {
        int pos = i == n_prompt ? 0 : (int)i - 1, T = i == n_prompt ? (int)n_prompt : 1;
        assert_int_equal(e->step(e, all + pos, 1, T, pos, lg), LQ_OK);
        all[i] = lq_sample(&smp, lg, 512);
        if (all[i] == json_integer_value(json_array_get(want, i)) && match == (int)(i - n_prompt)) match++;
    }
    free(lg);
    lq_engine_free(e);
    return match; /* leading generated tokens equal to golden */
}

static void test_model_gpu_golden_greedy(void **state) {
    fixture *f = *state;
    NEED(f);
    json_t *g = json_object_get(f->gjson, "greedy");
    json_t *pids = json_object_get(g, "prompt_ids"), *want = json_object_get(g, "ids");
    size_t n = json_array_size(pids), total = json_array_size(want);
    assert_true(total > n && n > 0);
    int32_t *all = calloc(total, sizeof *all);
    const int dts[3] = {LQ_F32, LQ_F16, LQ_BF16};
    for (int di = 0; di < 3; di++) {
        for (size_t i = 0; i < n; i++) all[i] = (int32_t)json_integer_value(json_array_get(pids, i));
        int match = greedy_run(f, dts[di], all, n, total);
        print_message("%s greedy: %d of %zu generated tokens equal golden.json's\n", dtn(dts[di]), match, total - n);
        if (dts[di] == LQ_F32) {
            for (size_t i = 0; i < total; i++) assert_int_equal(all[i], json_integer_value(json_array_get(want, i)));
            if (f->m->tok) {
                char *text = NULL;
                size_t tl;
                assert_int_equal(lq_tokenizer_decode(f->m->tok, all, total, 1, &text, &tl), LQ_OK);
                assert_string_equal(text, json_string_value(json_object_get(g, "text")));
                free(text);
            }
        }
    }
    free(all);
}

/* Decode bound per dtype: decode and prefill run different attention kernels
 * and GEMM shapes, so 16-bit activations may round differently. */
/* fp16: decode and prefill round the same fp16 activations but sum in other
 * orders (lq's GEMV for decode, cuBLAS for prefill): measured 1.0e-2 with
 * cuBLAS on both sides (H100), 2.0e-2 with the GEMV (H200), on logits of
 * magnitude ~10 */
/* bf16 (8-bit mantissa): over 21 seeds on the H200 (2026-12-01) the worst step
 * was 0.063 for 20 of them and 0.157 for LQ_TEST_SEED=1775411173 (t = 34, one
 * logit of 1536 above 0.1; the same bits from the code of before that day's
 * kernel changes), against logits of magnitude ~5 whose bf16 engine differs
 * from the float64 golden by up to 0.51: a rounding flip of one bf16
 * activation, amplified over five layers. 0.25 keeps that seed from failing. */
static double self_bound(int dt) { return dt == LQ_F32 ? 1e-4 : dt == LQ_F16 ? 4e-2 : 2.5e-1; }

/* Decode B sequences of T random tokens step by step on eg (a graph engine) and, when en is not NULL,
 * on en (no graph) too, against eg's prefill logits of the same tokens (pre (B, T, V), filled here):
 * graph decode within `bound` of prefill, graph within 1e-6 of plain decode. Returns the worst
 * decode-vs-prefill difference; *worst_ng the worst graph-vs-plain one. */
static double decode_vs_prefill(lq_engine *eg, lq_engine *en, const int32_t *tok, int B, int T, float *pre,
                                double bound, const char *label, double *worst_ng) {
    const int V = eg->vocab_size;
    float *lg = malloc(sizeof(float) * B * V), *lg2 = malloc(sizeof(float) * B * V),
          *want = malloc(sizeof(float) * B * V);
    int32_t col[8];
    assert_true(lg && lg2 && want && B <= 8);
    assert_int_equal(eg->logits(eg, tok, B, T, pre), LQ_OK);
    double worst = 0;
    *worst_ng = 0;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            col[b] = tok[b * T + t];
            memcpy(want + (size_t)b * V, pre + ((size_t)b * T + t) * V, sizeof(float) * V);
        }
        assert_int_equal(eg->step(eg, col, B, 1, t, lg), LQ_OK);
        char what[96];
        snprintf(what, sizeof what, "%s graph decode vs prefill, t=%d", label, t);
        assert_int_equal(lq_test_compare(what, lg, want, (size_t)B * V, bound, 0), 0);
        double d = lq_test_max_abs(lg, want, (size_t)B * V);
        if (d > worst) worst = d;
        if (en) {
            assert_int_equal(en->step(en, col, B, 1, t, lg2), LQ_OK);
            snprintf(what, sizeof what, "%s graph vs plain decode, t=%d", label, t);
            assert_int_equal(lq_test_compare(what, lg, lg2, (size_t)B * V, 1e-6, 1e-6), 0);
            double d2 = lq_test_max_abs(lg, lg2, (size_t)B * V);
            if (d2 > *worst_ng) *worst_ng = d2;
        }
    }
    free(lg);
    free(lg2);
    free(want);
    return worst;
}

static void test_model_gpu_decode_equals_prefill(void **state) {
    fixture *f = *state;
    NEED(f);
    const int B = 3, T = 40, V = 512;
    uint64_t seed = lq_test_seed();
    int32_t tok[3 * 40];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % V);
    float *pre = malloc(sizeof(float) * B * T * V), *lg = malloc(sizeof(float) * B * V),
          *want = malloc(sizeof(float) * B * V);
    const int dts[3] = {LQ_F32, LQ_F16, LQ_BF16};
    for (int di = 0; di < 3; di++) {
        int dt = dts[di];
        lq_engine *eg = new_engine(f, dt, 1, B, T), *en = new_engine(f, dt, 0, B, T);
        double worst_ng, worst = decode_vs_prefill(eg, en, tok, B, T, pre, self_bound(dt), dtn(dt), &worst_ng);
        print_message("%s: B=%d decode (graph) vs prefill over %d steps: max abs %.3g; graph vs no graph %.3g\n",
                      dtn(dt), B, T, worst, worst_ng);
        /* chunked prompt: 17 then 23 tokens; the last logits equal the prefill's last row */
        int32_t part[3 * 23];
        for (int b = 0; b < B; b++) memcpy(part + b * 17, tok + b * T, sizeof(int32_t) * 17);
        assert_int_equal(en->step(en, part, B, 17, 0, lg), LQ_OK);
        for (int b = 0; b < B; b++) {
            memcpy(part + b * 23, tok + b * T + 17, sizeof(int32_t) * 23);
            memcpy(want + (size_t)b * V, pre + ((size_t)b * T + T - 1) * V, sizeof(float) * V);
        }
        assert_int_equal(en->step(en, part, B, 23, 17, lg), LQ_OK);
        double d = lq_test_max_abs(lg, want, (size_t)B * V);
        print_message("%s: prompt in two steps (17 + 23) vs one prefill: max abs %.3g\n", dtn(dt), d);
        assert_int_equal(lq_test_compare("two-step prompt", lg, want, (size_t)B * V, self_bound(dt), 0), 0);
        lq_engine_free(eg);
        lq_engine_free(en);
    }
    free(pre);
    free(lg);
    free(want);
}


/* fp32 compute over 16-bit weights (lq_cuda_engine_opts.compute_dtype = F32):
 * the weights stay fp16 / bf16 on the device, activations and the KV cache are
 * fp32, each product widens the weights (lq_matmul_w16_f32_cuda). The only
 * rounding left is the weights' own, so the engine must agree with the CPU
 * reference on the same rounded weights (the linears, the embedding and the
 * head; norm weights stay fp32, as the engine stores them) to fp32 precision,
 * and with fp16 weights the logits come within 2e-2 of the float64 golden —
 * the bound, which fp16 activations and KV cache cannot meet here
 * (kernels/dev/error_budget.c: the weights' rounding alone 0.0174, the fp16 KV
 * cache alone 0.0557). Prefill logits, graph decode vs prefill, and the greedy
 * continuation. */
static void round16(int dt, float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = dt == LQ_F16 ? lq_f16_to_f32(lq_f32_to_f16(x[i])) : lq_bf16_to_f32(lq_f32_to_bf16(x[i]));
}

static void round_like_engine(lq_model *m, int dt) {
    const lq_config *c = &m->cfg;
    const size_t D = c->dim, H = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim,
                 kvd = (size_t)c->n_kv_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        lq_layer_weights *L = &m->w.layers[l];
        float *t[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        const size_t n[7] = {qd * D, kvd * D, kvd * D, D * qd, H * D, H * D, D * H};
        for (int i = 0; i < 7; i++) round16(dt, t[i], n[i]);
    }
    round16(dt, m->w.embed, (size_t)c->vocab_size * D);
    if (m->w.lm_head != m->w.embed) round16(dt, m->w.lm_head, (size_t)c->vocab_size * D);
}

static lq_engine *new_engine_f32c(fixture *f, int wdt, int graph, int B, int ctx) {
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    o.weight_dtype = wdt;
    o.compute_dtype = LQ_F32;
    o.use_graph = graph;
    lq_engine *e = NULL;
    lq_status st = lq_cuda_engine_new(f->m, &o, B, ctx, &e);
    if (st != LQ_OK) print_message("lq_cuda_engine_new: %s\n", lq_last_error());
    assert_int_equal(st, LQ_OK);
    assert_non_null(strstr(e->desc, "fp32 compute"));
    return e;
}

static void test_model_gpu_f32_compute(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    const int wdts[2] = {LQ_F16, LQ_BF16};
    for (int di = 0; di < 2; di++) {
        const int wdt = wdts[di];
        lq_engine *e = new_engine_f32c(f, wdt, 1, 1, 512);
        lq_model *mr = NULL;
        assert_int_equal(lq_model_load(p, &mr), LQ_OK);
        round_like_engine(mr, wdt);
        double worst_g = 0, worst_c = 0, worst_w = 0, sq = 0;
        size_t cnt = 0;
        for (int s = 0; s < 5; s++) {
            double mg, mc, mw;
            const int T = golden_story(f, e, mr, s, wdt, &mg, &mc, &mw, &sq, &cnt);
            print_message("%s weights, fp32 compute, logits.%d: T=%d max |gpu - golden| %.4g, |gpu - cpu same "
                          "weights| %.3g, |cpu same weights - golden| %.4g\n", dtn(wdt), s, T, mg, mc, mw);
            if (mg > worst_g) worst_g = mg;
            if (mc > worst_c) worst_c = mc;
            if (mw > worst_w) worst_w = mw;
        }
        print_message("%s weights, fp32 compute: max |logit - golden| %.4g (cpu on the same weights %.4g%s), max |gpu "
                      "- cpu same weights| %.3g (bound 2e-4)\n", dtn(wdt), worst_g, worst_w,
                      wdt == LQ_F16 ? "; bound 2e-2" : "", worst_c);
        assert_true(worst_c <= 2e-4);
        if (wdt == LQ_F16) assert_true(worst_g <= 2e-2);
        lq_model_free(mr);
        lq_engine_free(e);

        /* graph decode vs prefill: fp32 activations on both sides (fp32 bound) */
        const int B = 2, T = 24;
        uint64_t seed = lq_test_seed();
        int32_t tok[2 * 24];
        for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % 512);
        float *pre = malloc(sizeof(float) * B * T * 512);
        lq_engine *eg = new_engine_f32c(f, wdt, 1, B, T);
        char label[48];
        snprintf(label, sizeof label, "%s/fp32 compute", dtn(wdt));
        double ng, worst = decode_vs_prefill(eg, NULL, tok, B, T, pre, 1e-4, label, &ng);
        print_message("%s weights, fp32 compute: B=%d decode (graph) vs prefill over %d steps: max abs %.3g\n",
                      dtn(wdt), B, T, worst);
        lq_engine_free(eg);
        free(pre);
    }
    /* the greedy continuation of golden.json with fp16 weights: every id */
    json_t *g = json_object_get(f->gjson, "greedy");
    json_t *pids = json_object_get(g, "prompt_ids"), *want = json_object_get(g, "ids");
    size_t n = json_array_size(pids), total = json_array_size(want);
    int32_t *all = calloc(total, sizeof *all);
    for (size_t i = 0; i < n; i++) all[i] = (int32_t)json_integer_value(json_array_get(pids, i));
    lq_engine *e = new_engine_f32c(f, LQ_F16, 1, 1, (int)total);
    float *lg = malloc(sizeof(float) * 512);
    lq_sampler smp = {0, 1, 0};
    for (size_t i = n; i < total; i++) {
        int pos = i == n ? 0 : (int)i - 1, T = i == n ? (int)n : 1;
        assert_int_equal(e->step(e, all + pos, 1, T, pos, lg), LQ_OK);
        all[i] = lq_sample(&smp, lg, 512);
    }
    for (size_t i = 0; i < total; i++) assert_int_equal(all[i], json_integer_value(json_array_get(want, i)));
    free(lg);
    free(all);
    lq_engine_free(e);
}

/* compute dtypes other than the weights' own or F32 over 16-bit weights are refused, naming both */
static void test_model_gpu_compute_dtype_errors(void **state) {
    fixture *f = *state;
    NEED(f);
    const int bad[3][2] = {{LQ_F32, LQ_F16}, {LQ_F16, LQ_BF16}, {LQ_BF16, LQ_F16}};
    for (int i = 0; i < 3; i++) {
        lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
        o.weight_dtype = bad[i][0];
        o.compute_dtype = bad[i][1];
        lq_engine *e = NULL;
        assert_int_equal(lq_cuda_engine_new(f->m, &o, 1, 16, &e), LQ_ERR_UNSUPPORTED);
        assert_null(e);
        assert_non_null(strstr(lq_last_error(), "compute dtype"));
    }
}

/* W4A16: stories260K RTN-quantized in memory (4-bit, group 32, asymmetric; the
 * down projection's K = 172 ends in a partial group). The engine runs the
 * packed linears through the fused kernels; against the same engine on the
 * dequantized weights (the fp16 path: the same fp16 weight values, other
 * summation order) the logits agree to fp16 noise, against the CPU reference
 * on the dequantized fp32 weights as closely as fp16 weights allow, and the
 * perplexity within 0.5% (the bound); graph decode equals prefill. */
static void w4a16_engine_case(lq_model *m4, int B, int T) {
    const int V = m4->cfg.vocab_size;
    uint64_t seed = lq_test_seed();
    int32_t *tok = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % (uint64_t)V);
    float *l4 = malloc(sizeof(float) * B * T * V), *lf = malloc(sizeof(float) * B * T * V),
          *lc = malloc(sizeof(float) * B * T * V);
    double *n4 = malloc(sizeof(double) * B * (T - 1)), *nc = malloc(sizeof(double) * B * (T - 1));
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    lq_engine *e4 = NULL, *ef = NULL, *ec = NULL;
    assert_int_equal(lq_cuda_engine_new(m4, &o, B, T, &e4), LQ_OK);
    print_message("engine: %s\n", e4->desc);
    assert_non_null(strstr(e4->desc, "W4A16"));
    const lq_qweight **qw = m4->qw, *qh = m4->qhead;
    m4->qw = NULL; /* the same model through the fp16 path (a packed head: its dequantized values in fp16) */
    m4->qhead = NULL;
    assert_int_equal(lq_cuda_engine_new(m4, &o, B, T, &ef), LQ_OK);
    m4->qw = qw;
    m4->qhead = qh;
    assert_true((strstr(e4->desc, "W4A16 lm_head") != NULL) == (qh != NULL));
    assert_null(strstr(ef->desc, "W4A16"));
    assert_int_equal(lq_engine_cpu_new(m4, B, T, &ec), LQ_OK);
    assert_int_equal(e4->logits(e4, tok, B, T, l4), LQ_OK);
    assert_int_equal(ef->logits(ef, tok, B, T, lf), LQ_OK);
    assert_int_equal(ec->logits(ec, tok, B, T, lc), LQ_OK);
    size_t n = (size_t)B * T * V;
    double d_f = lq_test_max_abs(l4, lf, n), d_c = lq_test_max_abs(l4, lc, n);
    print_message("W4A16 logits: max abs vs fp16 path %.3g, vs CPU reference %.3g\n", d_f, d_c);
    assert_int_equal(lq_test_compare("w4a16 vs fp16 path", l4, lf, n, 2e-2, 0), 0);
    assert_int_equal(lq_test_compare("w4a16 vs cpu", l4, lc, n, logit_bound(LQ_F16), 0), 0);
    assert_int_equal(e4->score(e4, tok, B, T, n4), LQ_OK);
    assert_int_equal(ec->score(ec, tok, B, T, nc), LQ_OK);
    double s4 = 0, sc = 0;
    for (int i = 0; i < B * (T - 1); i++) s4 += n4[i], sc += nc[i];
    double ppl4 = exp(s4 / (B * (T - 1))), pplc = exp(sc / (B * (T - 1)));
    print_message("W4A16 ppl (random tokens) GPU %.6f CPU %.6f: rel %.2e\n", ppl4, pplc, fabs(ppl4 / pplc - 1));
    assert_true(fabs(ppl4 / pplc - 1) < 5e-3);
    /* graph decode (the fused kernels captured) vs the prefill rows (recomputed into l4: the same bits) */
    double ng, worst = decode_vs_prefill(e4, NULL, tok, B, T, l4, self_bound(LQ_F16), "W4A16", &ng);
    print_message("W4A16 graph decode vs prefill over %d steps: max abs %.3g\n", T, worst);
    lq_engine_free(e4);
    lq_engine_free(ef);
    lq_engine_free(ec);
    free(tok);
    free(l4);
    free(lf);
    free(lc);
    free(n4);
    free(nc);
}

static void test_model_gpu_w4a16_engine(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_model *m4 = NULL;
    assert_int_equal(lq_model_load(p, &m4), LQ_OK);
    lq_quant_params qp = {4, 32, 0};
    assert_int_equal(lq_model_quantize_rtn(m4, &qp), LQ_OK);
    w4a16_engine_case(m4, 2, 64);
    lq_model_free(m4);
}

/* The packed head (lq quantize --lm-head) on the W4A16 engine: every linear and the head RTN-4 g32 asym.
 * w4a16_engine_case checks the logits against the fp16 engine on the same dequantized weights (2e-2), the
 * CPU reference with the dequantized head (0.1), the perplexity and graph decode (the head's M = B
 * product) against prefill. The head must be the quantized one: the CPU reference with the float head
 * instead differs by far more than those bounds (asserted, so that the comparison can tell them apart), and
 * the engine is closer to the dequantized head's logits than to the float head's. A packed-only load of
 * the same model from a --lm-head file (no fp32 head on the host) gives the same logits, fused (fp16) and
 * dequantized at upload (fp32 weights). */
static void test_model_gpu_w4a16_lm_head(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024], out[256], cmd[4096];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_model *m4 = NULL, *mf = NULL; /* m4: linears + head quantized; mf: the same linears, the float head */
    assert_int_equal(lq_model_load(p, &m4), LQ_OK);
    assert_int_equal(lq_model_load(p, &mf), LQ_OK);
    lq_quant_params qp = {4, 32, 0};
    assert_int_equal(lq_model_quantize_rtn(m4, &qp), LQ_OK);
    assert_int_equal(lq_model_quantize_head_rtn(m4, &qp), LQ_OK);
    assert_int_equal(lq_model_quantize_rtn(mf, &qp), LQ_OK);
    w4a16_engine_case(m4, 2, 64);
    const int B = 2, T = 64, V = m4->cfg.vocab_size;
    const size_t n = (size_t)B * T * V;
    uint64_t seed = lq_test_seed();
    int32_t *tok = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % (uint64_t)V);
    float *l4 = malloc(sizeof(float) * n), *lc = malloc(sizeof(float) * n), *lh = malloc(sizeof(float) * n),
          *lp = malloc(sizeof(float) * n);
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    lq_engine *e4 = NULL, *ec = NULL, *eh = NULL;
    assert_int_equal(lq_cuda_engine_new(m4, &o, B, T, &e4), LQ_OK);
    assert_non_null(strstr(e4->desc, "W4A16 lm_head"));
    assert_int_equal(lq_engine_cpu_new(m4, B, T, &ec), LQ_OK);
    assert_int_equal(lq_engine_cpu_new(mf, B, T, &eh), LQ_OK);
    assert_int_equal(e4->logits(e4, tok, B, T, l4), LQ_OK);
    assert_int_equal(ec->logits(ec, tok, B, T, lc), LQ_OK);
    assert_int_equal(eh->logits(eh, tok, B, T, lh), LQ_OK);
    const double d_c = lq_test_max_abs(l4, lc, n), d_h = lq_test_max_abs(l4, lh, n), d_ref = lq_test_max_abs(lc, lh, n);
    print_message("W4A16 head: engine vs CPU (dequantized head) %.3g, vs CPU (float head) %.3g; the two CPU "
                  "references differ by %.3g\n", d_c, d_h, d_ref);
    assert_true(d_ref > 5 * logit_bound(LQ_F16)); /* the check below can tell a float head from the packed one */
    assert_int_equal(lq_test_compare("w4a16 head vs cpu", l4, lc, n, logit_bound(LQ_F16), 0), 0);
    assert_true(d_h > d_c);
    /* packed-only from a file: the same logits */
    if (access(g_lq, X_OK) == 0) {
        snprintf(out, sizeof out, "/tmp/lq_test_gpu_head_%d.lqq", (int)getpid());
        snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 4 --group 32 --asym --lm-head --quiet "
                 "> /dev/null", g_lq, p, out);
        assert_int_equal(system(cmd), 0);
        lq_model *mp = NULL, *mfull = NULL;
        assert_int_equal(lq_model_load_ex(out, LQ_LOAD_PACKED_ONLY, &mp), LQ_OK);
        assert_int_equal(lq_model_load(out, &mfull), LQ_OK);
        assert_null(mp->w.lm_head);
        assert_non_null(mp->qhead);
        lq_engine *ep = NULL, *ef = NULL;
        assert_int_equal(lq_cuda_engine_new(mp, &o, B, T, &ep), LQ_OK);
        print_message("packed-only: %s\n", ep->desc);
        assert_non_null(strstr(ep->desc, "W4A16 lm_head"));
        assert_int_equal(ep->logits(ep, tok, B, T, lp), LQ_OK);
        assert_memory_equal(lp, l4, sizeof(float) * n); /* the same codes as the in-memory RTN */
        lq_engine_free(ep);
        lq_cuda_engine_opts o32 = o;
        o32.weight_dtype = LQ_F32;
        assert_int_equal(lq_cuda_engine_new(mp, &o32, B, T, &ep), LQ_OK);
        assert_non_null(strstr(ep->desc, "lm_head dequantized"));
        assert_int_equal(lq_cuda_engine_new(mfull, &o32, B, T, &ef), LQ_OK);
        assert_int_equal(ep->logits(ep, tok, B, T, lp), LQ_OK);
        assert_int_equal(ef->logits(ef, tok, B, T, l4), LQ_OK);
        assert_memory_equal(lp, l4, sizeof(float) * n);
        /* fp32 weights, dequantized head: as close to the CPU reference as fp32 is */
        assert_int_equal(lq_test_compare("fp32 engine, dequantized head, vs cpu", lp, lc, n, logit_bound(LQ_F32), 0), 0);
        lq_engine_free(ep);
        lq_engine_free(ef);
        lq_model_free(mp);
        lq_model_free(mfull);
        unlink(out);
    } else {
        print_message("packed-only part skipped: %s not found (set LQ_BIN)\n", g_lq);
    }
    lq_engine_free(e4);
    lq_engine_free(ec);
    lq_engine_free(eh);
    lq_model_free(m4);
    lq_model_free(mf);
    free(tok);
    free(l4);
    free(lc);
    free(lh);
    free(lp);
}

/* The same checks on a random-weight model whose hidden size (256) is whole 64-row tiles: its gate|up pairs
 * are uploaded interleaved (lq_w4a16_upload_swiglu) and the SwiGLU runs in the wgmma kernel's epilogue
 * where the prefill has >= 384 rows on sm_90 (2 x 256 here), through lq_swiglu_cuda otherwise (decode). */
static void test_model_gpu_w4a16_engine_swiglu(void **state) {
    fixture *f = *state;
    NEED(f);
    const lq_synth_preset p = {"swiglu-test", "LlamaForCausalLM", 128, 256, 2, 4, 2, 32, 512, 512, 10000.0, 1, 0};
    lq_checkpoint *ck = NULL;
    lq_model *m4 = NULL;
    assert_int_equal(lq_synth_checkpoint(&p, LQ_F16, 7, &ck), LQ_OK);
    assert_int_equal(lq_model_from_checkpoint(ck, &m4), LQ_OK);
    lq_checkpoint_free(ck);
    lq_quant_params qp = {4, 64, 1};
    assert_int_equal(lq_model_quantize_rtn(m4, &qp), LQ_OK);
    w4a16_engine_case(m4, 2, 256);
    lq_model_free(m4);
}

static void test_model_gpu_batch_equals_single(void **state) {
    fixture *f = *state;
    NEED(f);
    const int B = 3, T = 64, V = 512;
    uint64_t seed = lq_test_seed();
    int32_t tok[3 * 64];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % V);
    float *bat = malloc(sizeof(float) * B * T * V), *one = malloc(sizeof(float) * T * V);
    const int dts[3] = {LQ_F32, LQ_F16, LQ_BF16};
    for (int di = 0; di < 3; di++) {
        int dt = dts[di];
        lq_engine *e = new_engine(f, dt, 1, B, T);
        assert_int_equal(e->logits(e, tok, B, T, bat), LQ_OK);
        double worst = 0;
        for (int b = 0; b < B; b++) {
            assert_int_equal(e->logits(e, tok + b * T, 1, T, one), LQ_OK);
            double d = lq_test_max_abs(bat + (size_t)b * T * V, one, (size_t)T * V);
            if (d > worst) worst = d;
            assert_int_equal(lq_test_compare("batch vs single", bat + (size_t)b * T * V, one, (size_t)T * V,
                                             self_bound(dt), 0),
                             0);
        }
        print_message("%s: batch of %d vs singles: max abs %.3g\n", dtn(dt), B, worst);
        lq_engine_free(e);
    }
    free(bat);
    free(one);
}

/* 16 sequences of 512 tokens exceed the 4096 activation rows: score and
 * logits run in two chunks and must equal the CPU reference engine. */
static void test_model_gpu_chunked_score_vs_cpu(void **state) {
    fixture *f = *state;
    NEED(f);
    const int B = 16, T = 512, V = 512;
    uint64_t seed = lq_test_seed();
    int32_t *tok = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % V);
    double *ng = malloc(sizeof(double) * B * (T - 1)), *nc = malloc(sizeof(double) * B * (T - 1));
    float *lg = malloc(sizeof(float) * B * T * V), *lc = malloc(sizeof(float) * B * T * V);
    lq_engine *cpu = NULL;
    assert_int_equal(lq_engine_cpu_new(f->m, B, T, &cpu), LQ_OK);
    assert_int_equal(cpu->score(cpu, tok, B, T, nc), LQ_OK);
    assert_int_equal(cpu->logits(cpu, tok, B, T, lc), LQ_OK);
    lq_engine *e = new_engine(f, LQ_F32, 1, B, T);
    for (size_t i = 0; i < (size_t)B * (T - 1); i++) ng[i] = NAN;
    assert_int_equal(e->score(e, tok, B, T, ng), LQ_OK);
    assert_int_equal(e->logits(e, tok, B, T, lg), LQ_OK);
    double mx = 0;
    for (size_t i = 0; i < (size_t)B * (T - 1); i++) {
        double d = fabs(ng[i] - nc[i]);
        if (isnan(d)) d = INFINITY;
        if (d > mx) mx = d;
    }
    double ml = lq_test_max_abs(lg, lc, (size_t)B * T * V);
    print_message("fp32 B=%d T=%d (chunked): max |nll gpu - cpu| %.3g, max |logit gpu - cpu| %.3g\n", B, T, mx, ml);
    assert_true(mx <= 1e-4);
    assert_int_equal(lq_test_compare("chunked logits vs cpu", lg, lc, (size_t)B * T * V, 1e-3, 0), 0);
    lq_engine_free(e);
    lq_engine_free(cpu);
    free(tok);
    free(ng);
    free(nc);
    free(lg);
    free(lc);
}

static void test_model_gpu_errors(void **state) {
    fixture *f = *state;
    NEED(f);
    lq_engine *e = new_engine(f, LQ_F16, 1, 2, 32);
    float lg[2 * 512];
    int32_t tok[4] = {1, 2, 3, 512};
    assert_int_equal(e->step(e, tok, 1, 4, 0, lg), LQ_ERR_ARG); /* id 512 is outside the vocabulary */
    assert_non_null(strstr(lq_last_error(), "outside the vocabulary"));
    assert_int_equal(e->step(e, tok, 1, 2, 31, lg), LQ_ERR_ARG); /* past the context */
    assert_int_equal(e->step(e, tok, 3, 1, 0, lg), LQ_ERR_ARG);  /* B > max_B */
    assert_int_equal(e->step(e, tok, 2, 1, 0, lg), LQ_OK);       /* still usable */
    lq_engine_free(e);
    /* out of GPU memory: a clear LQ_ERR_CUDA naming bytes asked and free, no engine */
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    e = (lq_engine *)1;
    assert_int_equal(lq_cuda_engine_new(f->m, &o, 4096, 1 << 20, &e), LQ_ERR_CUDA);
    assert_null(e);
    print_message("OOM: %s\n", lq_last_error());
    assert_non_null(strstr(lq_last_error(), "free"));
    /* the device is still fine afterwards */
    e = new_engine(f, LQ_F32, 1, 1, 8);
    assert_int_equal(e->step(e, tok, 1, 3, 0, lg), LQ_OK);
    lq_engine_free(e);
    o.weight_dtype = LQ_I8;
    assert_int_equal(lq_cuda_engine_new(f->m, &o, 1, 8, &e), LQ_ERR_UNSUPPORTED);
}

/* Runs everywhere: without a GPU (or without CUDA) the count is 0 and the
 * engine is refused with an error, never a crash. */
static void test_model_gpu_device_count(void **state) {
    fixture *f = *state;
    int n = lq_cuda_device_count();
    assert_true(n >= 0);
    assert_int_equal(n, f->n_gpu);
    print_message("lq_cuda_device_count() = %d\n", n);
    if (n == 0 && f->m) {
        lq_engine *e = (lq_engine *)1;
        lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
        lq_status st = lq_cuda_engine_new(f->m, &o, 1, 8, &e);
        assert_true(st == LQ_ERR_CUDA || st == LQ_ERR_UNSUPPORTED);
        assert_null(e);
        print_message("no GPU: %s\n", lq_last_error());
        char buf[64];
        assert_int_not_equal(lq_cuda_device_describe(0, buf, sizeof buf), LQ_OK);
    }
}

/* The same RTN-4 model from two .lqq files, one in the kernels' mma layout
 * (q|k|v, o and down assembled from the file's blocks; gate|up, 172 rows
 * each, repacked) and one as bit streams (all repacked): the device weights
 * are the same bits, so the logits are too. */
static void test_model_gpu_w4a16_mma_file(void **state) {
    fixture *f = *state;
    NEED(f);
    char mp[1024], a[256], b[256], cmd[4096];
    lq_test_shared_path(mp, sizeof mp, "models/stories260K");
    if (access(g_lq, X_OK) != 0) {
        print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);
        skip();
    }
    snprintf(a, sizeof a, "/tmp/lq_test_gpu_mma_%d.lqq", (int)getpid());
    snprintf(b, sizeof b, "/tmp/lq_test_gpu_bits_%d.lqq", (int)getpid());
    const char *out[2] = {a, b}, *pk[2] = {"auto", "bitstream"};
    const int B = 2, T = 48;
    float *lg[2] = {NULL, NULL};
    int32_t *tok = NULL;
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 4 --group 32 --sym --packing %s --quiet "
                 "> /dev/null", g_lq, mp, out[i], pk[i]);
        assert_int_equal(system(cmd), 0);
        lq_model *m = NULL;
        assert_int_equal(lq_model_load(out[i], &m), LQ_OK);
        assert_non_null(m->qw);
        assert_true((m->qw[0]->mma_qw != NULL) == (i == 0));
        const int V = m->cfg.vocab_size;
        if (!tok) {
            uint64_t seed = lq_test_seed();
            tok = malloc(sizeof(int32_t) * B * T);
            for (int t = 0; t < B * T; t++) tok[t] = (int32_t)(lq_test_next(&seed) % (uint64_t)V);
        }
        lg[i] = malloc(sizeof(float) * (size_t)B * T * V);
        lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
        lq_engine *e = NULL;
        assert_int_equal(lq_cuda_engine_new(m, &o, B, T, &e), LQ_OK);
        print_message("%s: %s\n", pk[i], e->desc);
        assert_non_null(strstr(e->desc, "W4A16 fused kernels on 20 of 20"));
        assert_int_equal(e->logits(e, tok, B, T, lg[i]), LQ_OK);
        /* packed-only (what lq ppl / eval / generate / bench load for a GPU run): the same logits with the
           fused kernels (fp16 weights) and with every linear dequantized at upload (f32 weights) */
        {
            const size_t nl = (size_t)B * T * V;
            lq_model *po = NULL;
            assert_int_equal(lq_model_load_ex(out[i], LQ_LOAD_PACKED_ONLY, &po), LQ_OK);
            assert_true(po->packed_only);
            float *lp = malloc(sizeof(float) * nl), *lf = malloc(sizeof(float) * nl);
            lq_engine *ep = NULL, *ef = NULL;
            assert_int_equal(lq_cuda_engine_new(po, &o, B, T, &ep), LQ_OK);
            assert_int_equal(ep->logits(ep, tok, B, T, lp), LQ_OK);
            assert_memory_equal(lp, lg[i], sizeof(float) * nl);
            lq_engine_free(ep);
            lq_cuda_engine_opts o32 = o;
            o32.weight_dtype = LQ_F32;
            assert_int_equal(lq_cuda_engine_new(m, &o32, B, T, &ef), LQ_OK);
            assert_int_equal(lq_cuda_engine_new(po, &o32, B, T, &ep), LQ_OK);
            assert_int_equal(ef->logits(ef, tok, B, T, lf), LQ_OK);
            assert_int_equal(ep->logits(ep, tok, B, T, lp), LQ_OK);
            assert_memory_equal(lp, lf, sizeof(float) * nl);
            lq_engine_free(ep);
            lq_engine_free(ef);
            lq_model_free(po);
            free(lp);
            free(lf);
        }
        if (i == 1) assert_memory_equal(lg[0], lg[1], sizeof(float) * (size_t)B * T * V);
        lq_engine_free(e);
        lq_model_free(m);
        unlink(out[i]);
    }
    free(lg[0]);
    free(lg[1]);
    free(tok);
}

/* lq eval's GPU path: lq_cuda_engines_kld (logits kept on the device) gives
 * the statistics lq_kld_token_ref computes from the same engines' host logits. */
static void test_model_gpu_engines_kld(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_model *mb = NULL, *mq = NULL;
    assert_int_equal(lq_model_load(p, &mb), LQ_OK);
    assert_int_equal(lq_model_load(p, &mq), LQ_OK);
    lq_quant_params qp = {4, 32, 1};
    assert_int_equal(lq_model_quantize_rtn(mq, &qp), LQ_OK);
    const int B = 3, T = 40, first = 7, R = T - 1 - first, V = mb->cfg.vocab_size;
    uint64_t seed = lq_test_seed();
    int32_t *tok = malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % (uint64_t)V);
    lq_cuda_engine_opts o = lq_cuda_engine_opts_default();
    lq_engine *eb = NULL, *eq = NULL;
    assert_int_equal(lq_cuda_engine_new(mb, &o, B, T, &eb), LQ_OK);
    assert_int_equal(lq_cuda_engine_new(mq, &o, B, T, &eq), LQ_OK);
    lq_kld_token *got = malloc(sizeof(lq_kld_token) * B * R);
    float *lb = malloc(sizeof(float) * (size_t)B * T * V), *lq = malloc(sizeof(float) * (size_t)B * T * V);
    assert_int_equal(lq_cuda_engines_kld(eb, eq, tok, B, T, first, got), LQ_OK);
    assert_int_equal(eb->logits(eb, tok, B, T, lb), LQ_OK);
    assert_int_equal(eq->logits(eq, tok, B, T, lq), LQ_OK);
    double sum_kld = 0, mx = 0;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < R; r++) {
            size_t row = (size_t)b * T + first + r;
            lq_kld_token w;
            lq_kld_token_ref(lb + row * V, lq + row * V, V, tok[row + 1], &w);
            const lq_kld_token *g = &got[b * R + r];
            const double a[4] = {g->nll_base, g->nll_q, g->kld, g->dp}, c[4] = {w.nll_base, w.nll_q, w.kld, w.dp};
            for (int k = 0; k < 4; k++) {
                double d = fabs(a[k] - c[k]);
                if (d > 1e-9 * (1 + fabs(c[k])))
                    fail_msg("window %d row %d field %d: GPU %.17g host %.17g", b, first + r, k, a[k], c[k]);
                if (d > mx) mx = d;
            }
            assert_int_equal(g->top_base, w.top_base);
            assert_int_equal(g->top_q, w.top_q);
            sum_kld += w.kld;
        }
    print_message("engines KLD: %d rows, mean KLD %.4f, max abs diff vs host %.3g\n", B * R, sum_kld / (B * R), mx);
    assert_true(sum_kld > 0);
    /* a CPU engine is refused by name */
    lq_engine *ec = NULL;
    assert_int_equal(lq_engine_cpu_new(mq, B, T, &ec), LQ_OK);
    assert_int_equal(lq_cuda_engines_kld(eb, ec, tok, B, T, first, got), LQ_ERR_ARG);
    lq_clear_error();
    lq_engine_free(ec);
    lq_engine_free(eb);
    lq_engine_free(eq);
    lq_model_free(mb);
    lq_model_free(mq);
    free(tok);
    free(got);
    free(lb);
    free(lq);
}

int main(int argc, char **argv) {
    (void)argc;
    lq_test_lq_binary(argv[0], g_lq, sizeof g_lq);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gpu_device_count),
        cmocka_unit_test(test_model_gpu_golden_logits),
        cmocka_unit_test(test_model_gpu_golden_ppl),
        cmocka_unit_test(test_model_gpu_golden_greedy),
        cmocka_unit_test(test_model_gpu_decode_equals_prefill),
        cmocka_unit_test(test_model_gpu_batch_equals_single),
        cmocka_unit_test(test_model_gpu_f32_compute), cmocka_unit_test(test_model_gpu_compute_dtype_errors),
        cmocka_unit_test(test_model_gpu_w4a16_engine), cmocka_unit_test(test_model_gpu_w4a16_engine_swiglu),
        cmocka_unit_test(test_model_gpu_w4a16_mma_file),
        cmocka_unit_test(test_model_gpu_w4a16_lm_head),
        cmocka_unit_test(test_model_gpu_engines_kld),
        cmocka_unit_test(test_model_gpu_chunked_score_vs_cpu),
        cmocka_unit_test(test_model_gpu_errors),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
