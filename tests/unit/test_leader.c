/*
 * test_leader.c - kwb_leader_start's validation of the election settings
 * (no thread is started, nothing is sent: every case here is refused
 * before that).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
#include "kubeconfig.h"
#include "leader.h"

static int passed, failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_HAS(hay, needle)                                                 \
    do {                                                                       \
        if (strstr((hay), (needle))) {                                         \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n",         \
                    __FILE__, __LINE__, (hay), (needle));                      \
        }                                                                      \
    } while (0)

static struct kwb_kube_auth *auth;

/* Start with cfg; expect -EINVAL and `needle` in the message. */
static void expect_refused(const struct kwb_config *cfg, const char *needle)
{
    struct kwb_leader *l = (struct kwb_leader *)&l;
    char err[512] = "";
    int rc = kwb_leader_start(cfg, auth, &l, err, sizeof(err));

    CHECK(rc == -EINVAL);
    CHECK(l == NULL);
    CHECK_HAS(err, needle);
    kwb_leader_stop(l);
}

static void base(struct kwb_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->leader_election = 1;
    cfg->lease_namespace = "default";
    cfg->lease_name = "kwb";
    cfg->identity = "replica-1";
    cfg->lease_duration_s = 15;
    cfg->renew_deadline_s = 10;
    cfg->retry_period_s = 2;
}

int main(void)
{
    struct kwb_config cfg;
    char err[512];
    char longid[400];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = "http://127.0.0.1:1";
    if (kwb_kube_auth_resolve(&cfg, &auth, err, sizeof(err)) != 0) {
        fprintf(stderr, "resolve: %s\n", err);
        return 1;
    }

    base(&cfg);
    cfg.renew_deadline_s = 15;
    expect_refused(&cfg, "lease_duration_seconds (15) > "
                         "renew_deadline_seconds (15)");
    base(&cfg);
    cfg.retry_period_s = 10;
    expect_refused(&cfg, "retry_period_seconds (10)");
    /* Defaults (0) are 15/10/2; a lease of 10 is then too short. */
    base(&cfg);
    cfg.lease_duration_s = 10;
    cfg.renew_deadline_s = 0;
    expect_refused(&cfg, "renew_deadline_seconds (10)");
    base(&cfg);
    cfg.lease_name = "Not_A_Name";
    expect_refused(&cfg, "must be DNS names");
    base(&cfg);
    cfg.lease_namespace = "-bad";
    expect_refused(&cfg, "\"-bad\"");
    base(&cfg);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    cfg.identity = longid;
    expect_refused(&cfg, "identity longer than");

    kwb_leader_stop(NULL);
    kwb_kube_auth_free(auth);
    curl_global_cleanup();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
