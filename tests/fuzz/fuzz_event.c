/*
 * fuzz_event.c - libFuzzer target for the object rewriting of Secrets and
 * trimmed objects (kwb_event_rewrite). The first byte picks the options
 * (bit 0 redact, bit 1 HMAC key, bit 2 trim managedFields); the rest is
 * the object. Whatever comes out must be a JSON object whose data and
 * stringData members have the input's keys, each value "redacted" or
 * "hmac-sha256:" + 64 hex digits (every such member, duplicates
 * included; one that is not an object is "redacted" whole), and no
 * metadata.managedFields when trimming: no input lets a Secret value
 * through.
 */
#include "event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(const cJSON *o)
{
    int n = 0;
    const cJSON *c;

    cJSON_ArrayForEach(c, o)
    {
        n++;
    }
    return n;
}

static void check_values(const cJSON *in, const cJSON *out, int hashed)
{
    const cJSON *v;

    if (!cJSON_IsObject(in)) {
        return;
    }
    if (!cJSON_IsObject(out) || count(in) != count(out)) {
        abort();
    }
    cJSON_ArrayForEach(v, out)
    {
        const char *s = cJSON_GetStringValue(v);

        if (!s || !v->string ||
            !cJSON_GetObjectItemCaseSensitive(in, v->string)) {
            abort();
        }
        if (!hashed) {
            if (strcmp(s, "redacted") != 0) {
                abort();
            }
            continue;
        }
        if (strncmp(s, "hmac-sha256:", 12) != 0 || strlen(s) != 12 + 64 ||
            strspn(s + 12, "0123456789abcdef") != 64) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[] = "fuzz-hash-key";
    struct kwb_event_ctx ctx;
    char err[256], *out;
    int redact, hashed, trim;
    cJSON *in, *res;

    if (size < 1) {
        return 0;
    }
    redact = data[0] & 1;
    hashed = (data[0] >> 1) & 1;
    trim = (data[0] >> 2) & 1;
    if (kwb_event_ctx_init(&ctx, "c", "secrets", "v1", trim,
                           hashed ? key : NULL,
                           hashed ? sizeof(key) - 1 : 0) != 0) {
        abort();
    }
    out = kwb_event_rewrite(&ctx, (const char *)data + 1, size - 1, redact, err,
                            sizeof(err));
    if (out) {
        in = cJSON_ParseWithLength((const char *)data + 1, size - 1);
        res = cJSON_Parse(out);
        if (!cJSON_IsObject(in) || !cJSON_IsObject(res)) {
            abort();
        }
        if (redact) {
            const cJSON *m;

            /* Every data/stringData member, duplicates included (JSON
             * readers differ on which duplicate wins). */
            cJSON_ArrayForEach(m, res)
            {
                if (m->string && (strcmp(m->string, "data") == 0 ||
                                  strcmp(m->string, "stringData") == 0)) {
                    /* an object of replaced values, or replaced whole */
                    if (!cJSON_IsObject(m) && !cJSON_IsNull(m) &&
                        strcmp(cJSON_GetStringValue(m) ? m->valuestring : "",
                               "redacted") != 0) {
                        abort();
                    }
                    check_values(m, m, hashed);
                }
            }
            check_values(cJSON_GetObjectItemCaseSensitive(in, "data"),
                         cJSON_GetObjectItemCaseSensitive(res, "data"), hashed);
            check_values(cJSON_GetObjectItemCaseSensitive(in, "stringData"),
                         cJSON_GetObjectItemCaseSensitive(res, "stringData"),
                         hashed);
        }
        if (trim) {
            const cJSON *md = cJSON_GetObjectItemCaseSensitive(res, "metadata");
            if (cJSON_IsObject(md) &&
                cJSON_GetObjectItemCaseSensitive(md, "managedFields")) {
                abort();
            }
        }
        cJSON_Delete(in);
        cJSON_Delete(res);
        free(out);
    }
    kwb_event_ctx_free(&ctx);
    return 0;
}
