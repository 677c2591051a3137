/*
 * fuzz_webhook.c - libFuzzer target for the webhook sink's parsers of
 * outside or semi-outside input: the top-level member finder (used on
 * events for CloudEvents "time") and Retry-After values (from HTTP
 * answers). A found member must lie inside the input, between quotes, and
 * contain no unescaped quote; a Retry-After result is -1 or within
 * [0, KWB_WEBHOOK_MAX_RETRY_AFTER_MS].
 */
#include "webhook.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    const char *val = NULL;
    size_t vlen = 0;
    char *s;
    long ms;

    if (kwb_webhook_json_member(json, size, "observedAt", &val, &vlen) == 0) {
        if (val <= json || val + vlen >= json + size || val[-1] != '"' ||
            val[vlen] != '"') {
            abort();
        }
        for (size_t i = 0; i < vlen; i++) {
            if (val[i] == '\\') {
                i++;
            } else if (val[i] == '"') {
                abort();
            }
        }
    }
    s = malloc(size + 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    ms = kwb_webhook_retry_after_ms(s, 1700000000);
    if (ms != -1 && (ms < 0 || ms > KWB_WEBHOOK_MAX_RETRY_AFTER_MS)) {
        abort();
    }
    free(s);
    return 0;
}
