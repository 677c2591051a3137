/*
 * fuzz_kubeconfig.c - libFuzzer target for kubeconfig parsing: every input
 * is a kubeconfig text given to kwb_kube_auth_from_kubeconfig_mem as if read
 * from a file in a directory that does not exist (so relative paths never
 * reach real files), then, when accepted, described and applied to a curl
 * handle.
 *
 * Invariants checked (abort on violation):
 * - failure leaves *out NULL and a non-empty message naming the file;
 * - success gives an http(s) server without a trailing slash and a
 *   "kubeconfig:" source;
 * - apply succeeds and adds at most one header, an Authorization header,
 *   exactly when the description names a token source.
 */
#include "config.h"
#include "kubeconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PATH "/nonexistent-kwb-fuzz/kubeconfig"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    struct kwb_config cfg;
    struct kwb_kube_auth *a = NULL;
    struct curl_slist *hdrs = NULL;
    char err[1024];
    char desc[2048];
    const char *server;
    char *text;
    CURL *h;
    size_t n;
    int whole;
    int rc;

    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    /* An exact-size copy so ASan catches reads past the end. */
    text = malloc(size ? size : 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    rc = kwb_kube_auth_from_kubeconfig_mem(text, size, FUZZ_PATH, &cfg, &a, err,
                                           sizeof(err));
    if (rc != 0) {
        if (rc > 0 || a || err[0] == '\0') {
            abort();
        }
        if (!strstr(err, FUZZ_PATH) && !strstr(err, "out of memory")) {
            abort();
        }
        goto out;
    }
    if (!a) {
        abort();
    }
    server = kwb_kube_auth_server(a);
    n = strlen(server);
    if ((strncmp(server, "https://", 8) != 0 &&
         strncmp(server, "http://", 7) != 0) ||
        server[n - 1] == '/') {
        abort();
    }
    if (strcmp(kwb_kube_auth_source(a), "kubeconfig:" FUZZ_PATH) != 0) {
        abort();
    }
    /* A long server URL can truncate the description: then it cannot be
     * compared. */
    whole = kwb_kube_auth_describe(a, desc, sizeof(desc)) < (int)sizeof(desc);
    h = curl_easy_init();
    if (h) {
        if (kwb_kube_auth_apply(a, h, &hdrs, err, sizeof(err)) != 0) {
            abort();
        }
        if (hdrs && (hdrs->next ||
                     strncmp(hdrs->data, "Authorization: Bearer ", 22) != 0)) {
            abort();
        }
        if (whole && !hdrs != !!strstr(desc, " token=none")) {
            abort();
        }
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
    }
out:
    kwb_kube_auth_free(a);
    free(text);
    return 0;
}
