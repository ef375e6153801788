/* test_synth.c — synthetic checkpoints: the tiny and smollm2-135m presets
 * write, load through the normal loader, have the advertised parameter count,
 * and produce finite logits through the reference forward. Run: make test. */
#include "lq_test.h"

#include "../formats/lq_formats.h"
#include "../libquant/lq_model.h"
#include "../libquant/lq_synth.h"

static void run_preset(const char *name, int T) {
    char dir[] = "/tmp/lq-test-synth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const lq_synth_preset *p = lq_synth_find(name);
    assert_non_null(p);
    assert_int_equal(lq_synth_write(p, dir, LQ_F16, 7, NULL, NULL), LQ_OK);
    lq_model *m = NULL;
    assert_int_equal(lq_model_load(dir, &m), LQ_OK);
    assert_int_equal(lq_model_n_params(m), lq_synth_n_params(p));
    assert_int_equal(m->cfg.n_layers, p->layers);
    assert_int_equal(m->cfg.n_kv_heads, p->kv_heads);
    lq_runstate *rs = NULL;
    assert_int_equal(lq_runstate_new(m, 1, T, T, &rs), LQ_OK);
    int32_t *tok = malloc(sizeof(int32_t) * T);
    for (int i = 0; i < T; i++) tok[i] = (i * 7919) % p->vocab;
    assert_int_equal(lq_forward(m, rs, tok, 1, T, 0, 0), LQ_OK);
    double mx = 0;
    for (size_t i = 0; i < (size_t)T * p->vocab; i++) {
        assert_true(isfinite(rs->logits[i]));
        if (fabs(rs->logits[i]) > mx) mx = fabs(rs->logits[i]);
    }
    print_message("%s: max |logit| %.3g\n", name, mx);
    assert_true(mx > 1e-3 && mx < 1e4); /* neither dead nor exploding */
    free(tok);
    lq_runstate_free(rs);
    lq_model_free(m);
    lq_remove_tree(dir);
}

static void test_synth_tiny(void **state) {
    (void)state;
    run_preset("tiny", 32);
}

static void test_synth_smollm2_shapes(void **state) {
    (void)state;
    run_preset("smollm2-135m", 8);
}

static void test_synth_unknown_preset(void **state) {
    (void)state;
    assert_null(lq_synth_find("gpt-5"));
    assert_true(lq_synth_n_params(lq_synth_find("llama3-8b")) > 8000000000LL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_tiny),
        cmocka_unit_test(test_synth_smollm2_shapes),
        cmocka_unit_test(test_synth_unknown_preset),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
