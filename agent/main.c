/*
 * main.c - flags, --check, signals, start/stop order.
 *
 * Start: config -> cluster access -> HTTP endpoint -> [leader election]
 * -> checkpoints -> pipeline (sinks) -> watch workers. A standby reads
 * checkpoints only once it leads: with a shared backend (ConfigMaps) the
 * state it takes over is the last leader's, not what it saw at start.
 * Stop (SIGTERM/SIGINT): workers stop and hand over what they parsed ->
 * the pipeline drains and waits for acks until the shutdown deadline ->
 * final checkpoints -> exit 0. A second signal exits at once; checkpoints
 * are replaced atomically, so state is never half-written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "checkpoint.h"
#include "cmstate.h"
#include "config.h"
#include "http.h"
#include "kubeconfig.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"
#include "watch.h"

#define HASH_KEY_MAX 4096

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kube-watch-bridge --config FILE [--check]\n"
            "       kube-watch-bridge --version | --help\n"
            "\n"
            "Watches Kubernetes resources and forwards every ADDED, MODIFIED\n"
            "and DELETED change to the configured sinks (file, kafka,\n"
            "webhook) with at-least-once delivery.\n"
            "\n"
            "  -c, --config FILE  configuration file (libconfig syntax)\n"
            "      --check        validate the configuration and exit:\n"
            "                     0 when valid, else FILE:LINE: message\n"
            "  -V, --version      print the version\n"
            "  -h, --help         this text\n");
}

/* Read the redaction key; it is wiped by the caller. */
static int read_key(const char *path, unsigned char *buf, size_t *len,
                    char *errbuf, size_t errsize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        snprintf(errbuf, errsize, "redaction.hash_key_file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    n = read(fd, buf, HASH_KEY_MAX);
    close(fd);
    if (n <= 0) {
        snprintf(errbuf, errsize, "redaction.hash_key_file %s: %s", path,
                 n < 0 ? strerror(errno) : "empty");
        return -1;
    }
    /* One trailing newline is not part of the key. */
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    *len = (size_t)n;
    return 0;
}

static void *second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig;

    if (sigwait(set, &sig) == 0) {
        KWB_WARN("main", "second signal %d: exiting at once", sig);
        _exit(130);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check = 0, rc = 1;
    struct kwb_config cfg;
    char errbuf[2048];
    struct kwb_kube_auth *auth = NULL;
    struct kwb_metrics *metrics = NULL;
    struct kwb_pipeline *pipeline = NULL;
    struct kwb_http *http = NULL;
    struct kwb_leader *leader = NULL;
    struct kwb_cmstate *cms = NULL;
    struct kwb_watch **watches = NULL;
    struct kwb_pipeline_watch_init *winit = NULL;
    struct kwb_store **live = NULL;
    char **resume = NULL;
    int *first = NULL;
    const char **wids = NULL, **snames = NULL;
    unsigned char hash_key[HASH_KEY_MAX];
    size_t hash_key_len = 0;
    int cfg_loaded = 0, curl_inited = 0;
    sigset_t sigs;
    struct stat st;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kube-watch-bridge: %s needs a FILE\n",
                        argv[i]);
                return 2;
            }
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--version") == 0 ||
                   strcmp(argv[i], "-V") == 0) {
            printf("kube-watch-bridge %s\n", KWB_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr,
                    "kube-watch-bridge: unknown option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "kube-watch-bridge: --config FILE is required "
                        "(see --help)\n");
        return 2;
    }
    if (stat(config_path, &st) < 0) {
        fprintf(stderr, "kube-watch-bridge: %s: %s\n", config_path,
                strerror(errno));
        return 2;
    }

    if (kwb_config_load(&cfg, config_path, errbuf, sizeof(errbuf)) < 0) {
        fprintf(stderr, "%s\n", errbuf);
        return 1;
    }
    cfg_loaded = 1;
    if (check) {
        if (kwb_config_check_sinks(&cfg, errbuf, sizeof(errbuf)) < 0) {
            fprintf(stderr, "%s\n", errbuf);
            rc = 1;
        } else {
            printf("%s: OK\n", config_path);
            rc = 0;
        }
        goto out;
    }
    kwb_log_set_level(cfg.log_level);

    /* Signals are handled by sigwait on this thread only: block them
     * before any thread starts so every thread inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        KWB_ERROR("main", "libcurl initialisation failed");
        goto out;
    }
    curl_inited = 1;
    if (kwb_kube_auth_resolve(&cfg, &auth, errbuf, sizeof(errbuf)) < 0) {
        KWB_ERROR("main", "cluster access: %s", errbuf);
        goto out;
    }
    KWB_INFO("main", "kube-watch-bridge %s: cluster %s via %s (%s)",
             KWB_VERSION, cfg.cluster_name, kwb_kube_auth_server(auth),
             kwb_kube_auth_source(auth));
    if (cfg.state_backend && strcmp(cfg.state_backend, "configmap") == 0) {
        if (kwb_cmstate_new(&cfg, auth, &cms, errbuf, sizeof(errbuf)) < 0) {
            KWB_ERROR("main", "%s", errbuf);
            goto out;
        }
        KWB_INFO("main", "checkpoints in ConfigMaps in namespace %s",
                 cfg.state_configmap_namespace);
    }
    if (cfg.redaction_hash_key_file &&
        read_key(cfg.redaction_hash_key_file, hash_key, &hash_key_len, errbuf,
                 sizeof(errbuf)) < 0) {
        KWB_ERROR("main", "%s", errbuf);
        goto out;
    }

    wids = calloc(cfg.n_watches, sizeof(*wids));
    snames = calloc(cfg.n_sinks, sizeof(*snames));
    watches = calloc(cfg.n_watches, sizeof(*watches));
    winit = calloc(cfg.n_watches, sizeof(*winit));
    live = calloc(cfg.n_watches, sizeof(*live));
    resume = calloc(cfg.n_watches, sizeof(*resume));
    first = calloc(cfg.n_watches, sizeof(*first));
    if (!wids || !snames || !watches || !winit || !live || !resume || !first) {
        KWB_ERROR("main", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg.n_watches; i++) {
        wids[i] = cfg.watches[i].id;
    }
    for (size_t i = 0; i < cfg.n_sinks; i++) {
        snames[i] = cfg.sinks[i].name;
    }
    metrics = kwb_metrics_new(wids, cfg.n_watches, snames, cfg.n_sinks);
    if (!metrics) {
        KWB_ERROR("main", "out of memory");
        goto out;
    }

    if (cfg.metrics_address) {
        http = kwb_http_start(cfg.metrics_address, metrics, errbuf,
                              sizeof(errbuf));
        if (!http) {
            KWB_ERROR("main", "metrics_address: %s", errbuf);
            goto out;
        }
        KWB_INFO("main", "metrics, /healthz and /readyz on %s (port %d)",
                 cfg.metrics_address, kwb_http_port(http));
    }
    if (cfg.leader_election) {
        /* Only the leader forwards; a standby waits here with neither
         * sinks nor watches, beating the heartbeat for /healthz itself. */
        if (kwb_leader_start(&cfg, auth, &leader, errbuf, sizeof(errbuf)) < 0) {
            KWB_ERROR("main", "leader election: %s", errbuf);
            goto out;
        }
        KWB_INFO("main", "waiting for leadership as %s",
                 kwb_leader_identity(leader));
        for (;;) {
            struct timespec zero = {0, 0};
            atomic_store(&metrics->heartbeat_ms, kwb_now_ms());
            int lr = kwb_leader_wait(leader, 200);
            if (lr == 1) {
                break;
            }
            int sig = sigtimedwait(&sigs, NULL, &zero);
            if (lr < 0 || sig == SIGTERM || sig == SIGINT) {
                KWB_INFO("main", "stopped before becoming leader");
                rc = 0;
                goto stop;
            }
        }
        KWB_INFO("main", "leading: reading checkpoints, starting watches");
    }
    /* Checkpoints: the committed store goes to the pipeline, a copy to
     * the worker as its live store. */
    for (size_t i = 0; i < cfg.n_watches; i++) {
        struct kwb_store *st_ = NULL;
        char *rv = NULL;
        const char *kv[] = {"watch", cfg.watches[i].id, NULL};
        int omitted = 0;
        int crc = cms ? kwb_cmstate_read(cms, cfg.watches[i].id, &rv, &st_,
                                         &omitted, errbuf, sizeof(errbuf))
                      : kwb_checkpoint_read(cfg.state_dir, cfg.watches[i].id,
                                            &rv, &st_, errbuf, sizeof(errbuf));
        if (crc == 0 && omitted) {
            /* An expired RV then means a relist against an empty set:
             * every object again, deletions of the downtime missed. */
            kwb_log_kv(KWB_LOG_WARN, "main", kv,
                       "resuming from checkpoint at resourceVersion %s "
                       "without its known-object set (too large for a "
                       "ConfigMap)",
                       rv);
        } else if (crc == 0) {
            kwb_log_kv(KWB_LOG_INFO, "main", kv,
                       "resuming from checkpoint at resourceVersion %s with "
                       "%zu known objects",
                       rv, kwb_store_count(st_));
        } else if (crc == -ENOENT) {
            first[i] = 1;
        } else if (cms && crc != -EBADMSG) {
            /* The API server did not answer: relisting and then
             * overwriting a good checkpoint would forget its objects
             * (their deletions would be missed). Exit; the pod restarts. */
            kwb_log_kv(KWB_LOG_ERROR, "main", kv, "cannot read checkpoint: %s",
                       errbuf);
            goto out;
        } else {
            /* Corrupt or unreadable: relist everything against an empty
             * set. Objects are emitted again rather than lost. */
            kwb_log_kv(KWB_LOG_ERROR, "main", kv,
                       "checkpoint unusable (%s); relisting everything",
                       errbuf);
        }
        winit[i].committed = st_ ? st_ : kwb_store_new();
        live[i] =
            winit[i].committed ? kwb_store_clone(winit[i].committed) : NULL;
        winit[i].resume_rv = rv;
        resume[i] = rv;
        if (!winit[i].committed || !live[i]) {
            KWB_ERROR("main", "out of memory");
            goto out;
        }
    }

    pipeline = kwb_pipeline_new(&cfg, metrics, winit, errbuf, sizeof(errbuf));
    if (!pipeline) {
        KWB_ERROR("main", "%s", errbuf);
        goto out;
    }
    if (cms) {
        kwb_pipeline_set_cmstate(pipeline, cms);
    }
    if (kwb_pipeline_start(pipeline) < 0) {
        goto out;
    }
    atomic_store(&metrics->leader, 1);

    for (size_t i = 0; i < cfg.n_watches; i++) {
        watches[i] = kwb_watch_new(
            &cfg, i, auth, pipeline, &metrics->watches[i], live[i], resume[i],
            first[i], hash_key_len ? hash_key : NULL, hash_key_len);
        if (!watches[i]) {
            KWB_ERROR("main", "out of memory");
            goto stop;
        }
        live[i] = NULL; /* taken by the worker */
        if (kwb_watch_start(watches[i]) < 0) {
            KWB_ERROR("main", "cannot start a watch thread");
            goto stop;
        }
    }

    for (;;) {
        struct timespec tick = {0, 200 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            KWB_INFO("main", "signal %d: shutting down", sig);
            rc = 0;
            break;
        }
        if (leader && !kwb_leader_is_leader(leader)) {
            /* As client-go's OnStoppedLeading: stop forwarding and exit
             * non-zero so the pod restarts and campaigns again. */
            KWB_ERROR("main", "leadership lost: stopping so that only one "
                              "replica forwards");
            rc = 1;
            break;
        }
    }
stop : {
    pthread_t t2;
    /* From here on a second signal ends the process at once. */
    if (pthread_create(&t2, NULL, second_signal, &sigs) == 0) {
        pthread_detach(t2);
    }
}
    for (size_t i = 0; i < cfg.n_watches; i++) {
        if (watches[i]) {
            kwb_watch_request_stop(watches[i]);
        }
    }
    for (size_t i = 0; i < cfg.n_watches; i++) {
        kwb_watch_join(watches[i]);
    }
    if (pipeline) {
        int prc =
            kwb_pipeline_stop(pipeline, kwb_now_ms() + cfg.shutdown_timeout_ms);
        if (prc == -ETIMEDOUT) {
            KWB_WARN("main", "shutdown deadline reached with events not yet "
                             "acknowledged; they follow the final "
                             "checkpoint and will be delivered again");
        } else {
            KWB_INFO("main", "all events acknowledged; final checkpoints "
                             "written");
        }
    }
out:
    kwb_leader_stop(leader);
    if (watches) {
        for (size_t i = 0; i < cfg.n_watches; i++) {
            kwb_watch_free(watches[i]);
        }
    }
    kwb_pipeline_stop(pipeline, kwb_now_ms());
    kwb_http_stop(http);
    kwb_pipeline_free(pipeline);
    kwb_cmstate_free(cms);
    if (winit) {
        for (size_t i = 0; i < cfg.n_watches; i++) {
            kwb_store_free(winit[i].committed);
        }
    }
    if (live) {
        for (size_t i = 0; i < cfg.n_watches; i++) {
            kwb_store_free(live[i]);
        }
    }
    if (resume) {
        for (size_t i = 0; i < cfg.n_watches; i++) {
            free(resume[i]);
        }
    }
    kwb_metrics_free(metrics);
    kwb_kube_auth_free(auth);
    OPENSSL_cleanse(hash_key, sizeof(hash_key));
    free(watches);
    free(winit);
    free(live);
    free(resume);
    free(first);
    free(wids);
    free(snames);
    if (curl_inited) {
        curl_global_cleanup();
    }
    if (cfg_loaded) {
        kwb_config_free(&cfg);
    }
    return rc;
}
