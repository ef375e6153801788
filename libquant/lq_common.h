/* lq_common.h — status codes, the thread-local error message, and the
 * RETURN/FORWARD macros every lq module uses.
 *
 * Why: library code never prints or exits; it returns an lq_status and leaves
 * a message naming the file, field and offending value in a thread-local
 * buffer that tools/ prints (zstd's error_private.h is the model).
 * Tested by tests/test_common.c (make test). */
#ifndef LQ_COMMON_H
#define LQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LQ_OK = 0,
    LQ_ERR_IO,          /* open/read/write/mmap failed */
    LQ_ERR_FORMAT,      /* malformed file contents */
    LQ_ERR_CHECKSUM,    /* CRC mismatch */
    LQ_ERR_SHAPE,       /* tensor shape / size mismatch */
    LQ_ERR_NOMEM,       /* allocation failed */
    LQ_ERR_CUDA,        /* CUDA / cuBLAS error */
    LQ_ERR_UNSUPPORTED, /* valid input we do not handle (architecture, dtype) */
    LQ_ERR_ARG,         /* bad argument from the caller */
    LQ_ERR_NUMERIC,     /* NaN/Inf, failed factorisation */
    LQ_ERR_NOTFOUND     /* a named tensor / key / file is missing */
} lq_status;

/* Name of a status ("LQ_ERR_FORMAT"). Never NULL. */
const char *lq_status_name(lq_status s);

/* Set the thread-local message (printf-style) and return s, so that
 * `return lq_error(LQ_ERR_FORMAT, "%s: field 'x' ...", path);` reads well. */
lq_status lq_error(lq_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with more context ("loading layer 3: <old>"). */
lq_status lq_error_prefix(lq_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The last message set on this thread ("" when none). */
const char *lq_last_error(void);
void lq_clear_error(void);

/* Return early with an error when cond is false. */
#define LQ_RETURN_IF(cond, st, ...)                                            \
    do {                                                                       \
        if (cond) return lq_error((st), __VA_ARGS__);                          \
    } while (0)

/* Propagate a non-OK status. */
#define LQ_FORWARD(expr)                                                       \
    do {                                                                       \
        lq_status lq_s_ = (expr);                                              \
        if (lq_s_ != LQ_OK) return lq_s_;                                      \
    } while (0)

/* For functions with one `fail:` cleanup path and a local `lq_status st`. */
#define LQ_TRY(expr)                                                           \
    do {                                                                       \
        st = (expr);                                                           \
        if (st != LQ_OK) goto fail;                                            \
    } while (0)
#define LQ_FAIL_IF(cond, s, ...)                                               \
    do {                                                                       \
        if (cond) {                                                            \
            st = lq_error((s), __VA_ARGS__);                                   \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

/* Overflow-checked size arithmetic for sizes computed from file data.
 * Return 0 on success, 1 on overflow. */
static inline int lq_mul_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int lq_add_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Allocation helpers: report LQ_ERR_NOMEM with the byte count. */
lq_status lq_malloc(void **out, size_t n_bytes, const char *what);
lq_status lq_calloc(void **out, size_t n, size_t size, const char *what);

/* Whole-file helpers. lq_read_file returns a NUL-terminated malloc'd buffer. */
lq_status lq_read_file(const char *path, char **out, size_t *out_len);

/* Read-only mmap of a whole file (empty files give data=NULL, n_bytes=0). */
typedef struct {
    void *data;
    size_t n_bytes;
} lq_mmap;
lq_status lq_mmap_open(const char *path, lq_mmap *m);
void lq_mmap_close(lq_mmap *m);

/* Atomic write: open "<path>.tmp.<pid>", write, fsync, rename over path.
 * lq_atomic_abort removes the temporary file. */
typedef struct {
    int fd;
    char *final_path;
    char *tmp_path;
} lq_atomic_file;
lq_status lq_atomic_open(lq_atomic_file *f, const char *path);
lq_status lq_atomic_write(lq_atomic_file *f, const void *buf, size_t n_bytes);
lq_status lq_atomic_commit(lq_atomic_file *f);
void lq_atomic_abort(lq_atomic_file *f);

/* Wall clock in seconds (monotonic). */
double lq_now(void);

#endif
