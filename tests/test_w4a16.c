/* test_w4a16.c — the host side of the W4A16 fused kernels
 * (libquant/lq_w4a16.h): which weights the fused kernels accept, the mma
 * layout written by lq_w4a16_repack (every code, scale and zero point where
 * the layout says, padding that dequantizes to 0, stacked parts), and the
 * reference product lq_w4a16_matmul_ref against dequantize-then-multiply;
 * the .lqq packing "lq-mma-w4" (written, read back, unpacked exactly,
 * assembled into stacked parts bit-identically to the repack, bad padding
 * and zero points refused) and `lq quantize --packing`.
 * The kernels themselves are tested by tests/test_w4a16_gpu.c.
 * Run: make test (or build/tests/test_w4a16). */
#include "lq_test.h"

#include <jansson.h>
#include <sys/wait.h>

#include "../formats/lq_lqq.h"
#include "../libquant/lq_dtype.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_quant.h"
#include "../libquant/lq_w4a16.h"

static uint64_t g_seed;
static char g_lq[1024] = "build/lq"; /* the lq command next to this test's build dir, or $LQ_BIN */

static int setup(void **state) {
    (void)state;
    g_seed = lq_test_seed();
    return 0;
}

/* RTN-quantize a random (rows, cols) weight; a few all-zero groups and rows of
 * very different magnitudes. */
static void make_qweight(lq_qweight *q, int64_t rows, int64_t cols, int bits, int G, int sym) {
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    assert_non_null(w);
    lq_test_fill(&g_seed, w, (size_t)(rows * cols), -1.0f, 1.0f);
    for (int64_t n = 0; n < rows; n++) {
        float mag = (n % 7 == 3) ? 300.0f : (n % 5 == 1) ? 1e-3f : 1.0f;
        for (int64_t k = 0; k < cols; k++) w[n * cols + k] *= mag;
        if (n % 9 == 2) /* an all-zero first group */
            for (int64_t k = 0; k < (G ? G : cols) && k < cols; k++) w[n * cols + k] = 0.0f;
        if (!sym && n % 4 == 0) /* one-signed rows: zero point at an edge */
            for (int64_t k = 0; k < cols; k++) w[n * cols + k] = fabsf(w[n * cols + k]);
    }
    lq_quant_params p = {bits, G, sym};
    assert_int_equal(lq_rtn_quantize_packed(w, rows, cols, &p, q), LQ_OK);
    free(w);
}

static int file_zero(const lq_qweight *q, int64_t n, int64_t g) {
    if (q->p.sym) return 1 << (q->p.bits - 1);
    return lq_packed_get(q->qzeros + n * lq_packed_words(q->n_groups, q->p.bits), g, q->p.bits);
}

/* Every (n, k) of the stacked parts, and every padded position, checked. */
static void check_layout(const lq_qweight *const *parts, int n_parts) {
    lq_w4a16_shape s;
    assert_int_equal(lq_w4a16_shape_of(parts, n_parts, &s), LQ_OK);
    assert_true(s.Np % 32 == 0 && s.Np >= s.N && s.Np - s.N < 32);
    assert_true(s.Kp % 64 == 0 && s.Kp >= s.K && s.Kp - s.K < 64);
    uint32_t *qw = malloc(lq_w4a16_qw_words(&s) * 4);
    uint16_t *sc = malloc(lq_w4a16_group_elems(&s) * 2), *zr = malloc(lq_w4a16_group_elems(&s) * 2);
    assert_true(qw && sc && zr);
    memset(qw, 0xA5, lq_w4a16_qw_words(&s) * 4); /* poison: every word must be written */
    lq_w4a16_repack(parts, n_parts, &s, qw, sc, s.sym ? NULL : zr);
    int64_t row0 = 0;
    for (int p = 0; p < n_parts; p++) {
        const lq_qweight *q = parts[p];
        for (int64_t r = 0; r < q->rows; r++) {
            int64_t n = row0 + r;
            const uint32_t *frow = q->qweight + r * lq_packed_words(q->cols, 4);
            for (int64_t k = 0; k < s.Kp; k++) {
                int64_t g = k / s.G < s.n_groups ? k / s.G : s.n_groups - 1;
                int want = k < s.K ? lq_packed_get(frow, k, 4) : file_zero(q, r, g);
                if (lq_w4a16_code(qw, &s, n, k) != want)
                    fail_msg("part %d row %lld k %lld: code %d, want %d", p, (long long)r, (long long)k,
                             lq_w4a16_code(qw, &s, n, k), want);
            }
            for (int64_t g = 0; g < s.n_groups; g++) {
                size_t i = lq_w4a16_group_index(&s, n, g);
                assert_int_equal(sc[i], q->scales[r * q->n_groups + g]);
                if (!s.sym) assert_int_equal((int)lq_f16_to_f32(zr[i]), file_zero(q, r, g));
            }
        }
        row0 += q->rows;
    }
    for (int64_t n = s.N; n < s.Np; n++) { /* padded rows: code 0, scale 0, zero 0 */
        for (int64_t k = 0; k < s.Kp; k++) assert_int_equal(lq_w4a16_code(qw, &s, n, k), 0);
        for (int64_t g = 0; g < s.n_groups; g++) {
            assert_int_equal(sc[lq_w4a16_group_index(&s, n, g)], 0);
            if (!s.sym) assert_int_equal(zr[lq_w4a16_group_index(&s, n, g)], 0);
        }
    }
    free(qw);
    free(sc);
    free(zr);
}

static void test_w4a16_layout_every_code(void **state) {
    (void)state;
    struct { int64_t N, K; int G, sym; } cases[] = {
        {16, 64, 32, 1}, {64, 128, 128, 0}, {200, 172, 0, 0}, {48, 256, 64, 1}, {33, 100, 0, 1}, {128, 320, 32, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lq_qweight q;
        make_qweight(&q, cases[c].N, cases[c].K, 4, cases[c].G, cases[c].sym);
        assert_int_equal(lq_w4a16_supported(&q, "case"), LQ_OK);
        const lq_qweight *parts[1] = {&q};
        check_layout(parts, 1);
        lq_qweight_free(&q);
    }
}

static void test_w4a16_layout_stacked_parts(void **state) {
    (void)state;
    for (int sym = 0; sym < 2; sym++) {
        lq_qweight a, b, c;
        make_qweight(&a, 64, 192, 4, 64, sym); /* q | k | v with uneven row counts */
        make_qweight(&b, 24, 192, 4, 64, sym);
        make_qweight(&c, 8, 192, 4, 64, sym);
        const lq_qweight *parts[3] = {&a, &b, &c};
        check_layout(parts, 3);
        lq_qweight_free(&a);
        lq_qweight_free(&b);
        lq_qweight_free(&c);
    }
}

static void test_w4a16_shape_mismatch_refused(void **state) {
    (void)state;
    lq_qweight a, b;
    make_qweight(&a, 16, 128, 4, 64, 1);
    make_qweight(&b, 16, 128, 4, 32, 1);
    const lq_qweight *parts[2] = {&a, &b};
    lq_w4a16_shape s;
    assert_int_equal(lq_w4a16_shape_of(parts, 2, &s), LQ_ERR_SHAPE);
    assert_non_null(strstr(lq_last_error(), "part 1"));
    lq_qweight_free(&a);
    lq_qweight_free(&b);
}

static void test_w4a16_supported_says_why(void **state) {
    (void)state;
    lq_qweight q;
    make_qweight(&q, 16, 128, 3, 64, 1);
    assert_int_equal(lq_w4a16_supported(&q, "layers.0.q"), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "3-bit"));
    assert_non_null(strstr(lq_last_error(), "layers.0.q"));
    lq_qweight_free(&q);
    make_qweight(&q, 16, 128, 4, 48, 1);
    assert_int_equal(lq_w4a16_supported(&q, "w"), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "multiple of 32"));
    lq_qweight_free(&q);
    /* act-order with a non-static g_idx */
    lq_quant_params p = {4, 32, 1};
    assert_int_equal(lq_qweight_alloc(&q, 16, 128, &p, 1), LQ_OK);
    for (int k = 0; k < 128; k++) q.g_idx[k] = k / 32;
    assert_int_equal(lq_w4a16_supported(&q, "w"), LQ_OK);
    q.g_idx[40] = 3;
    assert_int_equal(lq_w4a16_supported(&q, "w"), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "g_idx[40]"));
    lq_qweight_free(&q);
}

/* lq_w4a16_matmul_ref = x times the dequantized weight rounded to fp16. */
static void test_w4a16_matmul_ref_definition(void **state) {
    (void)state;
    const int64_t N = 40, K = 172, M = 3;
    lq_qweight q;
    make_qweight(&q, N, K, 4, 64, 0);
    float *w = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * M * N), *y2 = malloc(sizeof(float) * M * N);
    lq_dequant_ref(&q, w);
    for (int64_t i = 0; i < N * K; i++) w[i] = lq_f16_to_f32(lq_f32_to_f16(w[i]));
    lq_test_fill(&g_seed, x, (size_t)(M * K), -1.0f, 1.0f);
    lq_test_fill(&g_seed, b, (size_t)N, -1.0f, 1.0f);
    lq_w4a16_matmul_ref(y, x, &q, b, M);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = b[n];
            for (int64_t k = 0; k < K; k++) acc += (double)x[m * K + k] * w[n * K + k];
            y2[m * N + n] = (float)acc;
        }
    assert_int_equal(lq_test_compare("matmul_ref", y, y2, (size_t)(M * N), 1e-6, 1e-6), 0);
    lq_qweight_free(&q);
    free(w);
    free(x);
    free(b);
    free(y);
    free(y2);
}

/* lq_w4a16_matmul_cpu (threads, each row formed once) gives lq_w4a16_matmul_ref's bits: symmetric and
 * asymmetric, G = 32 / 64 / per channel, act-order g_idx (a permuted group order), bias or none, M = 1..5,
 * sizes that are not multiples of anything, and one shape big enough for the threaded loop. */
static void test_w4a16_matmul_cpu_equals_ref(void **state) {
    (void)state;
    const struct {
        int64_t N, K, M;
        int G, sym, act, bias;
    } cases[] = {{40, 172, 3, 64, 0, 0, 1}, {33, 100, 1, 32, 1, 0, 0}, {17, 96, 5, 0, 0, 0, 1},
                 {64, 256, 2, 64, 1, 1, 1}, {50, 192, 4, 32, 0, 1, 0}, {700, 2100, 2, 32, 0, 0, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t N = cases[c].N, K = cases[c].K, M = cases[c].M;
        lq_qweight q;
        make_qweight(&q, N, K, 4, cases[c].G, cases[c].sym);
        if (cases[c].act) { /* GPTQ act-order: g_idx, here a permutation of the static groups */
            lq_qweight q2;
            lq_quant_params p = q.p;
            assert_int_equal(lq_qweight_alloc(&q2, N, K, &p, 1), LQ_OK);
            memcpy(q2.qweight, q.qweight, lq_qweight_qweight_bytes(N, K, 4));
            memcpy(q2.scales, q.scales, lq_qweight_scales_bytes(N, q.n_groups));
            if (q.qzeros) memcpy(q2.qzeros, q.qzeros, lq_qweight_qzeros_bytes(N, q.n_groups, 4));
            for (int64_t k = 0; k < K; k++) q2.g_idx[k] = (int32_t)((q.n_groups - 1) - (k / q.group_size));
            lq_qweight_free(&q);
            q = q2;
        }
        float *x = malloc(sizeof(float) * (size_t)(M * K)), *b = malloc(sizeof(float) * (size_t)N);
        float *y = malloc(sizeof(float) * (size_t)(M * N)), *y2 = malloc(sizeof(float) * (size_t)(M * N));
        assert_true(x && b && y && y2);
        lq_test_fill(&g_seed, x, (size_t)(M * K), -2.0f, 2.0f);
        lq_test_fill(&g_seed, b, (size_t)N, -1.0f, 1.0f);
        const float *bp = cases[c].bias ? b : NULL;
        lq_w4a16_matmul_ref(y, x, &q, bp, M);
        memset(y2, 0xFF, sizeof(float) * (size_t)(M * N)); /* NaN poison */
        lq_w4a16_matmul_cpu(y2, x, &q, bp, M);
        assert_memory_equal(y, y2, sizeof(float) * (size_t)(M * N));
        lq_qweight_free(&q);
        free(x), free(b), free(y), free(y2);
    }
}

/* lq_model_quantize_rtn: every linear RTN-packed exactly as lq_rtn_quantize_packed
 * does, the fp32 weights replaced by their dequantized values; twice is refused. */
static void test_w4a16_model_quantize_rtn(void **state) {
    (void)state;
    char p[1024];
    LQ_SKIP_IF_NO_SHARED(p, "models/stories260K/config.json");
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_model *m = NULL;
    assert_int_equal(lq_model_load(p, &m), LQ_OK);
    assert_null(m->qw);
    const int64_t D = m->cfg.dim, H = m->cfg.hidden_dim;
    float *down = malloc(sizeof(float) * (size_t)(D * H)), *dq = malloc(sizeof(float) * (size_t)(D * H));
    memcpy(down, m->w.layers[2].w_down, sizeof(float) * (size_t)(D * H));
    lq_quant_params qp = {4, 32, 0};
    assert_int_equal(lq_model_quantize_rtn(m, &qp), LQ_OK);
    assert_non_null(m->qw);
    lq_qweight want;
    assert_int_equal(lq_rtn_quantize_packed(down, D, H, &qp, &want), LQ_OK);
    const lq_qweight *got = m->qw[2 * LQ_N_LINEARS + 6];
    assert_int_equal(got->rows, D);
    assert_int_equal(got->cols, H);
    assert_memory_equal(got->qweight, want.qweight, lq_qweight_qweight_bytes(D, H, 4));
    assert_memory_equal(got->scales, want.scales, lq_qweight_scales_bytes(D, want.n_groups));
    assert_memory_equal(got->qzeros, want.qzeros, lq_qweight_qzeros_bytes(D, want.n_groups, 4));
    lq_dequant_ref(&want, dq);
    assert_memory_equal(m->w.layers[2].w_down, dq, sizeof(float) * (size_t)(D * H));
    assert_int_equal(lq_w4a16_supported(got, "down"), LQ_OK); /* K = 172, G = 32: a partial last group */
    assert_int_equal(lq_model_quantize_rtn(m, &qp), LQ_ERR_ARG);
    lq_qweight_free(&want);
    free(down);
    free(dq);
    lq_model_free(m);
}

/* The CLI end to end: lq quantize --method rtn writes a 4-bit .lqq; lq inspect
 * --json reports its recipe and that every linear fits the fused kernels. */
/* lq bench model on the CPU (the tiny preset, no shared data): with --rtn 4 --baseline every quantized row
 * carries its ratio to the baseline row of the same kind, the baseline's rows sit under "baseline";
 * without --baseline neither appears; --baseline without --rtn is a usage error. */
static json_t *bench_json(const char *args, int want_rc) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' bench model --preset tiny --device cpu --prompt 16,32 --batch 1,2 --ctx 24 --steps 2 "
             "--reps 1 --json %s 2>/dev/null", g_lq, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t err;
    json_t *o = json_loadf(p, JSON_DISABLE_EOF_CHECK, &err);
    const int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), want_rc);
    return o;
}

static void test_w4a16_cli_bench_baseline(void **state) {
    (void)state;
    if (access(g_lq, X_OK) != 0) {
        print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);
        skip();
    }
    json_t *o = bench_json("--rtn 4 --group 32 --baseline", 0);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "quantization"), "bits")), 4);
    json_t *bl = json_object_get(o, "baseline");
    assert_non_null(bl);
    const char *kinds[2] = {"prefill", "decode"};
    for (int k = 0; k < 2; k++) {
        json_t *q = json_object_get(o, kinds[k]), *b = json_object_get(bl, kinds[k]);
        assert_int_equal(json_array_size(q), 2);
        assert_int_equal(json_array_size(b), 2);
        for (size_t i = 0; i < 2; i++) {
            json_t *rq = json_array_get(q, i), *rb = json_array_get(b, i);
            const char *key = k ? "batch" : "prompt";
            assert_int_equal(json_integer_value(json_object_get(rq, key)), json_integer_value(json_object_get(rb, key)));
            const double tq = json_real_value(json_object_get(rq, "tokens_per_second")),
                         tb = json_real_value(json_object_get(rb, "tokens_per_second")),
                         r = json_real_value(json_object_get(rq, "vs_baseline"));
            assert_true(tq > 0 && tb > 0);
            assert_true(fabs(r - tq / tb) <= 1e-4 * (tq / tb)); /* printed with 6 significant digits */
            assert_null(json_object_get(rb, "vs_baseline"));
        }
    }
    json_decref(o);
    o = bench_json("--rtn 4 --group 32", 0);
    assert_non_null(o);
    assert_null(json_object_get(o, "baseline"));
    assert_null(json_object_get(json_array_get(json_object_get(o, "prefill"), 0), "vs_baseline"));
    json_decref(o);
    o = bench_json("--baseline", 2); /* a usage error: nothing on stdout */
    assert_null(o);
}

/* --max-pos: the preset's positions, so that --ctx can pass them (the tiny preset has 512: ctx 600 is cut to
 * 512 - steps without it); refused without --preset and out of range. */
static void test_w4a16_cli_bench_max_pos(void **state) {
    (void)state;
    if (access(g_lq, X_OK) != 0) {
        print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);
        skip();
    }
    const int want_ctx[2] = {600, 510}, want_pos[2] = {1024, 512};
    const char *args[2] = {"--batch 1 --ctx 600 --max-pos 1024", "--batch 1 --ctx 600"};
    for (int t = 0; t < 2; t++) {
        json_t *o = bench_json(args[t], 0);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "max_positions")), want_pos[t]);
        json_t *d = json_object_get(o, "decode");
        assert_int_equal(json_array_size(d), 1);
        json_t *r = json_array_get(d, 0);
        assert_int_equal(json_integer_value(json_object_get(r, "ctx")), want_ctx[t]);
        assert_true(json_real_value(json_object_get(r, "tokens_per_second")) > 0);
        json_decref(o);
    }
    assert_null(bench_json("--max-pos 8", 2));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' bench model /nonexistent --max-pos 1024 --device cpu >/dev/null 2>&1", g_lq);
    const int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
}

static void test_w4a16_cli_quantize_inspect(void **state) {
    (void)state;
    char mp[1024], out[256], cmd[4096];
    LQ_SKIP_IF_NO_SHARED(mp, "models/stories260K/config.json");
    lq_test_shared_path(mp, sizeof mp, "models/stories260K");
    if (access(g_lq, X_OK) != 0) {
        print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);
        skip();
    }
    snprintf(out, sizeof out, "/tmp/lq_test_w4a16_%d.lqq", (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 4 --group 32 --quiet > /dev/null", g_lq, mp,
             out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", g_lq, out);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t err;
    json_t *o = json_loadf(p, 0, &err);
    assert_int_equal(pclose(p), 0);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "format")), "lqq");
    assert_int_equal(json_integer_value(json_object_get(o, "n_quantized")), 5 * 7);
    assert_int_equal(json_integer_value(json_object_get(o, "n_w4a16_fused")), 5 * 7);
    json_t *q = json_object_get(o, "quantization");
    assert_int_equal(json_integer_value(json_object_get(q, "bits")), 4);
    assert_int_equal(json_integer_value(json_object_get(q, "group_size")), 32);
    assert_string_equal(json_string_value(json_object_get(q, "method")), "rtn");
    assert_true(json_integer_value(json_object_get(o, "file_bytes")) > 0);
    json_decref(o);
    /* 3-bit codes: quantized, but not for the 4-bit kernels */
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 3 --group 32 --quiet > /dev/null", g_lq, mp,
             out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", g_lq, out);
    p = popen(cmd, "r");
    o = json_loadf(p, 0, &err);
    assert_int_equal(pclose(p), 0);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "n_quantized")), 5 * 7);
    assert_int_equal(json_integer_value(json_object_get(o, "n_w4a16_fused")), 0);
    json_decref(o);
    unlink(out);
}

/* Write weights with the mma packing into a temporary .lqq; open it. */
static lq_lqq *write_mma_file(const char *path, const lq_qweight *const *q, const char *const *names, int n) {
    lq_lqq_writer *w = NULL;
    assert_int_equal(lq_lqq_writer_new(&w), LQ_OK);
    json_t *qt = json_object();
    for (int i = 0; i < n; i++) {
        json_t *rec = NULL;
        assert_int_equal(lq_lqq_writer_add_qweight_mma(w, names[i], q[i], &rec), LQ_OK);
        json_object_set_new(qt, names[i], rec);
    }
    json_t *meta = json_pack("{s:{}, s:{s:o}}", "config", "quantization", "tensors", qt);
    assert_int_equal(lq_lqq_write(w, meta, path, NULL, NULL), LQ_OK);
    json_decref(meta);
    lq_lqq_writer_free(w);
    lq_lqq *f = NULL;
    assert_int_equal(lq_lqq_open(path, 0, &f), LQ_OK);
    return f;
}

/* The reference unpack gives back exactly the quantizer's codes, scales,
 * zero points and g_idx; the views are the repack of the weight alone. */
static void test_w4a16_mma_file_roundtrip(void **state) {
    (void)state;
    static const int shapes[][3] = {{200, 172, 128}, {96, 256, 32}, {40, 64, 0}, {33, 200, 64}};
    for (int t = 0; t < 4; t++)
        for (int sym = 0; sym < 2; sym++) {
            lq_qweight q;
            make_qweight(&q, shapes[t][0], shapes[t][1], 4, shapes[t][2], sym);
            lq_qweight qa = q; /* act-order files also carry g_idx = k / G */
            int32_t *gi = NULL;
            if (t == 1) {
                gi = malloc(sizeof(int32_t) * (size_t)q.cols);
                for (int64_t k = 0; k < q.cols; k++) gi[k] = (int32_t)(k / q.group_size);
                qa.g_idx = gi;
            }
            char path[128];
            snprintf(path, sizeof path, "/tmp/lq_test_mma_%d_%d_%d.lqq", (int)getpid(), t, sym);
            const lq_qweight *qs[1] = {&qa};
            const char *names[1] = {"model.layers.0.mlp.down_proj.weight"};
            lq_lqq *f = write_mma_file(path, qs, names, 1);
            const json_t *rec = json_object_get(json_object_get(json_object_get(lq_lqq_metadata(f), "quantization"), "tensors"), names[0]);
            assert_string_equal(json_string_value(json_object_get(rec, "packing")), "lq-mma-w4");
            lq_qweight r;
            assert_int_equal(lq_lqq_get_qweight(f, names[0], &r), LQ_OK);
            assert_non_null(r.mem);
            assert_true(r.rows == q.rows && r.cols == q.cols && r.group_size == q.group_size && r.p.sym == sym);
            assert_memory_equal(r.qweight, q.qweight, lq_qweight_qweight_bytes(q.rows, q.cols, 4));
            assert_memory_equal(r.scales, q.scales, lq_qweight_scales_bytes(q.rows, q.n_groups));
            if (!sym) assert_memory_equal(r.qzeros, q.qzeros, lq_qweight_qzeros_bytes(q.rows, q.n_groups, 4));
            else assert_null(r.mma_zeros);
            if (gi) assert_memory_equal(r.g_idx, gi, sizeof(int32_t) * (size_t)q.cols);
            else assert_null(r.g_idx);
            /* the views are what the repack of the weight gives */
            lq_w4a16_shape s;
            const lq_qweight *qp = &q;
            assert_int_equal(lq_w4a16_shape_of(&qp, 1, &s), LQ_OK);
            uint32_t *qw = malloc(lq_w4a16_qw_words(&s) * 4);
            uint16_t *sc = malloc(lq_w4a16_group_elems(&s) * 2), *zr = malloc(lq_w4a16_group_elems(&s) * 2);
            lq_w4a16_repack(&qp, 1, &s, qw, sc, sym ? NULL : zr);
            assert_memory_equal(r.mma_qw, qw, lq_w4a16_qw_words(&s) * 4);
            assert_memory_equal(r.mma_scales, sc, lq_w4a16_group_elems(&s) * 2);
            if (!sym) assert_memory_equal(r.mma_zeros, zr, lq_w4a16_group_elems(&s) * 2);
            free(qw);
            free(sc);
            free(zr);
            lq_qweight_free(&r);
            lq_lqq_close(f);
            /* the checkpoint view of the file dequantizes to the same floats as the original */
            lq_checkpoint *ck = NULL;
            assert_int_equal(lq_lqq_load(path, &ck), LQ_OK);
            const lq_tensor_info *ti = lq_checkpoint_find(ck, names[0]);
            assert_non_null(ti);
            float *ref = malloc(sizeof(float) * (size_t)(q.rows * q.cols));
            lq_dequant_ref(&q, ref);
            assert_memory_equal(ti->data, ref, sizeof(float) * (size_t)(q.rows * q.cols));
            free(ref);
            lq_checkpoint_free(ck);
            unlink(path);
            free(gi);
            lq_qweight_free(&q);
        }
}

/* Stacked parts from mma files are assembled bit-identically to the repack;
 * a middle part whose rows are not a multiple of 16 falls back to the repack. */
static void test_w4a16_mma_assemble_equals_repack(void **state) {
    (void)state;
    static const int rows[2][3] = {{64, 32, 40}, {48, 40, 16}}; /* case 1: the middle part is 40 rows */
    for (int c = 0; c < 2; c++)
        for (int sym = 0; sym < 2; sym++) {
            lq_qweight q[3], r[3];
            const lq_qweight *qs[3], *rs[3];
            const char *names[3] = {"a.weight", "b.weight", "c.weight"};
            for (int i = 0; i < 3; i++) {
                make_qweight(&q[i], rows[c][i], 200, 4, 64, sym);
                qs[i] = &q[i];
            }
            char path[128];
            snprintf(path, sizeof path, "/tmp/lq_test_mma_asm_%d_%d_%d.lqq", (int)getpid(), c, sym);
            lq_lqq *f = write_mma_file(path, qs, names, 3);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(lq_lqq_get_qweight(f, names[i], &r[i]), LQ_OK);
                rs[i] = &r[i];
            }
            lq_w4a16_shape s;
            assert_int_equal(lq_w4a16_shape_of(rs, 3, &s), LQ_OK);
            size_t nw = lq_w4a16_qw_words(&s), ng = lq_w4a16_group_elems(&s);
            uint32_t *qa = malloc(nw * 4), *qb = malloc(nw * 4);
            uint16_t *sa = malloc(ng * 2), *sb = malloc(ng * 2), *za = malloc(ng * 2), *zb = malloc(ng * 2);
            memset(qa, 0xA5, nw * 4); /* poison: every word must be written */
            memset(sa, 0xA5, ng * 2);
            memset(za, 0xA5, ng * 2);
            int assembled = -1;
            lq_w4a16_pack_parts(rs, 3, &s, qa, sa, sym ? NULL : za, &assembled);
            assert_int_equal(assembled, c == 0);
            lq_w4a16_repack(qs, 3, &s, qb, sb, sym ? NULL : zb);
            assert_memory_equal(qa, qb, nw * 4);
            assert_memory_equal(sa, sb, ng * 2);
            if (!sym) assert_memory_equal(za, zb, ng * 2);
            if (c == 1) {
                assert_int_equal(lq_w4a16_assemble(rs, 3, &s, qa, sa, sym ? NULL : za), LQ_ERR_UNSUPPORTED);
                assert_non_null(strstr(lq_last_error(), "multiple of 16"));
                lq_clear_error();
            }
            /* bit-stream parts (no mma views) cannot be assembled */
            assert_int_equal(lq_w4a16_assemble(qs, 3, &s, qa, sa, sym ? NULL : za), LQ_ERR_UNSUPPORTED);
            lq_clear_error();
            free(qa), free(qb), free(sa), free(sb), free(za), free(zb);
            for (int i = 0; i < 3; i++) {
                lq_qweight_free(&r[i]);
                lq_qweight_free(&q[i]);
            }
            lq_lqq_close(f);
            unlink(path);
        }
}

/* lq_w4a16_interleave64 (the layout lq_w4a16_upload_swiglu uploads) equals the repack of one weight whose
 * rows are the pair's in that order: 64 gate rows, the same 64 up rows, and so on. */
static void test_w4a16_interleave64(void **state) {
    (void)state;
    for (int sym = 0; sym < 2; sym++) {
        const int64_t H = 192, K = 200;
        lq_qweight g, u, r;
        make_qweight(&g, H, K, 4, 64, sym);
        make_qweight(&u, H, K, 4, 64, sym);
        const lq_qweight *parts[2] = {&g, &u};
        lq_w4a16_shape s;
        assert_int_equal(lq_w4a16_shape_of(parts, 2, &s), LQ_OK);
        const size_t nw = lq_w4a16_qw_words(&s), ng = lq_w4a16_group_elems(&s);
        uint32_t *qa = malloc(nw * 4), *qi = malloc(nw * 4), *qb = malloc(nw * 4);
        uint16_t *sa = malloc(ng * 2), *si = malloc(ng * 2), *sb = malloc(ng * 2);
        uint16_t *za = malloc(ng * 2), *zi = malloc(ng * 2), *zb = malloc(ng * 2);
        assert_true(qa && qi && qb && sa && si && sb && za && zi && zb);
        lq_w4a16_repack(parts, 2, &s, qa, sa, sym ? NULL : za);
        lq_w4a16_interleave64(&s, qa, sa, sym ? NULL : za, qi, si, sym ? NULL : zi);
        lq_quant_params p = {4, 64, sym};
        assert_int_equal(lq_qweight_alloc(&r, 2 * H, K, &p, 0), LQ_OK);
        const int64_t wpr = lq_packed_words(K, 4), zpr = lq_packed_words(r.n_groups, 4);
        for (int64_t n = 0; n < 2 * H; n++) {
            const int64_t j = n / 128, rr = n % 128, row = rr < 64 ? 64 * j + rr : 64 * j + rr - 64;
            const lq_qweight *src = rr < 64 ? &g : &u;
            memcpy(r.qweight + n * wpr, src->qweight + row * wpr, (size_t)wpr * 4);
            memcpy(r.scales + n * r.n_groups, src->scales + row * src->n_groups, (size_t)r.n_groups * 2);
            if (!sym) memcpy(r.qzeros + n * zpr, src->qzeros + row * zpr, (size_t)zpr * 4);
        }
        const lq_qweight *rp[1] = {&r};
        lq_w4a16_shape s1;
        assert_int_equal(lq_w4a16_shape_of(rp, 1, &s1), LQ_OK);
        assert_int_equal(s1.Np, s.Np);
        lq_w4a16_repack(rp, 1, &s1, qb, sb, sym ? NULL : zb);
        assert_memory_equal(qi, qb, nw * 4);
        assert_memory_equal(si, sb, ng * 2);
        if (!sym) assert_memory_equal(zi, zb, ng * 2);
        free(qa), free(qi), free(qb), free(sa), free(si), free(sb), free(za), free(zi), free(zb);
        lq_qweight_free(&g);
        lq_qweight_free(&u);
        lq_qweight_free(&r);
    }
}

/* What the kernels rely on is checked when an mma weight is unpacked. */
static void test_w4a16_mma_unpack_refuses_bad_data(void **state) {
    (void)state;
    lq_qweight q;
    make_qweight(&q, 40, 100, 4, 32, 0); /* K = 100: inputs 100..127 are padding */
    const lq_qweight *qp = &q;
    lq_w4a16_shape s;
    assert_int_equal(lq_w4a16_shape_of(&qp, 1, &s), LQ_OK);
    size_t nw = lq_w4a16_qw_words(&s), ng = lq_w4a16_group_elems(&s);
    uint32_t *qw = malloc(nw * 4);
    uint16_t *sc = malloc(ng * 2), *zr = malloc(ng * 2);
    lq_w4a16_repack(&qp, 1, &s, qw, sc, zr);
    lq_qweight r;
    lq_quant_params p = q.p;
    for (int bad = 0; bad < 4; bad++) {
        assert_int_equal(lq_qweight_alloc(&r, q.rows, q.cols, &p, 0), LQ_OK);
        uint32_t *qw2 = malloc(nw * 4);
        uint16_t *sc2 = malloc(ng * 2), *zr2 = malloc(ng * 2);
        memcpy(qw2, qw, nw * 4), memcpy(sc2, sc, ng * 2), memcpy(zr2, zr, ng * 2);
        const char *want = NULL;
        if (bad == 1) { /* a zero point that is not an integer */
            zr2[lq_w4a16_group_index(&s, 7, 1)] = lq_f32_to_f16(3.5f);
            want = "zero point of row 7, group 1";
        } else if (bad == 2) { /* a scale in a padded row (N = 40 < Np = 64) */
            sc2[lq_w4a16_group_index(&s, 50, 0)] = lq_f32_to_f16(1.0f);
            want = "row 50";
        } else if (bad == 3) { /* a padded input whose code is not the zero point: flip every code of row 3 */
            int64_t nb = 3 / 16, kb = 1; /* inputs 64..127 hold the padding 100..127 */
            for (int l = 0; l < 32; l++)
                for (int j = 0; j < 4; j++) qw2[(((size_t)nb * (size_t)(s.Kp / 64) + (size_t)kb) * 32 + (size_t)l) * 4 + (size_t)j] ^= 0x11111111u;
            want = "padding code at row 0";
        }
        lq_status st = lq_w4a16_unpack(&s, qw2, sc2, zr2, &r, "t.weight");
        if (!want) {
            assert_int_equal(st, LQ_OK);
            assert_memory_equal(r.qweight, q.qweight, lq_qweight_qweight_bytes(q.rows, q.cols, 4));
        } else {
            assert_int_equal(st, LQ_ERR_FORMAT);
            if (!strstr(lq_last_error(), want)) fail_msg("error '%s' does not name '%s'", lq_last_error(), want);
            lq_clear_error();
        }
        free(qw2), free(sc2), free(zr2);
        lq_qweight_free(&r);
    }
    free(qw), free(sc), free(zr);
    lq_qweight_free(&q);
}

/* `lq quantize --packing`: auto writes the mma layout for 4-bit weights, the
 * bit stream for the rest; both files give the same perplexity bit for bit. */
static void test_w4a16_cli_packing(void **state) {
    (void)state;
    char mp[1024], text[1024], a[256], b[256], cmd[4096];
    LQ_SKIP_IF_NO_SHARED(mp, "models/stories260K/config.json");
    LQ_SKIP_IF_NO_SHARED(text, "datasets/tinystories/sample.txt");
    lq_test_shared_path(mp, sizeof mp, "models/stories260K");
    lq_test_shared_path(text, sizeof text, "datasets/tinystories/sample.txt");
    if (access(g_lq, X_OK) != 0) {
        print_message("skipped: %s not found (set LQ_BIN)\n", g_lq);
        skip();
    }
    snprintf(a, sizeof a, "/tmp/lq_test_pack_mma_%d.lqq", (int)getpid());
    snprintf(b, sizeof b, "/tmp/lq_test_pack_bits_%d.lqq", (int)getpid());
    const char *out[2] = {a, b}, *pk[2] = {"auto", "bitstream"};
    char ppl[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 4 --group 128 --asym --packing %s --quiet "
                 "> /dev/null", g_lq, mp, out[i], pk[i]);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", g_lq, out[i]);
        FILE *p = popen(cmd, "r");
        json_error_t err;
        json_t *o = json_loadf(p, 0, &err);
        assert_int_equal(pclose(p), 0);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "n_mma_layout")), i == 0 ? 5 * 7 : 0);
        assert_int_equal(json_integer_value(json_object_get(o, "n_w4a16_fused")), 5 * 7);
        json_decref(o);
        snprintf(cmd, sizeof cmd, "'%s' ppl '%s' '%s' --ctx 64 --max-windows 4 --device cpu --json --quiet", g_lq, out[i],
                 text);
        p = popen(cmd, "r");
        o = json_loadf(p, 0, &err);
        assert_int_equal(pclose(p), 0);
        assert_non_null(o);
        snprintf(ppl[i], sizeof ppl[i], "%.17g", json_real_value(json_object_get(o, "ppl")));
        json_decref(o);
    }
    assert_string_equal(ppl[0], ppl[1]);
    /* --packing mma refuses what the kernels cannot take (3-bit), naming it; nothing is written */
    unlink(a);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' --method rtn --bits 3 --packing mma --quiet 2>&1", g_lq, mp, a);
    FILE *p = popen(cmd, "r");
    char msg[2048] = {0};
    size_t nr = fread(msg, 1, sizeof msg - 1, p);
    msg[nr] = 0;
    assert_int_not_equal(pclose(p), 0);
    if (!strstr(msg, "--packing mma") || !strstr(msg, "3-bit")) fail_msg("unexpected message: %s", msg);
    assert_int_not_equal(access(a, F_OK), 0);
    unlink(b);
}

int main(int argc, char **argv) {
    (void)argc;
    lq_test_lq_binary(argv[0], g_lq, sizeof g_lq);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w4a16_layout_every_code),
        cmocka_unit_test(test_w4a16_layout_stacked_parts),
        cmocka_unit_test(test_w4a16_shape_mismatch_refused),
        cmocka_unit_test(test_w4a16_supported_says_why),
        cmocka_unit_test(test_w4a16_matmul_ref_definition),
        cmocka_unit_test(test_w4a16_matmul_cpu_equals_ref),
        cmocka_unit_test(test_w4a16_model_quantize_rtn),
        cmocka_unit_test(test_w4a16_cli_quantize_inspect),
        cmocka_unit_test(test_w4a16_cli_bench_baseline), cmocka_unit_test(test_w4a16_cli_bench_max_pos),
        cmocka_unit_test(test_w4a16_mma_file_roundtrip),
        cmocka_unit_test(test_w4a16_mma_assemble_equals_repack),
        cmocka_unit_test(test_w4a16_mma_unpack_refuses_bad_data),
        cmocka_unit_test(test_w4a16_interleave64),
        cmocka_unit_test(test_w4a16_cli_packing),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, NULL);
}
