/* test_common.c — status names and messages, fp16/bf16 conversion (exact
 * against hand-picked values and round-trips over all 65536 halves), the
 * atomic file writer, mmap of an empty file. Run: make test. */
#include "lq_test.h"

#include "../libquant/lq_common.h"
#include "../libquant/lq_dtype.h"

static void test_common_error_message(void **state) {
    (void)state;
    assert_int_equal(lq_error(LQ_ERR_FORMAT, "%s: field '%s' = %d", "a.bin", "dim", -3), LQ_ERR_FORMAT);
    assert_string_equal(lq_last_error(), "a.bin: field 'dim' = -3");
    lq_error_prefix(LQ_ERR_FORMAT, "layer %d", 4);
    assert_string_equal(lq_last_error(), "layer 4: a.bin: field 'dim' = -3");
    assert_string_equal(lq_status_name(LQ_ERR_CHECKSUM), "LQ_ERR_CHECKSUM");
}

static void test_common_f16_round_trip_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lq_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            assert_true((lq_f32_to_f16(f) & 0x7c00) == 0x7c00 && (lq_f32_to_f16(f) & 0x3ff));
            continue;
        }
        assert_int_equal(lq_f32_to_f16(f), h);
    }
}

static void test_common_f16_rounding(void **state) {
    (void)state;
    assert_int_equal(lq_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(lq_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(lq_f32_to_f16(65520.0f), 0x7c00);  /* rounds to Inf */
    assert_int_equal(lq_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    assert_int_equal(lq_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie -> even (up) */
    assert_int_equal(lq_f32_to_f16(5.9604644775390625e-08f), 0x0001); /* smallest subnormal */
    assert_int_equal(lq_f32_to_f16(2.98e-08f), 0x0000);
    assert_int_equal(lq_f32_to_f16(-0.0f), 0x8000);
    assert_true(lq_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
}

static void test_common_bf16(void **state) {
    (void)state;
    assert_int_equal(lq_f32_to_bf16(1.0f), 0x3f80);
    float x = 1.0f + 1.0f / 256; /* exactly halfway between bf16 1.0 and 1.0078125 -> even (1.0) */
    assert_int_equal(lq_f32_to_bf16(x), 0x3f80);
    assert_true(lq_bf16_to_f32(0x4049) == 3.140625f);
    assert_true(isnan(lq_bf16_to_f32(lq_f32_to_bf16(NAN))));
}

static void test_common_atomic_write_and_abort(void **state) {
    (void)state;
    char dir[] = "/tmp/lq-test-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    lq_atomic_file f;
    assert_int_equal(lq_atomic_open(&f, path), LQ_OK);
    assert_int_equal(lq_atomic_write(&f, "abc", 3), LQ_OK);
    assert_int_equal(access(path, F_OK), -1); /* nothing under the final name before commit */
    lq_atomic_abort(&f);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(lq_atomic_open(&f, path), LQ_OK);
    assert_int_equal(lq_atomic_write(&f, "hello", 5), LQ_OK);
    assert_int_equal(lq_atomic_commit(&f), LQ_OK);
    char *buf = NULL;
    size_t n;
    assert_int_equal(lq_read_file(path, &buf, &n), LQ_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    unlink(path);
    /* a directory that does not exist: clear IO error naming the path */
    snprintf(path, sizeof path, "%s/missing/out.bin", dir);
    assert_int_equal(lq_atomic_open(&f, path), LQ_ERR_IO);
    assert_non_null(strstr(lq_last_error(), "missing/out.bin"));
    rmdir(dir);
}

static void test_common_mmap_empty_and_missing(void **state) {
    (void)state;
    char path[] = "/tmp/lq-test-empty-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    lq_mmap m;
    assert_int_equal(lq_mmap_open(path, &m), LQ_OK);
    assert_null(m.data);
    assert_int_equal(m.n_bytes, 0);
    lq_mmap_close(&m);
    unlink(path);
    assert_int_equal(lq_mmap_open(path, &m), LQ_ERR_IO);
    assert_non_null(strstr(lq_last_error(), path));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_error_message),       cmocka_unit_test(test_common_f16_round_trip_all),
        cmocka_unit_test(test_common_f16_rounding),        cmocka_unit_test(test_common_bf16),
        cmocka_unit_test(test_common_atomic_write_and_abort), cmocka_unit_test(test_common_mmap_empty_and_missing),
    };
    lq_test_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
