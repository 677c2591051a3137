/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"...","level":"warn","module":"watch","msg":"...","watch":"v1/pods"}
 *
 * Thread: any. Each line is written with one write(2), so lines of
 * different threads never interleave. The level is checked before any
 * formatting. Never pass tokens, Authorization headers, HMAC keys, Secret
 * data or object bodies.
 */
#ifndef KWB_LOG_H
#define KWB_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum kwb_log_level {
    KWB_LOG_DEBUG = 0,
    KWB_LOG_INFO,
    KWB_LOG_WARN,
    KWB_LOG_ERROR,
};

void kwb_log_set_level(int level);
int kwb_log_enabled(int level);
/* Parse "debug"/"info"/"warn"/"error"; -1 when unknown. */
int kwb_log_level_parse(const char *name);

/*
 * kwb_log(level, module, kv, fmt, ...): `kv` is NULL or a NULL-terminated
 * array of key/value string pairs added as context ("watch", "v1/pods",
 * NULL). Values are JSON-escaped here.
 */
void kwb_log_kv(int level, const char *module, const char *const *kv,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void kwb_log_kvv(int level, const char *module, const char *const *kv,
                 const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#define kwb_log(level, module, ...)                                            \
    do {                                                                       \
        if (kwb_log_enabled(level))                                            \
            kwb_log_kv((level), (module), NULL, __VA_ARGS__);                  \
    } while (0)

#define KWB_DEBUG(module, ...) kwb_log(KWB_LOG_DEBUG, module, __VA_ARGS__)
#define KWB_INFO(module, ...)  kwb_log(KWB_LOG_INFO, module, __VA_ARGS__)
#define KWB_WARN(module, ...)  kwb_log(KWB_LOG_WARN, module, __VA_ARGS__)
#define KWB_ERROR(module, ...) kwb_log(KWB_LOG_ERROR, module, __VA_ARGS__)

/* Append `s` JSON-escaped (without quotes) to buf at *pos, never past
 * size-1; always NUL-terminates. Shared with event.c. */
void kwb_json_escape_append(char *buf, size_t size, size_t *pos, const char *s);

#endif
