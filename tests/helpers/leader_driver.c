/*
 * leader_driver.c - runs the leader elector alone, for
 * tests/integration/test_leader_election.py.
 *
 *   leader_driver --config FILE
 *
 * Loads the agent's config file (cluster and leader_election groups),
 * resolves cluster access, starts the elector and prints one line per
 * event on stdout:
 *   STARTED <identity>   campaigning
 *   LEADER               we hold the lease
 *   LOST                 leadership lost (exit 3, as the agent would)
 *   STOPPED              SIGTERM/SIGINT: lease released, exit 0
 * Errors go to stderr with exit 2.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "kubeconfig.h"
#include "leader.h"
#include "log.h"

static void say(const char *what, const char *arg)
{
    printf("%s%s%s\n", what, arg ? " " : "", arg ? arg : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct kwb_config cfg;
    struct kwb_kube_auth *auth = NULL;
    struct kwb_leader *l = NULL;
    char err[1024];
    sigset_t set;
    struct timespec tick = {0, 50 * 1000 * 1000};
    int was_leader = 0;
    int rc = 2;

    memset(&cfg, 0, sizeof(cfg));
    if (argc != 3 || strcmp(argv[1], "--config") != 0) {
        fprintf(stderr, "usage: %s --config FILE\n", argv[0]);
        return 2;
    }
    if (kwb_config_load(&cfg, argv[2], err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    kwb_log_set_level(cfg.log_level);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Signals are taken with sigtimedwait; the elector thread inherits the
     * mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (kwb_kube_auth_resolve(&cfg, &auth, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (kwb_leader_start(&cfg, auth, &l, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    say("STARTED", kwb_leader_identity(l));
    for (;;) {
        struct pollfd p = {kwb_leader_lost_fd(l), POLLIN, 0};
        int sig = sigtimedwait(&set, NULL, &tick);

        if (sig == SIGTERM || sig == SIGINT) {
            kwb_leader_stop(l);
            l = NULL;
            say("STOPPED", NULL);
            rc = 0;
            goto out;
        }
        if (poll(&p, 1, 0) == 1) {
            say("LOST", NULL);
            rc = 3;
            goto out;
        }
        if (!was_leader && kwb_leader_is_leader(l)) {
            was_leader = 1;
            say("LEADER", NULL);
        }
    }
out:
    kwb_leader_stop(l);
    kwb_kube_auth_free(auth);
    kwb_config_free(&cfg);
    curl_global_cleanup();
    return rc;
}
