/* lq_test.h — small helpers shared by the CMocka suites: where ../shared is,
 * skipping with a reason, comparing float arrays with a tolerance report
 * (max abs / rel error and the first mismatches, as STYLE.md asks). */
#ifndef LQ_TEST_H
#define LQ_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

/* LQ_TEST_FILTER=PATTERN (cmocka's * and ? wildcards) runs only the matching tests of a suite (every suite
 * calls this before running its tests): for short runs on a lent GPU, e.g. LQ_TEST_FILTER='*dequant*'
 * build/tests/test_w4a16_gpu. */
static inline void lq_test_filter(void) {
    const char *p = getenv("LQ_TEST_FILTER");
    if (p && *p) cmocka_set_test_filter(p);
}

static inline const char *lq_test_shared(void) {
    const char *s = getenv("LQ_SHARED");
    return s && *s ? s : "../shared";
}

/* "$LQ_SHARED/rel" into buf; returns 1 when it exists. */
static inline int lq_test_shared_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", lq_test_shared(), rel);
    struct stat sb;
    return stat(buf, &sb) == 0;
}

#define LQ_SKIP_IF_NO_SHARED(path, rel)                                                         \
    do {                                                                                        \
        if (!lq_test_shared_path((path), sizeof(path), (rel))) {                                \
            print_message("skipped: %s not found (set LQ_SHARED to the shared/ folder)\n", (path)); \
            skip();                                                                             \
        }                                                                                       \
    } while (0)

/* |got - want| <= atol + rtol * |want| for all i; prints a report on failure
 * and returns the number of mismatches. NaN never passes. */
static inline long lq_test_compare(const char *what, const float *got, const float *want, size_t n, double atol,
                                   double rtol) {
    double max_abs = 0, max_rel = 0;
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (fabs((double)want[i]) + 1e-30);
        if (!(d <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                print_message("%s: mismatch at %zu: got %.9g want %.9g (abs %.3g)\n", what, i, got[i], want[i], d);
            bad++;
        }
        if (isnan(d)) d = INFINITY;
        if (d > max_abs) max_abs = d;
        if (r > max_rel && fabs(want[i]) > 1e-6) max_rel = r;
    }
    if (bad) print_message("%s: %ld/%zu mismatches, max abs %.3g, max rel %.3g (atol %.1g rtol %.1g)\n", what, bad, n,
                           max_abs, max_rel, atol, rtol);
    return bad;
}

static inline double lq_test_max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* The lq command for CLI tests: $LQ_BIN, else the one next to this test's
 * build folder (BUILD/tests/test_x -> BUILD/lq); argv0 is the test's argv[0]. */
static inline void lq_test_lq_binary(const char *argv0, char *out, size_t n) {
    const char *env = getenv("LQ_BIN");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    const char *slash = strrchr(argv0, '/');
    int dir_len = slash ? (int)(slash - argv0) : 1;
    snprintf(out, n, "%.*s/../lq", dir_len, slash ? argv0 : ".");
}

/* Deterministic-per-run but fresh random numbers: seeded from time and pid
 * unless LQ_TEST_SEED is set; the seed is printed so a failure can be replayed. */
static inline uint64_t lq_test_seed(void) {
    const char *s = getenv("LQ_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16));
    print_message("random seed %llu (replay with LQ_TEST_SEED)\n", (unsigned long long)seed);
    return seed;
}
static inline uint64_t lq_test_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static inline float lq_test_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((lq_test_next(s) >> 11) * (1.0 / 9007199254740992.0));
}
static inline void lq_test_fill(uint64_t *s, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lq_test_uniform(s, lo, hi);
}

/* GPU suites: with no CUDA device (n_devices <= 0), skip with a reason, or
 * fail when LQ_REQUIRE_GPU is set to anything but 0 (make test-gpu sets it),
 * so that a GPU run that silently found no GPU cannot pass. */
static inline int lq_test_require_gpu(void) {
    const char *s = getenv("LQ_REQUIRE_GPU");
    return s && *s && strcmp(s, "0") != 0;
}
#define LQ_SKIP_IF_NO_GPU(n_devices)                                                            \
    do {                                                                                        \
        if ((n_devices) <= 0) {                                                                 \
            if (lq_test_require_gpu()) fail_msg("no CUDA device, but LQ_REQUIRE_GPU=1 requires one"); \
            print_message("skipped: no CUDA device\n");                                         \
            skip();                                                                             \
        }                                                                                       \
    } while (0)

/* Largest |got - want| and |got - want| / |want| (|want| > 1e-6), NaN -> inf. */
static inline void lq_test_errors(const float *got, const float *want, size_t n, double *max_abs, double *max_rel) {
    double ma = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(d)) d = INFINITY;
        if (d > ma) ma = d;
        if (fabs((double)want[i]) > 1e-6 && d / fabs((double)want[i]) > mr) mr = d / fabs((double)want[i]);
    }
    *max_abs = ma;
    *max_rel = mr;
}

#endif
