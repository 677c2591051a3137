/*
 * test_cmstate.c - ConfigMap names of the configmap state backend: plain
 * sanitizing, hash suffix on request, on truncation and on a collision
 * between two watches of one config; every name a DNS-1123 subdomain of at
 * most 253 characters. And the resourceVersion-only checkpoint text
 * (kwb_checkpoint_format without a store) parses back to an empty set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "check.h"
#include "checkpoint.h"
#include "cmstate.h"
#include "config.h"
#include "kubeconfig.h"
#include "store.h"

static int dns_subdomain(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.')) {
            return 0;
        }
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

static void test_plain(void)
{
    char out[KWB_CMSTATE_NAME_MAX + 1];

    CHECK_EQ_INT(
        kwb_cmstate_name("kube-watch-bridge", "v1/pods", 0, out, sizeof(out)),
        0);
    CHECK_EQ_STR(out, "kube-watch-bridge-v1-pods");
    CHECK_EQ_INT(kwb_cmstate_name("kwb", "apps/v1/deployments@kube-system", 0,
                                  out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, "kwb-apps-v1-deployments-kube-system");
    /* '.', '/' and '@' each become one '-'; runs collapse. */
    CHECK_EQ_INT(kwb_cmstate_name("kwb", "example.com/v1/widgets@team-a", 0,
                                  out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, "kwb-example-com-v1-widgets-team-a");
    CHECK_EQ_INT(kwb_cmstate_name("kwb", "A..B//C@", 0, out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "kwb-a-b-c");
    CHECK(dns_subdomain(out));
    /* A prefix may hold dots (a DNS subdomain itself). */
    CHECK_EQ_INT(kwb_cmstate_name("team.kwb", "v1/pods", 0, out, sizeof(out)),
                 0);
    CHECK_EQ_STR(out, "team.kwb-v1-pods");
}

static void test_hashed(void)
{
    char out[KWB_CMSTATE_NAME_MAX + 1], id[400];

    /* SHA-256("v1/pods") starts f588731bc5. */
    CHECK_EQ_INT(
        kwb_cmstate_name("kube-watch-bridge", "v1/pods", 1, out, sizeof(out)),
        1);
    CHECK_EQ_STR(out, "kube-watch-bridge-v1-pods-f588731bc5");

    /* Too long: cut to 253 with the hash at the end. */
    memset(id, 'x', 300);
    memcpy(id, "example.com/v1/", 15);
    id[300] = '\0';
    CHECK_EQ_INT(kwb_cmstate_name("kwb", id, 0, out, sizeof(out)), 1);
    CHECK_EQ_INT(strlen(out), KWB_CMSTATE_NAME_MAX);
    CHECK(dns_subdomain(out));
    CHECK(strncmp(out, "kwb-example-com-v1-xxx", 22) == 0);
    CHECK_EQ_INT(out[KWB_CMSTATE_NAME_MAX - 11], '-');

    /* Exactly 253 fits without a hash; one more does not. */
    memset(id, 'y', sizeof(id));
    id[253 - 4] = '\0';
    CHECK_EQ_INT(kwb_cmstate_name("kwb", id, 0, out, sizeof(out)), 0);
    CHECK_EQ_INT(strlen(out), 253);
    id[253 - 4] = 'y';
    id[253 - 3] = '\0';
    CHECK_EQ_INT(kwb_cmstate_name("kwb", id, 0, out, sizeof(out)), 1);
    CHECK_EQ_INT(strlen(out), 253);
    CHECK(dns_subdomain(out));

    /* A cut that lands on a '-' does not leave "--hash". */
    memset(id, 'z', sizeof(id));
    id[300] = '\0';
    for (size_t i = 0; i < 300; i += 2) {
        id[i] = '/';
    }
    CHECK_EQ_INT(kwb_cmstate_name("kwb", id, 0, out, sizeof(out)), 1);
    CHECK(dns_subdomain(out));
    CHECK(strstr(out, "--") == NULL);
}

static void test_errors(void)
{
    char small[16], out[KWB_CMSTATE_NAME_MAX + 1];

    CHECK_EQ_INT(kwb_cmstate_name("kwb", "v1/pods", 0, small, sizeof(small)),
                 -ENAMETOOLONG);
    CHECK_EQ_INT(kwb_cmstate_name("", "v1/pods", 0, out, sizeof(out)), -EINVAL);
    CHECK_EQ_INT(kwb_cmstate_name("kwb", "", 0, out, sizeof(out)), -EINVAL);
}

/* Two watches whose plain names collide both get hashed names; a third
 * keeps its plain name. */
static void test_collision(void)
{
    static const char text[] =
        "cluster = { name = \"t\"; server = \"http://127.0.0.1:1\"; };\n"
        "state = { backend = \"configmap\"; configmap_namespace = \"ops\";\n"
        "          configmap_name_prefix = \"kwb\"; };\n"
        "watches = ( { api = \"example.com/v1\"; resource = \"widgets\"; },\n"
        "            { api = \"example-com/v1\"; resource = \"widgets\"; },\n"
        "            { api = \"v1\"; resource = \"pods\"; } );\n"
        "sinks = ( { type = \"file\"; path = \"/dev/null\"; } );\n";
    struct kwb_config cfg;
    struct kwb_kube_auth *auth = NULL;
    struct kwb_cmstate *cs = NULL;
    char err[1024];

    if (!CHECK(kwb_config_load_string(&cfg, text, strlen(text), "c.conf", err,
                                      sizeof(err)) == 0)) {
        fprintf(stderr, "    %s\n", err);
        return;
    }
    CHECK_EQ_INT(kwb_kube_auth_resolve(&cfg, &auth, err, sizeof(err)), 0);
    CHECK_EQ_INT(kwb_cmstate_new(&cfg, auth, &cs, err, sizeof(err)), 0);
    if (cs) {
        CHECK_EQ_STR(kwb_cmstate_where(cs, "example.com/v1/widgets"),
                     "ops/kwb-example-com-v1-widgets-dd86ae0a13");
        CHECK_EQ_STR(kwb_cmstate_where(cs, "example-com/v1/widgets"),
                     "ops/kwb-example-com-v1-widgets-f0b20b5b0c");
        CHECK_EQ_STR(kwb_cmstate_where(cs, "v1/pods"), "ops/kwb-v1-pods");
        CHECK(kwb_cmstate_where(cs, "v1/secrets") == NULL);
    }
    kwb_cmstate_free(cs);
    kwb_kube_auth_free(auth);
    kwb_config_free(&cfg);
}

/* What the backend stores when the set is too large: count 0. */
static void test_rv_only_text(void)
{
    struct kwb_store *s = NULL;
    char *text = NULL, *rv = NULL, err[256];
    size_t len = 0;

    CHECK_EQ_INT(kwb_checkpoint_format("v1/pods", "4711", NULL, &text, &len),
                 0);
    CHECK(text != NULL && strlen(text) == len);
    CHECK(text && strstr(text, "\ncount 0\nsha256 ") != NULL);
    CHECK_EQ_INT(kwb_checkpoint_parse(text, len, "t", "v1/pods", &rv, &s, err,
                                      sizeof(err)),
                 0);
    CHECK_EQ_STR(rv, "4711");
    CHECK(s && kwb_store_count(s) == 0);
    free(rv);
    kwb_store_free(s);
    free(text);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_plain();
    test_hashed();
    test_errors();
    test_collision();
    test_rv_only_text();
    curl_global_cleanup();
    return check_report();
}
