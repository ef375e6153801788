/* test_model.c — the CPU reference runtime against Hugging Face transformers'
 * float64 golden outputs for stories260K (../shared/golden/stories260K):
 * logits within 1e-4 absolute, perplexity at n_ctx 64/128/256 within 1e-4
 * relative, the greedy continuation identical — from the HF files and from
 * the llama2.c files alike; plus KV-cache / batch consistency, the convert
 * round trip and config errors. Run: make test (or build/tests/test_model). */
#include "lq_test.h"

#include "../formats/lq_formats.h"
#include "../libquant/lq_eval.h"
#include "../libquant/lq_model.h"

typedef struct {
    lq_model *hf, *l2c;
    lq_checkpoint *golden;
    json_t *gjson;
    char *sample;
    size_t n_sample;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    char p[1024];
    if (!lq_test_shared_path(p, sizeof p, "models/stories260K/config.json")) return 0;
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    if (lq_model_load(p, &f->hf) != LQ_OK) print_message("load %s: %s\n", p, lq_last_error());
    lq_test_shared_path(p, sizeof p, "models/stories260K/llama2c/stories260K.bin");
    if (lq_model_load(p, &f->l2c) != LQ_OK) print_message("load %s: %s\n", p, lq_last_error());
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
    lq_model_free(f->hf);
    lq_model_free(f->l2c);
    lq_checkpoint_free(f->golden);
    if (f->gjson) json_decref(f->gjson);
    free(f->sample);
    free(f);
    return 0;
}

#define NEED(f)                                                                                      \
    do {                                                                                             \
        if (!(f)->hf || !(f)->l2c || !(f)->golden || !(f)->gjson || !(f)->sample) {                  \
            print_message("skipped: stories260K model/golden data not found under %s\n", lq_test_shared()); \
            skip();                                                                                  \
        }                                                                                            \
    } while (0)

static void check_golden_logits(fixture *f, lq_model *m, const char *label) {
    for (int s = 0; s < 5; s++) {
        char tn[32], ln[32];
        snprintf(tn, sizeof tn, "tokens.%d", s);
        snprintf(ln, sizeof ln, "logits.%d", s);
        const lq_tensor_info *tt = lq_checkpoint_find(f->golden, tn), *lt = lq_checkpoint_find(f->golden, ln);
        assert_non_null(tt);
        assert_non_null(lt);
        int T = (int)tt->shape[0];
        lq_runstate *rs = NULL;
        assert_int_equal(lq_runstate_new(m, 1, T, T, &rs), LQ_OK);
        assert_int_equal(lq_forward(m, rs, (const int32_t *)tt->data, 1, T, 0, 0), LQ_OK);
        char what[64];
        snprintf(what, sizeof what, "%s logits.%d", label, s);
        double mx = lq_test_max_abs(rs->logits, (const float *)lt->data, (size_t)T * 512);
        print_message("%s: T=%d max |logit - golden| = %.3g\n", what, T, mx);
        assert_int_equal(lq_test_compare(what, rs->logits, (const float *)lt->data, (size_t)T * 512, 1e-4, 0), 0);
        lq_runstate_free(rs);
    }
}

static void test_model_golden_logits_hf(void **state) {
    fixture *f = *state;
    NEED(f);
    check_golden_logits(f, f->hf, "hf");
}

static void test_model_golden_logits_llama2c(void **state) {
    fixture *f = *state;
    NEED(f);
    check_golden_logits(f, f->l2c, "llama2c");
}

static void check_ppl(fixture *f, lq_model *m, const char *label) {
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(lq_tokenizer_encode(m->tok, f->sample, f->n_sample, 1, &ids, &n), LQ_OK);
    json_t *arr = json_object_get(json_object_get(f->gjson, "ppl"), "stories");
    assert_true(json_array_size(arr) == 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(arr, i);
        int ctx = (int)json_integer_value(json_object_get(e, "n_ctx"));
        assert_int_equal((long)n, (long)json_integer_value(json_object_get(e, "n_tokens_total")));
        lq_ppl_opts o = {ctx, 0, 0, NULL, NULL};
        lq_ppl_result r;
        lq_engine *eng = NULL;
        assert_int_equal(lq_engine_cpu_new(m, 4, ctx, &eng), LQ_OK);
        assert_int_equal(lq_ppl_eval(eng, ids, n, &o, &r), LQ_OK);
        lq_engine_free(eng);
        double want = json_real_value(json_object_get(e, "ppl"));
        print_message("%s ppl n_ctx %d: %.9f golden %.9f rel %.2e\n", label, ctx, r.ppl, want, fabs(r.ppl / want - 1));
        assert_int_equal(r.windows, (int)json_integer_value(json_object_get(e, "windows")));
        assert_int_equal((long)r.scored, (long)json_integer_value(json_object_get(e, "scored")));
        assert_true(fabs(r.ppl / want - 1) <= 1e-4);
    }
    free(ids);
}

static void test_model_golden_ppl_hf(void **state) {
    fixture *f = *state;
    NEED(f);
    check_ppl(f, f->hf, "hf");
}

static void test_model_golden_ppl_llama2c(void **state) {
    fixture *f = *state;
    NEED(f);
    check_ppl(f, f->l2c, "llama2c");
}

static void check_greedy(fixture *f, lq_model *m) {
    json_t *g = json_object_get(f->gjson, "greedy");
    const char *prompt = json_string_value(json_object_get(g, "prompt"));
    json_t *want = json_object_get(g, "ids");
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(lq_tokenizer_encode(m->tok, prompt, strlen(prompt), 1, &ids, &n), LQ_OK);
    size_t total = json_array_size(want);
    assert_true(total > n);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], json_integer_value(json_array_get(want, i)));
    lq_runstate *rs = NULL;
    assert_int_equal(lq_runstate_new(m, 1, (int)total, (int)n, &rs), LQ_OK);
    int32_t *all = calloc(total, sizeof *all);
    memcpy(all, ids, n * sizeof *all);
    lq_sampler smp = {0, 1, 0};
    for (size_t i = n; i < total; i++) {
        int pos = i == n ? 0 : (int)i - 1, T = i == n ? (int)n : 1;
        assert_int_equal(lq_forward(m, rs, all + pos, 1, T, pos, 1), LQ_OK);
        all[i] = lq_sample(&smp, rs->logits + (size_t)(T - 1) * m->cfg.vocab_size, m->cfg.vocab_size);
        assert_int_equal(all[i], json_integer_value(json_array_get(want, i)));
    }
    char *text = NULL;
    size_t tl;
    assert_int_equal(lq_tokenizer_decode(m->tok, all, total, 1, &text, &tl), LQ_OK);
    assert_string_equal(text, json_string_value(json_object_get(g, "text")));
    free(text);
    free(all);
    free(ids);
    lq_runstate_free(rs);
}

static void test_model_golden_greedy_hf(void **state) {
    fixture *f = *state;
    NEED(f);
    check_greedy(f, f->hf);
}

static void test_model_golden_greedy_llama2c(void **state) {
    fixture *f = *state;
    NEED(f);
    check_greedy(f, f->l2c);
}

/* Token-by-token decode through the KV cache equals one full prefill, and a
 * batch of three sequences equals each sequence alone. */
static void test_model_kv_cache_and_batch_consistency(void **state) {
    fixture *f = *state;
    NEED(f);
    lq_model *m = f->hf;
    const int T = 40, V = m->cfg.vocab_size, B = 3;
    uint64_t seed = lq_test_seed();
    int32_t tok[3 * 40];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(lq_test_next(&seed) % (uint64_t)V);
    lq_runstate *full = NULL, *inc = NULL, *bat = NULL;
    assert_int_equal(lq_runstate_new(m, 1, T, T, &full), LQ_OK);
    assert_int_equal(lq_runstate_new(m, 1, T, 1, &inc), LQ_OK);
    assert_int_equal(lq_runstate_new(m, B, T, T, &bat), LQ_OK);
    assert_int_equal(lq_forward(m, bat, tok, B, T, 0, 0), LQ_OK);
    for (int b = 0; b < B; b++) {
        assert_int_equal(lq_forward(m, full, tok + b * T, 1, T, 0, 0), LQ_OK);
        assert_int_equal(lq_test_compare("batch vs single", bat->logits + (size_t)b * T * V, full->logits, (size_t)T * V,
                                         1e-4, 1e-4), 0);
        for (int t = 0; t < T; t++) {
            assert_int_equal(lq_forward(m, inc, tok + b * T + t, 1, 1, t, 0), LQ_OK);
            /* sgemv (one row) and sgemm round differently: fp32-level tolerance */
            assert_int_equal(lq_test_compare("incremental vs prefill", inc->logits, full->logits + (size_t)t * V, V,
                                             1e-4, 1e-4), 0);
        }
    }
    /* errors: positions past the context, bad token ids */
    assert_int_equal(lq_forward(m, inc, tok, 1, 1, T, 0), LQ_ERR_ARG);
    int32_t badtok = V;
    assert_int_equal(lq_forward(m, inc, &badtok, 1, 1, 0, 0), LQ_ERR_ARG);
    assert_non_null(strstr(lq_last_error(), "outside the vocabulary"));
    lq_runstate_free(full);
    lq_runstate_free(inc);
    lq_runstate_free(bat);
}

static void logits_of(lq_model *m, const int32_t *tok, int T, float *out) {
    lq_runstate *rs = NULL;
    assert_int_equal(lq_runstate_new(m, 1, T, T, &rs), LQ_OK);
    assert_int_equal(lq_forward(m, rs, tok, 1, T, 0, 0), LQ_OK);
    memcpy(out, rs->logits, sizeof(float) * (size_t)T * m->cfg.vocab_size);
    lq_runstate_free(rs);
}

/* convert (llama2.c -> HF f32 dir) -> load gives bit-identical logits; the
 * f16 conversion stays within f16 rounding; the tokenizer survives. */
static void test_model_convert_round_trip(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024], dir[] = "/tmp/lq-test-convert-XXXXXX";
    assert_non_null(mkdtemp(dir));
    lq_test_shared_path(p, sizeof p, "models/stories260K/llama2c/stories260K.bin");
    const lq_tensor_info *tt = lq_checkpoint_find(f->golden, "tokens.2");
    int T = (int)tt->shape[0], V = 512;
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    logits_of(f->l2c, tt->data, T, a);
    const int dts[2] = {LQ_F32, LQ_F16};
    for (int k = 0; k < 2; k++) {
        lq_checkpoint *ck = NULL;
        assert_int_equal(lq_checkpoint_open(p, &ck), LQ_OK);
        assert_int_equal(lq_hf_dir_write(ck, dir, dts[k]), LQ_OK);
        lq_checkpoint_free(ck);
        lq_model *m2 = NULL;
        assert_int_equal(lq_model_load(dir, &m2), LQ_OK);
        logits_of(m2, tt->data, T, b);
        if (dts[k] == LQ_F32) assert_int_equal(memcmp(a, b, sizeof(float) * T * V), 0);
        else {
            double mx = lq_test_max_abs(a, b, (size_t)T * V);
            print_message("f16 convert: max |logit diff| %.3g\n", mx);
            assert_true(mx < 5e-2);
        }
        int32_t *i1 = NULL, *i2 = NULL;
        size_t n1, n2;
        assert_int_equal(lq_tokenizer_encode(f->l2c->tok, f->sample, f->n_sample, 1, &i1, &n1), LQ_OK);
        assert_int_equal(lq_tokenizer_encode(m2->tok, f->sample, f->n_sample, 1, &i2, &n2), LQ_OK);
        assert_int_equal(n1, n2);
        assert_int_equal(memcmp(i1, i2, n1 * sizeof *i1), 0);
        free(i1);
        free(i2);
        lq_model_free(m2);
    }
    free(a);
    free(b);
    lq_remove_tree(dir);
}

static void test_model_config_errors(void **state) {
    (void)state;
    lq_config c;
    json_t *j = json_loads("{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":64}", 0, NULL);
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "GPT2LMHeadModel"));
    assert_non_null(strstr(lq_last_error(), "cfg.json"));
    json_decref(j);
    j = json_loads("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":8,\"vocab_size\":10}", 0, NULL);
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "intermediate_size"));
    json_object_set_new(j, "intermediate_size", json_integer(128));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_OK);
    assert_int_equal(c.head_dim, 8);
    json_object_set_new(j, "num_key_value_heads", json_integer(3));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_FORMAT);
    json_object_set_new(j, "num_key_value_heads", json_integer(4));
    json_object_set_new(j, "hidden_size", json_integer(-5));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "hidden_size"));
    /* found by fuzz_config: hidden_size < heads made the default head_dim 0 */
    json_object_set_new(j, "hidden_size", json_integer(6));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_FORMAT);
    assert_non_null(strstr(lq_last_error(), "head_dim"));
    json_object_set_new(j, "hidden_size", json_integer(64));
    json_object_set_new(j, "rope_scaling", json_pack("{s:s,s:f}", "rope_type", "yarn", "factor", 4.0));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(lq_last_error(), "yarn"));
    json_object_set_new(j, "rope_scaling",
                        json_pack("{s:s,s:f,s:f,s:f,s:i}", "rope_type", "llama3", "factor", 8.0, "low_freq_factor", 1.0,
                                  "high_freq_factor", 4.0, "original_max_position_embeddings", 8192));
    assert_int_equal(lq_config_from_json(j, "cfg.json", &c), LQ_OK);
    assert_int_equal(c.rope.type, 1);
    json_decref(j);
}

/* A tensor whose shape disagrees with config.json is refused, naming it. */
static void test_model_shape_mismatch_names_tensor(void **state) {
    fixture *f = *state;
    NEED(f);
    char p[1024];
    lq_test_shared_path(p, sizeof p, "models/stories260K");
    lq_checkpoint *ck = NULL;
    assert_int_equal(lq_checkpoint_open(p, &ck), LQ_OK);
    json_object_set_new(ck->config, "intermediate_size", json_integer(171));
    lq_model *m = NULL;
    assert_int_equal(lq_model_from_checkpoint(ck, &m), LQ_ERR_SHAPE);
    assert_non_null(strstr(lq_last_error(), "mlp.gate_proj.weight"));
    assert_null(m);
    lq_checkpoint_free(ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_golden_logits_hf),
        cmocka_unit_test(test_model_golden_logits_llama2c),
        cmocka_unit_test(test_model_golden_ppl_hf),
        cmocka_unit_test(test_model_golden_ppl_llama2c),
        cmocka_unit_test(test_model_golden_greedy_hf),
        cmocka_unit_test(test_model_golden_greedy_llama2c),
        cmocka_unit_test(test_model_kv_cache_and_batch_consistency),
        cmocka_unit_test(test_model_convert_round_trip),
        cmocka_unit_test(test_model_config_errors),
        cmocka_unit_test(test_model_shape_mismatch_names_tensor),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
