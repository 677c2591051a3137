/*
 * checkpoint.c - atomic, checksummed per-watch checkpoints. See
 * checkpoint.h.
 *
 * Format (text, so an operator can read it):
 *   KWB-CHECKPOINT 1
 *   watch <id>
 *   rv <resourceVersion>
 *   count <n>
 *   <uid>\t<rv>\t<namespace>\t<name>      (n lines, '%', TAB, LF escaped)
 *   sha256 <hex of every byte above>
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAGIC    "KWB-CHECKPOINT 1\n"
#define MAX_FILE (1ull << 32) /* 4 GiB: far above 1M objects */

int kwb_checkpoint_path(const char *dir, const char *watch_id, char *out,
                        size_t size)
{
    char name[512];
    size_t j = 0;

    for (const char *p = watch_id; *p && j + 1 < sizeof(name); p++) {
        char c = *p;
        /* Watch ids are DNS names joined by '/' and '@': '/' is the only
         * character a file name cannot hold, '_' never occurs in ids. */
        name[j++] = (c == '/') ? '_' : c;
    }
    name[j] = '\0';
    int n = snprintf(out, size, "%s/%s.ckpt", dir, name);
    return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

/*
 * Output buffer. In memory (fd < 0) it grows to hold the whole text; to a
 * file it is a fixed window that is hashed and written whenever it fills,
 * so a checkpoint of a million objects never needs its size in memory.
 */
struct wbuf {
    char *p;
    size_t len, cap;
    int fd;         /* -1: in memory */
    EVP_MD_CTX *md; /* with fd: running SHA-256 of what was written */
    int err;        /* first write error (negative errno) */
};

/* 64 KiB: SHA-256 and write() cost per byte, not per call, so a larger
 * window buys nothing; it stays below malloc's mmap threshold (128 KiB),
 * where freeing 1 MiB after every checkpoint raised that threshold to
 * 1 MiB and left every thread arena keeping up to 2 MiB of free memory. */
#define WB_WINDOW (64u << 10)

static int write_all(int fd, const char *p, size_t n);

static int wb_flush(struct wbuf *w)
{
    if (w->fd < 0 || w->len == 0) {
        return w->err;
    }
    if (!EVP_DigestUpdate(w->md, w->p, w->len)) {
        w->err = -EIO;
    } else if (w->err == 0) {
        w->err = write_all(w->fd, w->p, w->len);
    }
    w->len = 0;
    return w->err;
}

static int wb_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->fd >= 0 && w->len + n > w->cap && wb_flush(w) < 0) {
        return w->err;
    }
    if (w->len + n > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 65536;
        while (ncap < w->len + n) {
            ncap *= 2;
        }
        char *np = realloc(w->p, ncap);
        if (!np) {
            return -ENOMEM;
        }
        w->p = np;
        w->cap = ncap;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return 0;
}

/* A field, '%', TAB and LF percent-encoded; plain runs in one copy. */
static int wb_field(struct wbuf *w, const char *s)
{
    for (;;) {
        size_t n = strcspn(s, "%\t\n");
        const char *esc;
        int rc;

        if (n && (rc = wb_put(w, s, n)) < 0) {
            return rc;
        }
        s += n;
        switch (*s) {
        case '\0':
            return 0;
        case '%':
            esc = "%25";
            break;
        case '\t':
            esc = "%09";
            break;
        default:
            esc = "%0A";
            break;
        }
        if ((rc = wb_put(w, esc, 3)) < 0) {
            return rc;
        }
        s++;
    }
}

struct visit {
    struct wbuf *w;
    int rc;
};

static int write_entry(void *opaque, const struct kwb_store_entry *e)
{
    struct visit *v = opaque;

    int rc;

    if ((rc = wb_field(v->w, e->uid)) < 0 || (rc = wb_put(v->w, "\t", 1)) < 0 ||
        (rc = wb_field(v->w, e->rv)) < 0 || (rc = wb_put(v->w, "\t", 1)) < 0 ||
        (rc = wb_field(v->w, e->namespace_)) < 0 ||
        (rc = wb_put(v->w, "\t", 1)) < 0 ||
        (rc = wb_field(v->w, e->name)) < 0 ||
        (rc = wb_put(v->w, "\n", 1)) < 0) {
        v->rc = rc;
        return 1;
    }
    return 0;
}

static void to_hex(const unsigned char md[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";

    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static void sha256_hex(const char *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    to_hex(md, out);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Everything above the trailer. 0 or the buffer's error. */
static int format_body(struct wbuf *w, const char *watch_id, const char *rv,
                       const struct kwb_store *s)
{
    char line[64];
    struct visit v = {w, 0};
    int rc, n;

    if ((rc = wb_put(w, MAGIC, strlen(MAGIC))) < 0 ||
        (rc = wb_put(w, "watch ", 6)) < 0 || (rc = wb_field(w, watch_id)) < 0 ||
        (rc = wb_put(w, "\nrv ", 4)) < 0 || (rc = wb_field(w, rv)) < 0 ||
        (rc = wb_put(w, "\n", 1)) < 0) {
        return rc;
    }
    n = snprintf(line, sizeof(line), "count %zu\n", s ? kwb_store_count(s) : 0);
    if ((rc = wb_put(w, line, (size_t)n)) < 0) {
        return rc;
    }
    if (s) {
        kwb_store_foreach(s, 0, write_entry, &v);
    }
    return v.rc;
}

int kwb_checkpoint_format(const char *watch_id, const char *rv,
                          const struct kwb_store *s, char **out, size_t *len)
{
    char hex[65], line[128];
    struct wbuf w = {.fd = -1};
    int n;

    *out = NULL;
    *len = 0;
    if (format_body(&w, watch_id, rv, s) < 0) {
        goto nomem;
    }
    sha256_hex(w.p, w.len, hex);
    n = snprintf(line, sizeof(line), "sha256 %s\n", hex);
    /* The NUL is not part of the text; it makes it a C string. */
    if (wb_put(&w, line, (size_t)n) || wb_put(&w, "", 1)) {
        goto nomem;
    }
    *out = w.p;
    *len = w.len - 1;
    return 0;
nomem:
    free(w.p);
    return -ENOMEM;
}

/* Stream the checkpoint into fd through a fixed window, hashing as it
 * goes; the trailer carries the digest of everything before it. */
static int write_stream(int fd, const char *watch_id, const char *rv,
                        const struct kwb_store *s)
{
    struct wbuf w = {.fd = fd};
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65], line[128];
    int rc, n;

    w.p = malloc(WB_WINDOW);
    w.cap = WB_WINDOW;
    w.md = EVP_MD_CTX_new();
    if (!w.p || !w.md || !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL)) {
        rc = -ENOMEM;
        goto out;
    }
    rc = format_body(&w, watch_id, rv, s);
    if (rc == 0) {
        rc = wb_flush(&w);
    }
    if (rc == 0 && !EVP_DigestFinal_ex(w.md, md, &mdlen)) {
        rc = -EIO;
    }
    if (rc == 0) {
        to_hex(md, hex);
        n = snprintf(line, sizeof(line), "sha256 %s\n", hex);
        rc = write_all(fd, line, (size_t)n);
    }
out:
    EVP_MD_CTX_free(w.md);
    free(w.p);
    return rc;
}

int kwb_checkpoint_write(const char *dir, const char *watch_id, const char *rv,
                         const struct kwb_store *s, char *errbuf,
                         size_t errsize)
{
    char path[4096], tmp[4200];
    int fd = -1, dfd = -1, rc;
    int n;

    rc = kwb_checkpoint_path(dir, watch_id, path, sizeof(path));
    if (rc < 0) {
        snprintf(errbuf, errsize, "%s: path too long", dir);
        goto out;
    }
    n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        snprintf(errbuf, errsize, "%s: path too long", dir);
        goto out;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(errbuf, errsize, "%s: cannot create: %s", dir,
                 strerror(errno));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(errbuf, errsize, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = write_stream(fd, watch_id, rv, s);
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    fd = -1;
    if (rc < 0) {
        snprintf(errbuf, errsize, "%s: %s", tmp, strerror(-rc));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        snprintf(errbuf, errsize, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* The rename is durable only once the directory is. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        rc = -errno;
        snprintf(errbuf, errsize, "fsync %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (dfd >= 0) {
        close(dfd);
    }
    return rc;
}

/* Undo wb_field's escaping in place. */
static int unescape_field(char *s)
{
    char *r = s, *w = s;

    while (*r) {
        if (*r == '%') {
            if (strncmp(r, "%25", 3) == 0) {
                *w++ = '%';
            } else if (strncmp(r, "%09", 3) == 0) {
                *w++ = '\t';
            } else if (strncmp(r, "%0A", 3) == 0) {
                *w++ = '\n';
            } else {
                return -1;
            }
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return 0;
}

/* Next line of [*p, end) into a NUL-terminated string (in place: the
 * buffer is ours). NULL at the end or when the last line has no LF. */
static char *next_line(char **p, char *end)
{
    char *s = *p, *nl;

    if (s >= end) {
        return NULL;
    }
    nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl) {
        return NULL;
    }
    *nl = '\0';
    *p = nl + 1;
    return s;
}

int kwb_checkpoint_parse(char *buf, size_t len, const char *path,
                         const char *watch_id, char **rv, struct kwb_store **s,
                         char *errbuf, size_t errsize)
{
    char hex[65];
    char *p, *end, *line, *trailer;
    struct kwb_store *st = NULL;
    size_t count, got = 0, lineno = 4;
    int rc;

    *rv = NULL;
    *s = NULL;
    /* The trailer is the last line; everything before it is hashed. */
    rc = -EBADMSG;
    if (len < strlen(MAGIC) || memcmp(buf, MAGIC, strlen(MAGIC)) != 0) {
        snprintf(errbuf, errsize, "%s:1: not a checkpoint file", path);
        goto out;
    }
    if (len < 73 || buf[len - 1] != '\n') {
        snprintf(errbuf, errsize, "%s: truncated (no trailer)", path);
        goto out;
    }
    trailer = buf + len - 72; /* "sha256 " + 64 hex + "\n" */
    if (trailer[-1] != '\n' || strncmp(trailer, "sha256 ", 7) != 0) {
        snprintf(errbuf, errsize, "%s: truncated (no trailer)", path);
        goto out;
    }
    sha256_hex(buf, (size_t)(trailer - buf), hex);
    if (memcmp(hex, trailer + 7, 64) != 0) {
        snprintf(errbuf, errsize, "%s: checksum mismatch (corrupt)", path);
        goto out;
    }
    p = buf + strlen(MAGIC);
    end = trailer;
    line = next_line(&p, end);
    if (!line || strncmp(line, "watch ", 6) != 0) {
        snprintf(errbuf, errsize, "%s:2: expected 'watch'", path);
        goto out;
    }
    if (unescape_field(line + 6) < 0 || strcmp(line + 6, watch_id) != 0) {
        snprintf(errbuf, errsize, "%s:2: checkpoint of another watch", path);
        goto out;
    }
    line = next_line(&p, end);
    if (!line || strncmp(line, "rv ", 3) != 0 || unescape_field(line + 3)) {
        snprintf(errbuf, errsize, "%s:3: expected 'rv'", path);
        goto out;
    }
    *rv = strdup(line + 3);
    line = next_line(&p, end);
    if (!line || sscanf(line, "count %zu", &count) != 1) {
        snprintf(errbuf, errsize, "%s:4: expected 'count'", path);
        goto out;
    }
    st = kwb_store_new();
    if (!*rv || !st) {
        rc = -ENOMEM;
        snprintf(errbuf, errsize, "out of memory");
        goto out;
    }
    while ((line = next_line(&p, end))) {
        char *f[4];
        lineno++;
        f[0] = line;
        for (int i = 1; i < 4; i++) {
            f[i] = f[i - 1] ? strchr(f[i - 1], '\t') : NULL;
            if (f[i]) {
                *f[i]++ = '\0';
            }
        }
        if (!f[3] || unescape_field(f[0]) || unescape_field(f[1]) ||
            unescape_field(f[2]) || unescape_field(f[3]) || !f[0][0]) {
            snprintf(errbuf, errsize, "%s:%zu: malformed entry", path, lineno);
            goto out;
        }
        int prc = kwb_store_put(st, f[0], f[1], f[3], f[2]);
        if (prc < 0) {
            rc = prc == -ENOMEM ? -ENOMEM : -EBADMSG;
            snprintf(errbuf, errsize, "%s:%zu: cannot load entry", path,
                     lineno);
            goto out;
        }
        got++;
    }
    if (p != end || got != count) {
        snprintf(errbuf, errsize, "%s: %zu entries, header says %zu", path, got,
                 count);
        goto out;
    }
    *s = st;
    st = NULL;
    rc = 0;
out:
    if (rc < 0) {
        free(*rv);
        *rv = NULL;
    }
    kwb_store_free(st);
    return rc;
}

int kwb_checkpoint_read(const char *dir, const char *watch_id, char **rv,
                        struct kwb_store **s, char *errbuf, size_t errsize)
{
    char path[4096];
    char *buf = NULL;
    struct stat sb;
    int fd = -1, rc;
    ssize_t r;
    size_t len = 0, cap = 0;

    *rv = NULL;
    *s = NULL;
    rc = kwb_checkpoint_path(dir, watch_id, path, sizeof(path));
    if (rc < 0) {
        snprintf(errbuf, errsize, "%s: path too long", dir);
        return rc;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc != -ENOENT) {
            snprintf(errbuf, errsize, "%s: %s", path, strerror(errno));
        }
        return rc;
    }
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        snprintf(errbuf, errsize, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((unsigned long long)sb.st_size > MAX_FILE) {
        rc = -EBADMSG;
        snprintf(errbuf, errsize, "%s: too large", path);
        goto out;
    }
    /* A mapping of its own, not malloc: freeing a buffer of the file's
     * size (~90 bytes per object) raised glibc's mmap threshold to it (up
     * to 32 MiB) and its trim threshold to twice that, for the agent's
     * life, so every thread arena kept that much freed memory resident. */
    cap = (size_t)sb.st_size + 1;
    buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
               -1, 0);
    if (buf == MAP_FAILED) {
        buf = NULL;
        rc = -ENOMEM;
        snprintf(errbuf, errsize, "out of memory");
        goto out;
    }
    while (len < (size_t)sb.st_size) {
        r = read(fd, buf + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = -errno;
            snprintf(errbuf, errsize, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    buf[len] = '\0';

    rc = kwb_checkpoint_parse(buf, len, path, watch_id, rv, s, errbuf, errsize);
out:
    if (buf) {
        munmap(buf, cap);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}
