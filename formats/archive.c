/* archive.c — checkpoints delivered as .tar, .tar.gz, .tar.zst, .tar.xz or
 * .zip (libarchive). The archive is extracted into a private temporary
 * directory (under $TMPDIR, default /tmp) and the checkpoint inside it is
 * opened as usual; the directory is removed when the checkpoint is freed.
 *
 * Safety: entries with absolute paths or ".." components are refused (a tar
 * that escapes its folder is an error naming the entry), links and device
 * files are refused, and the total extracted size is bounded by
 * LQ_ARCHIVE_MAX_BYTES (default 256 GiB). Tested by tests/test_formats.c. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lq_formats.h"

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void lq_remove_tree(const char *dir) {
    if (dir && *dir) nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int bad_path(const char *p) {
    if (!p || !*p || p[0] == '/') return 1;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return 1;
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

static lq_status mkdirs(const char *root, const char *rel, int last_is_dir) {
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s/%s", root, rel);
    LQ_RETURN_IF(n < 0 || (size_t)n >= sizeof buf, LQ_ERR_FORMAT, "archive entry path too long: %s", rel);
    size_t rl = strlen(root) + 1;
    for (char *q = buf + rl; *q; q++) {
        if (*q == '/') {
            *q = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return lq_error(LQ_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *q = '/';
        }
    }
    if (last_is_dir && mkdir(buf, 0755) != 0 && errno != EEXIST)
        return lq_error(LQ_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return LQ_OK;
}

/* mkdirs for an entry, with the archive and entry named in the error. */
static lq_status entry_dirs(const char *path, const char *root, const char *name, int last_is_dir) {
    lq_status st = mkdirs(root, name, last_is_dir);
    if (st != LQ_OK) lq_error_prefix(st, "%s: entry '%s'", path, name);
    return st;
}

static lq_status extract(const char *path, const char *root) {
    lq_status st = LQ_OK;
    struct archive *a = archive_read_new();
    int fd = -1;
    char *buf = NULL;
    LQ_RETURN_IF(!a, LQ_ERR_NOMEM, "out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_gnutar(a);
    const char *mx = getenv("LQ_ARCHIVE_MAX_BYTES");
    unsigned long long max_total = mx ? strtoull(mx, NULL, 10) : (256ull << 30), total = 0;
    LQ_FAIL_IF(archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK, LQ_ERR_FORMAT,
               "%s: cannot read archive: %s", path, archive_error_string(a));
    LQ_TRY(lq_malloc((void **)&buf, 1 << 20, "archive buffer"));
    struct archive_entry *e;
    int r;
    int n_entries = 0;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        n_entries++;
        LQ_FAIL_IF(bad_path(name), LQ_ERR_FORMAT,
                   "%s: entry '%s' escapes the archive's folder (absolute path or '..')", path,
                   name ? name : "(null)");
        mode_t type = archive_entry_filetype(e);
        if (type == AE_IFDIR) {
            LQ_TRY(entry_dirs(path, root, name, 1));
            continue;
        }
        LQ_FAIL_IF(type != AE_IFREG || archive_entry_hardlink(e) || archive_entry_symlink(e),
                   LQ_ERR_FORMAT, "%s: entry '%s' is a link or special file; lq extracts regular files only",
                   path, name);
        LQ_TRY(entry_dirs(path, root, name, 0));
        char out[4096];
        snprintf(out, sizeof out, "%s/%s", root, name);
        fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0644);
        LQ_FAIL_IF(fd < 0, LQ_ERR_FORMAT, "%s: entry '%s': cannot create %s: %s (duplicate entry?)",
                   path, name, out, strerror(errno));
        for (;;) {
            la_ssize_t n = archive_read_data(a, buf, 1 << 20);
            LQ_FAIL_IF(n < 0, LQ_ERR_FORMAT, "%s: entry '%s': %s (truncated or corrupt archive)", path,
                       name, archive_error_string(a));
            if (n == 0) break;
            total += (unsigned long long)n;
            LQ_FAIL_IF(total > max_total, LQ_ERR_FORMAT,
                       "%s: extracted size exceeds %llu bytes (LQ_ARCHIVE_MAX_BYTES)", path, max_total);
            ssize_t w = write(fd, buf, (size_t)n);
            LQ_FAIL_IF(w != n, LQ_ERR_IO, "%s: write failed: %s", out, strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    LQ_FAIL_IF(r != ARCHIVE_EOF, LQ_ERR_FORMAT, "%s: corrupt archive after %d entries: %s", path,
               n_entries, archive_error_string(a));
    LQ_FAIL_IF(n_entries == 0, LQ_ERR_FORMAT, "%s: archive is empty", path);
fail:
    if (fd >= 0) close(fd);
    free(buf);
    archive_read_free(a);
    return st;
}

/* The checkpoint inside the extracted tree: the root itself if it has
 * config.json, else a .gguf / llama2.c .bin at its top, else its only
 * directory (a few levels down). *is_dir says which kind was found. */
static lq_status find_inner(const char *root, char *out, size_t n_out, int *is_dir) {
    char cur[4096];
    snprintf(cur, sizeof cur, "%s", root);
    for (int depth = 0; depth < 4; depth++) {
        char cfg[4096 + 16];
        snprintf(cfg, sizeof cfg, "%s/config.json", cur);
        if (access(cfg, R_OK) == 0) {
            snprintf(out, n_out, "%s", cur);
            *is_dir = 1;
            return LQ_OK;
        }
        DIR *d = opendir(cur);
        LQ_RETURN_IF(!d, LQ_ERR_IO, "%s: cannot list: %s", cur, strerror(errno));
        struct dirent *de;
        int n_dirs = 0, n_files = 0;
        char only_dir[1024] = "", model_file[1024] = "";
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4096 + 1024];
            snprintf(p, sizeof p, "%s/%s", cur, de->d_name);
            struct stat sb;
            if (lstat(p, &sb) != 0) continue;
            if (S_ISDIR(sb.st_mode)) {
                n_dirs++;
                snprintf(only_dir, sizeof only_dir, "%s", de->d_name);
            } else {
                n_files++;
                size_t l = strlen(de->d_name);
                if ((l > 5 && strcmp(de->d_name + l - 5, ".gguf") == 0) ||
                    (l > 4 && strcmp(de->d_name + l - 4, ".bin") == 0 && strncmp(de->d_name, "tok", 3) != 0))
                    snprintf(model_file, sizeof model_file, "%s", de->d_name);
            }
        }
        closedir(d);
        if (model_file[0]) {
            snprintf(out, n_out, "%s/%s", cur, model_file);
            *is_dir = 0;
            return LQ_OK;
        }
        if (n_dirs == 1 && n_files == 0) {
            /* descend; a separate buffer, as snprintf must not read what it writes */
            char next[4096 + 1024];
            int n = snprintf(next, sizeof next, "%s/%s", cur, only_dir);
            LQ_RETURN_IF(n < 0 || (size_t)n >= sizeof cur, LQ_ERR_FORMAT, "archive path too long: %s", next);
            memcpy(cur, next, (size_t)n + 1);
            continue;
        }
        break;
    }
    return lq_error(LQ_ERR_FORMAT, "archive holds no checkpoint (no config.json, .gguf or llama2.c .bin at its top)");
}

lq_status lq_archive_load(const char *path, lq_checkpoint **out) {
    lq_status st = LQ_OK;
    *out = NULL;
    const char *tmp = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/lq-archive-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    LQ_RETURN_IF(!mkdtemp(tmpl), LQ_ERR_IO, "%s: cannot create a temporary directory: %s", tmpl, strerror(errno));
    char inner[4096];
    int is_dir = 0;
    LQ_TRY(extract(path, tmpl));
    /* Call the loader of what was found directly, not lq_checkpoint_open: an
     * archive inside an archive (named .bin, sniffed by its magic) must not
     * recurse, or a self-containing archive would extract forever. */
    st = find_inner(tmpl, inner, sizeof inner, &is_dir);
    if (st == LQ_OK) {
        size_t l = strlen(inner);
        if (is_dir) st = lq_hf_dir_load(inner, out);
        else if (l > 5 && strcmp(inner + l - 5, ".gguf") == 0) st = lq_gguf_load(inner, out);
        else st = lq_llama2c_load(inner, NULL, out);
    }
    if (st != LQ_OK) {
        lq_error_prefix(st, "%s", path); /* the user named the archive, not our temp dir */
        goto fail;
    }
    (*out)->tmpdir = strdup(tmpl);
    free((*out)->source);
    (*out)->source = strdup(path);
    if (!(*out)->tmpdir || !(*out)->source) {
        lq_checkpoint_free(*out); /* removes tmpdir when it was set */
        *out = NULL;
        lq_remove_tree(tmpl);
        return lq_error(LQ_ERR_NOMEM, "out of memory");
    }
    return LQ_OK;
fail:
    lq_checkpoint_free(*out);
    *out = NULL;
    lq_remove_tree(tmpl);
    return st;
}
