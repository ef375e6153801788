/* common.c — lq_status names, the thread-local error message, file helpers
 * (read, mmap, atomic write). See lq_common.h. Tested by tests/test_common.c. */
#include "lq_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char lq_errbuf[2048];

const char *lq_status_name(lq_status s) {
    switch (s) {
    case LQ_OK: return "LQ_OK";
    case LQ_ERR_IO: return "LQ_ERR_IO";
    case LQ_ERR_FORMAT: return "LQ_ERR_FORMAT";
    case LQ_ERR_CHECKSUM: return "LQ_ERR_CHECKSUM";
    case LQ_ERR_SHAPE: return "LQ_ERR_SHAPE";
    case LQ_ERR_NOMEM: return "LQ_ERR_NOMEM";
    case LQ_ERR_CUDA: return "LQ_ERR_CUDA";
    case LQ_ERR_UNSUPPORTED: return "LQ_ERR_UNSUPPORTED";
    case LQ_ERR_ARG: return "LQ_ERR_ARG";
    case LQ_ERR_NUMERIC: return "LQ_ERR_NUMERIC";
    case LQ_ERR_NOTFOUND: return "LQ_ERR_NOTFOUND";
    }
    return "LQ_ERR_UNKNOWN";
}

lq_status lq_error(lq_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lq_errbuf, sizeof lq_errbuf, fmt, ap);
    va_end(ap);
    return s;
}

lq_status lq_error_prefix(lq_status s, const char *fmt, ...) {
    char old[sizeof lq_errbuf];
    memcpy(old, lq_errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(lq_errbuf, sizeof lq_errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof lq_errbuf)
        snprintf(lq_errbuf + n, sizeof lq_errbuf - (size_t)n, ": %s", old);
    return s;
}

const char *lq_last_error(void) { return lq_errbuf; }
void lq_clear_error(void) { lq_errbuf[0] = 0; }

lq_status lq_malloc(void **out, size_t n_bytes, const char *what) {
    *out = malloc(n_bytes ? n_bytes : 1);
    if (!*out)
        return lq_error(LQ_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n_bytes, what);
    return LQ_OK;
}

lq_status lq_calloc(void **out, size_t n, size_t size, const char *what) {
    size_t tot;
    if (lq_mul_overflow(n, size, &tot))
        return lq_error(LQ_ERR_NOMEM, "size overflow allocating %zu x %zu bytes for %s", n, size, what);
    *out = calloc(n ? n : 1, size ? size : 1);
    if (!*out)
        return lq_error(LQ_ERR_NOMEM, "out of memory allocating %zu bytes for %s", tot, what);
    return LQ_OK;
}

lq_status lq_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lq_error(LQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 65536 * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return lq_error(LQ_ERR_NOMEM, "%s: out of memory reading file", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return lq_error(LQ_ERR_IO, "%s: read error", path);
    }
    buf[len] = 0;
    *out = buf;
    if (out_len) *out_len = len;
    return LQ_OK;
}

lq_status lq_mmap_open(const char *path, lq_mmap *m) {
    m->data = NULL;
    m->n_bytes = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lq_error(LQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return lq_error(LQ_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lq_error(LQ_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return LQ_OK;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lq_error(LQ_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->n_bytes = (size_t)sb.st_size;
    return LQ_OK;
}

void lq_mmap_close(lq_mmap *m) {
    if (m && m->data) munmap(m->data, m->n_bytes);
    if (m) {
        m->data = NULL;
        m->n_bytes = 0;
    }
}

lq_status lq_atomic_open(lq_atomic_file *f, const char *path) {
    f->fd = -1;
    f->final_path = strdup(path);
    size_t n = strlen(path) + 64;
    f->tmp_path = malloc(n);
    if (!f->final_path || !f->tmp_path) {
        free(f->final_path);
        free(f->tmp_path);
        f->final_path = f->tmp_path = NULL;
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        lq_status s = lq_error(LQ_ERR_IO, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        free(f->final_path);
        free(f->tmp_path);
        f->final_path = f->tmp_path = NULL;
        return s;
    }
    return LQ_OK;
}

lq_status lq_atomic_write(lq_atomic_file *f, const void *buf, size_t n_bytes) {
    const char *p = buf;
    while (n_bytes > 0) {
        ssize_t w = write(f->fd, p, n_bytes > (1u << 30) ? (1u << 30) : n_bytes);
        if (w < 0) {
            if (errno == EINTR) continue;
            return lq_error(LQ_ERR_IO, "%s: write failed: %s", f->tmp_path, strerror(errno));
        }
        p += w;
        n_bytes -= (size_t)w;
    }
    return LQ_OK;
}

lq_status lq_atomic_commit(lq_atomic_file *f) {
    lq_status st = LQ_OK;
    if (fsync(f->fd) != 0) st = lq_error(LQ_ERR_IO, "%s: fsync failed: %s", f->tmp_path, strerror(errno));
    if (close(f->fd) != 0 && st == LQ_OK)
        st = lq_error(LQ_ERR_IO, "%s: close failed: %s", f->tmp_path, strerror(errno));
    f->fd = -1;
    if (st == LQ_OK && rename(f->tmp_path, f->final_path) != 0)
        st = lq_error(LQ_ERR_IO, "cannot rename %s to %s: %s", f->tmp_path, f->final_path, strerror(errno));
    if (st != LQ_OK) unlink(f->tmp_path);
    free(f->final_path);
    free(f->tmp_path);
    f->final_path = f->tmp_path = NULL;
    return st;
}

void lq_atomic_abort(lq_atomic_file *f) {
    if (!f || !f->tmp_path) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp_path);
    free(f->final_path);
    free(f->tmp_path);
    f->final_path = f->tmp_path = NULL;
    f->fd = -1;
}

double lq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
