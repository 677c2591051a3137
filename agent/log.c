/*
 * log.c - JSON-lines logger on stderr. See log.h.
 */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = KWB_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void kwb_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int kwb_log_enabled(int level)
{
    return level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int kwb_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void kwb_json_escape_append(char *buf, size_t size, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;

    if (size == 0) {
        return;
    }
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t n;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2);
            n = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2);
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (p + n >= size) {
            break;
        }
        memcpy(buf + p, esc, n);
        p += n;
    }
    buf[p < size ? p : size - 1] = '\0';
    *pos = p;
}

static void append_raw(char *buf, size_t size, size_t *pos, const char *s)
{
    size_t n = strlen(s);

    if (*pos + n >= size) {
        n = size - 1 - *pos;
    }
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
}

void kwb_log_kvv(int level, const char *module, const char *const *kv,
                 const char *fmt, va_list ap)
{
    char line[4096];
    char msg[2048];
    char ts[96];
    struct timespec now;
    struct tm tm;
    size_t pos = 0;

    if (!kwb_log_enabled(level)) {
        return;
    }
    if (level < 0 || level > 3) {
        level = KWB_LOG_ERROR;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
        snprintf(msg, sizeof(msg), "(unformattable message)");
    }

    append_raw(line, sizeof(line) - 2, &pos, "{\"ts\":\"");
    append_raw(line, sizeof(line) - 2, &pos, ts);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"level\":\"");
    append_raw(line, sizeof(line) - 2, &pos, level_names[level]);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"module\":\"");
    kwb_json_escape_append(line, sizeof(line) - 2, &pos, module);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"msg\":\"");
    kwb_json_escape_append(line, sizeof(line) - 2, &pos, msg);
    append_raw(line, sizeof(line) - 2, &pos, "\"");
    for (; kv && kv[0] && kv[1]; kv += 2) {
        append_raw(line, sizeof(line) - 2, &pos, ",\"");
        kwb_json_escape_append(line, sizeof(line) - 2, &pos, kv[0]);
        append_raw(line, sizeof(line) - 2, &pos, "\":\"");
        kwb_json_escape_append(line, sizeof(line) - 2, &pos, kv[1]);
        append_raw(line, sizeof(line) - 2, &pos, "\"");
    }
    /* sizeof(line) - 2 kept room for the closing brace and newline. */
    line[pos++] = '}';
    line[pos++] = '\n';
    /* One write: lines of different threads never interleave. A failed
     * write to stderr has nowhere to be reported. */
    if (write(STDERR_FILENO, line, pos) < 0) {
        return;
    }
}

void kwb_log_kv(int level, const char *module, const char *const *kv,
                const char *fmt, ...)
{
    va_list ap;

    if (!kwb_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    kwb_log_kvv(level, module, kv, fmt, ap);
    va_end(ap);
}
