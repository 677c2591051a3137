/*
 * test_config.c - config.c: every error message with its FILE:LINE,
 * defaults, parsed values, quoted setting names, @include, the sinks'
 * own validation (--check) and the dump's redaction. No network.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "malloc_probe.h"
#include "sink.h"

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

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ == b_) {                                                        \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,    \
                    __LINE__, #a, a_, b_);                                     \
        }                                                                      \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                 \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n",          \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)",                \
                    b_ ? b_ : "(null)");                                       \
        }                                                                      \
    } while (0)

#define CHECK_DBL(a, b) CHECK((a) > (b)-1e-9 && (a) < (b) + 1e-9)

static char tmpdir[64];

/* Writes `text` to <tmpdir>/<name>; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

#define CLUSTER                                                                \
    "cluster = { name = \"c1\"; server = \"http://127.0.0.1:8080\"; };\n"
#define WATCHES "watches = ( { api = \"v1\"; resource = \"pods\"; } );\n"
#define SINKS   "sinks = ( { type = \"file\"; path = \"/tmp/kwb.jsonl\"; } );\n"
#define VALID   CLUSTER WATCHES SINKS

struct bad {
    const char *text;
    const char *want; /* errbuf after "FILE", e.g. ":3: ..." or ": ..." */
};

static const struct bad bad_configs[] = {
    /* libconfig's own errors */
    {CLUSTER "watches = (\n  { api = \"v1\";\n    resource = ; }\n);\n" SINKS,
     ":4: syntax error"},
    {CLUSTER "initial = \"emit\";\ninitial = \"skip\";\n" WATCHES SINKS,
     ":3: duplicate setting name"},
    {"cluster = {\n  name = \"a\";\n  name = \"b\";\n};\n" WATCHES SINKS,
     ":3: duplicate setting name"},
    {CLUSTER "log_level = \"info\n", ":3: syntax error"}, /* at EOF */
    /* unknown keys, every level */
    {CLUSTER WATCHES SINKS "colour = \"blue\";\n",
     ":4: unknown key 'colour' at top level"},
    {"cluster = {\n  name = \"c\";\n  nmae = \"x\";\n};\n" WATCHES SINKS,
     ":3: unknown key 'nmae' in cluster (did you mean 'name'?)"},
    {CLUSTER WATCHES SINKS "watch_defaults = {\n  backoff = {\n"
                           "    initial = 1.0;\n  };\n};\n",
     ":6: unknown key 'initial' in watch_defaults.backoff"},
    {CLUSTER "watches = (\n  { api = \"v1\"; resource = \"pods\"; },\n"
             "  { api = \"v1\"; resource = \"nodes\"; labels = \"a=b\"; }\n"
             ");\n" SINKS,
     ":4: unknown key 'labels' in watches[1]"},
    {CLUSTER WATCHES "sinks = (\n  { type = \"file\"; path = \"/x\";\n"
                     "    rotate = 5; }\n);\n",
     ":5: unknown key 'rotate' in sinks[0] (file)"},
    {CLUSTER WATCHES SINKS "state = { dir = \"/x\"; checkpoint = 5; };\n",
     ":4: unknown key 'checkpoint' in state"},
    {CLUSTER WATCHES SINKS "leader_election = { enable = true; };\n",
     ":4: unknown key 'enable' in leader_election (did you mean 'enabled'?)"},
    /* types */
    {"cluster = {\n  name = 5;\n};\n" WATCHES SINKS,
     ":2: 'cluster.name' must be a string"},
    {"cluster = \"c\";\n" WATCHES SINKS,
     ":1: 'cluster' must be a group { ... }"},
    {CLUSTER WATCHES SINKS "watch_defaults = { list_page_size = \"500\"; };\n",
     ":4: 'watch_defaults.list_page_size' must be an integer"},
    {CLUSTER WATCHES SINKS "watch_defaults = { list_page_size = 5.0; };\n",
     ":4: 'watch_defaults.list_page_size' must be an integer"},
    {CLUSTER WATCHES SINKS "watch_defaults = { trim_managed_fields = 1; };\n",
     ":4: 'watch_defaults.trim_managed_fields' must be a boolean (true or "
     "false)"},
    {CLUSTER WATCHES SINKS
     "watch_defaults = { backoff = { factor = \"2\"; }; };\n",
     ":4: 'watch_defaults.backoff.factor' must be a number"},
    {CLUSTER "watches = { api = \"v1\"; resource = \"pods\"; };\n" SINKS,
     ":2: 'watches' must be a list ( { ... }, ... )"},
    {CLUSTER "watches = ( \"v1/pods\" );\n" SINKS,
     ":2: 'watches[0]' must be a group { api = ...; resource = ...; }"},
    {CLUSTER WATCHES "sinks = ( { type = 1; } );\n",
     ":3: 'sinks[0].type' must be a string"},
    /* enums */
    {CLUSTER WATCHES SINKS "initial = \"all\";\n",
     ":4: 'initial' must be \"emit\" or \"skip\""},
    {CLUSTER WATCHES SINKS "log_level = \"trace\";\n",
     ":4: 'log_level' must be \"debug\", \"info\", \"warn\" or \"error\""},
    {CLUSTER WATCHES SINKS "watch_defaults = { watch_list = true; };\n",
     ":4: 'watch_defaults.watch_list' must be \"auto\", \"on\" or \"off\""},
    {CLUSTER WATCHES SINKS "state = { backend = \"etcd\"; };\n",
     ":4: 'state.backend' must be \"file\" or \"configmap\""},
    /* ranges */
    {CLUSTER WATCHES SINKS "watch_defaults = { list_page_size = 0; };\n",
     ":4: 'watch_defaults.list_page_size' must be at least 1"},
    {CLUSTER WATCHES SINKS "pipeline = { queue_events = -5; };\n",
     ":4: 'pipeline.queue_events' must be at least 1"},
    {CLUSTER WATCHES SINKS "pipeline = { queue_bytes = 4096; };\n",
     ":4: 'pipeline.queue_bytes' must be at least 65536"},
    {CLUSTER WATCHES SINKS "pipeline = { queue_bytes = 2147483648L; };\n",
     ":4: 'pipeline.queue_bytes' must be at most 1073741824"},
    {CLUSTER WATCHES SINKS "pipeline = { queue_bytes = \"16M\"; };\n",
     ":4: 'pipeline.queue_bytes' must be an integer"},
    {CLUSTER WATCHES SINKS
     "watch_defaults = { backoff = { initial_seconds = 0; }; };\n",
     ":4: 'watch_defaults.backoff.initial_seconds' must be greater than 0"},
    {CLUSTER WATCHES SINKS
     "watch_defaults = { backoff = { jitter = 1.5; }; };\n",
     ":4: 'watch_defaults.backoff.jitter' must be at most 1"},
    {CLUSTER WATCHES SINKS
     "watch_defaults = { max_event_bytes = 4294967296L; };\n",
     ":4: 'watch_defaults.max_event_bytes' must be at most 1073741824"},
    {CLUSTER WATCHES SINKS "state = { checkpoint_interval_ms = 0; };\n",
     ":4: 'state.checkpoint_interval_ms' must be at least 1"},
    /* libconfig 1.5 would truncate these silently */
    {CLUSTER WATCHES SINKS "pipeline = { queue_events = 5000000000; };\n",
     ":4: integer 5000000000 does not fit 32 bits; write 5000000000L for a "
     "64-bit value"},
    {CLUSTER WATCHES SINKS "\n/* 9999999999 */ x = -2147483649;\n",
     ":5: integer 2147483649 does not fit 32 bits; write 2147483649L for a "
     "64-bit value"},
    {CLUSTER WATCHES SINKS "x = 0x1FFFFFFFF;\n",
     ":4: integer 0x1FFFFFFFF does not fit 32 bits; write 0x1FFFFFFFFL for a "
     "64-bit value"},
    /* across keys */
    {CLUSTER WATCHES SINKS "watch_defaults = {\n  timeout_min_seconds = 700;"
                           "\n};\n",
     ":5: 'watch_defaults.timeout_min_seconds' (700) must not exceed "
     "'watch_defaults.timeout_max_seconds' (600)"},
    {CLUSTER WATCHES SINKS "watch_defaults = {\n  timeout_min_seconds = 60;"
                           "\n  timeout_max_seconds = 30;\n};\n",
     ":6: 'watch_defaults.timeout_min_seconds' (60) must not exceed "
     "'watch_defaults.timeout_max_seconds' (30)"},
    {CLUSTER WATCHES SINKS
     "watch_defaults = { backoff = { initial_seconds = 60; }; };\n",
     ":4: 'watch_defaults.backoff.initial_seconds' (60) must not exceed "
     "'watch_defaults.backoff.max_seconds' (30)"},
    {CLUSTER WATCHES SINKS "pipeline = { retry_initial_seconds = 90; };\n",
     ":4: 'pipeline.retry_initial_seconds' (90) must not exceed "
     "'pipeline.retry_max_seconds' (60)"},
    {CLUSTER WATCHES SINKS
     "leader_election = { renew_deadline_seconds = 20; };\n",
     ":4: 'leader_election.renew_deadline_seconds' (20) must be less than "
     "'leader_election.lease_duration_seconds' (15)"},
    {CLUSTER WATCHES SINKS
     "leader_election = { retry_period_seconds = 10; };\n",
     ":4: 'leader_election.retry_period_seconds' (10) must be less than "
     "'leader_election.renew_deadline_seconds' (10)"},
    {"cluster = { name = \"c\";\n  client_cert_file = \"/c.pem\"; };\n" WATCHES
         SINKS,
     ":2: 'cluster.client_cert_file' and 'cluster.client_key_file' go "
     "together"},
    /* missing and empty */
    {WATCHES SINKS, ": missing required key 'cluster'"},
    {"cluster = {\n  server = \"http://127.0.0.1:8080\";\n};\n" WATCHES SINKS,
     ":1: missing required key 'cluster.name'"},
    {"cluster = { name = \"\"; };\n" WATCHES SINKS,
     ":1: 'cluster.name' must not be empty"},
    {CLUSTER SINKS, ": missing required key 'watches'"},
    {CLUSTER WATCHES, ": missing required key 'sinks'"},
    {CLUSTER "watches = ( );\n" SINKS, ":2: 'watches' must not be empty"},
    {CLUSTER WATCHES "sinks = ();\n", ":3: 'sinks' must not be empty"},
    {CLUSTER "watches = (\n  { api = \"v1\"; }\n);\n" SINKS,
     ":3: missing required key 'watches[0].resource'"},
    {CLUSTER WATCHES "sinks = (\n  { path = \"/x\"; }\n);\n",
     ":4: missing required key 'sinks[0].type'"},
    /* shapes */
    {"cluster = { name = \"c\"; server = \"127.0.0.1:8080\"; };\n" WATCHES
         SINKS,
     ":1: 'cluster.server' must be a URL starting with https:// (or "
     "http:// for local testing)"},
    {CLUSTER "watches = ( { api = \"apps\"; resource = \"pods\"; } );\n" SINKS,
     ":2: 'watches[0].api' must be \"v1\" (core) or \"<group>/<version>\" "
     "such as \"apps/v1\" or \"example.com/v1\""},
    {CLUSTER
     "watches = ( { api = \"Apps/v1\"; resource = \"pods\"; } );\n" SINKS,
     ":2: 'watches[0].api' must be \"v1\" (core) or \"<group>/<version>\" "
     "such as \"apps/v1\" or \"example.com/v1\""},
    {CLUSTER
     "watches = ( { api = \"apps/v1/x\"; resource = \"pods\"; } );\n" SINKS,
     ":2: 'watches[0].api' must be \"v1\" (core) or \"<group>/<version>\" "
     "such as \"apps/v1\" or \"example.com/v1\""},
    {CLUSTER "watches = ( { api = \"/v1\"; resource = \"pods\"; } );\n" SINKS,
     ":2: 'watches[0].api' must be \"v1\" (core) or \"<group>/<version>\" "
     "such as \"apps/v1\" or \"example.com/v1\""},
    {CLUSTER "watches = ( { api = \"v1\"; resource = \"Pods\"; } );\n" SINKS,
     ":2: 'watches[0].resource' must be a lowercase plural resource name "
     "such as \"pods\" (a DNS label)"},
    {CLUSTER
     "watches = ( { api = \"v1\"; resource = \"pods/log\"; } );\n" SINKS,
     ":2: 'watches[0].resource' must be a lowercase plural resource name "
     "such as \"pods\" (a DNS label)"},
    {CLUSTER "watches = ( { api = \"v1\"; resource = \"pods\";\n"
             "  namespace = \"Prod_1\"; } );\n" SINKS,
     ":3: 'watches[0].namespace' must be a namespace name (lowercase DNS "
     "label, at most 63 characters)"},
    {CLUSTER "watches = ( { api = \"v1\"; resource = \"pods\";\n"
             "  topic = \"a b\"; } );\n" SINKS,
     ":3: 'watches[0].topic' must be a Kafka topic name (1-249 characters "
     "of a-z, A-Z, 0-9, '.', '_', '-')"},
    {CLUSTER WATCHES SINKS "metrics_address = \"9090\";\n",
     ":4: 'metrics_address' must be \"host:port\", \"[ipv6]:port\" or "
     "\":port\" with a port between 0 and 65535"},
    {CLUSTER WATCHES SINKS "metrics_address = \"127.0.0.1:70000\";\n",
     ":4: 'metrics_address' must be \"host:port\", \"[ipv6]:port\" or "
     "\":port\" with a port between 0 and 65535"},
    {CLUSTER WATCHES SINKS "metrics_address = \"::1:9090\";\n",
     ":4: 'metrics_address' must be \"host:port\", \"[ipv6]:port\" or "
     "\":port\" with a port between 0 and 65535"},
    /* duplicates */
    {CLUSTER "watches = (\n  { api = \"v1\"; resource = \"pods\"; },\n"
             "  { api = \"v1\"; resource = \"pods\"; namespace = \"a\"; },\n"
             "  { api = \"v1\"; resource = \"pods\"; field_selector = \"\"; "
             "}\n);\n" SINKS,
     ":5: duplicate watch 'v1/pods' (also at line 3)"},
    {CLUSTER WATCHES "sinks = (\n  { type = \"file\"; path = \"/a\"; },\n"
                     "  { type = \"file\"; path = \"/b\"; }\n);\n",
     ":5: duplicate sink name 'file' (also at line 4); give one a distinct "
     "'name'"},
    {CLUSTER WATCHES "sinks = (\n  { type = \"file\"; path = \"/a\"; },\n"
                     "  { type = \"file\"; name = \"x y\"; path = \"/b\"; }"
                     "\n);\n",
     ":5: 'sinks[1] (file).name' must be 1-63 characters of a-z, A-Z, 0-9, "
     "'.', '_', '-'"},
    {CLUSTER WATCHES "sinks = (\n  { type = \"carrier-pigeon\"; }\n);\n",
     ":4: unknown sink type 'carrier-pigeon' in sinks[0] (known: "},
    /* quoted setting names */
    {CLUSTER WATCHES SINKS
     "\"log_level\" = \"debug\";\nlog_level = \"info\";\n",
     ":5: duplicate setting name 'log_level'"},
    {CLUSTER WATCHES SINKS
     "state = {\n  \"dir\" = \"/a\";\n  \"x.y\" = 1;\n};\n",
     ":6: unknown key 'x.y' in state"},
    {CLUSTER WATCHES SINKS "\n\"\" = 1;\n", ":5: invalid quoted setting name "
                                            "(empty, longer than 255 bytes or "
                                            "with control characters)"},
    {CLUSTER WATCHES SINKS "initial = \"emit\"; \"initial\" = \"skip\";\n",
     ":4: duplicate setting name 'initial'"},
};

static void test_bad_configs(void)
{
    for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
        struct kwb_config cfg;
        char err[1024];
        char want[1024];
        const char *path = write_file("bad.conf", bad_configs[i].text);
        int rc = kwb_config_load(&cfg, path, err, sizeof(err));

        snprintf(want, sizeof(want), "%s%s", path, bad_configs[i].want);
        CHECK_EQ_INT(rc, -1);
        if (strncmp(err, want, strlen(want)) != 0) {
            failed++;
            fprintf(stderr, "bad_configs[%zu]:\n  got  %s\n  want %s\n", i, err,
                    want);
        } else {
            passed++;
        }
        /* A failed load leaves nothing to free, and freeing is safe. */
        CHECK_EQ_INT(cfg.n_watches, 0);
        kwb_config_free(&cfg);
    }
}

static void test_defaults(void)
{
    struct kwb_config cfg;
    char err[512];
    const char *path = write_file("min.conf", VALID);
    char host[256] = "";

    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    CHECK_EQ_STR(cfg.path, path);
    CHECK_EQ_STR(cfg.cluster_name, "c1");
    CHECK_EQ_STR(cfg.server, "http://127.0.0.1:8080");
    CHECK(cfg.kubeconfig == NULL && cfg.context == NULL);
    CHECK(cfg.token_file == NULL && cfg.ca_file == NULL);
    CHECK(cfg.client_cert_file == NULL && cfg.client_key_file == NULL);
    CHECK_EQ_INT(cfg.insecure_skip_tls_verify, 0);
    CHECK_EQ_STR(cfg.serviceaccount_dir,
                 "/var/run/secrets/kubernetes.io/serviceaccount");
    CHECK_EQ_STR(cfg.state_dir, "/var/lib/kube-watch-bridge");
    CHECK_EQ_STR(cfg.state_backend, "file");
    CHECK_EQ_INT(cfg.checkpoint_interval_ms, 1000);
    CHECK_EQ_STR(cfg.state_configmap_name_prefix, "kube-watch-bridge");
    CHECK_EQ_INT(cfg.initial, KWB_INITIAL_EMIT);
    CHECK_EQ_INT(cfg.log_level, 1);
    CHECK_EQ_INT(cfg.list_page_size, 500);
    CHECK_EQ_INT(cfg.watch_timeout_min_s, 300);
    CHECK_EQ_INT(cfg.watch_timeout_max_s, 600);
    CHECK_EQ_INT(cfg.stall_timeout_s, 90);
    CHECK_EQ_INT(cfg.connect_timeout_s, 10);
    CHECK_DBL(cfg.backoff_initial_s, 0.8);
    CHECK_DBL(cfg.backoff_factor, 2.0);
    CHECK_DBL(cfg.backoff_jitter, 1.0);
    CHECK_DBL(cfg.backoff_max_s, 30.0);
    CHECK_DBL(cfg.backoff_reset_s, 120.0);
    CHECK_EQ_INT(cfg.watch_list, -1);
    CHECK_EQ_INT(cfg.max_event_bytes, 16 * 1024 * 1024);
    CHECK_EQ_INT(cfg.trim_managed_fields, 0);
    CHECK_EQ_INT(cfg.queue_events, 8192);
    /* Without a kafka sink; see test_queue_bytes_default. */
    CHECK_EQ_INT(cfg.queue_bytes, 8 * 1024 * 1024);
    CHECK_EQ_INT(cfg.shutdown_timeout_ms, 25000);
    CHECK_DBL(cfg.sink_retry_initial_s, 1.0);
    CHECK_DBL(cfg.sink_retry_max_s, 60.0);
    CHECK(cfg.redaction_hash_key_file == NULL);
    CHECK(cfg.metrics_address == NULL && cfg.metrics_host == NULL);
    CHECK_EQ_INT(cfg.metrics_port, 0);
    CHECK_EQ_INT(cfg.leader_election, 0);
    CHECK_EQ_STR(cfg.lease_name, "kube-watch-bridge");
    CHECK_EQ_INT(cfg.lease_duration_s, 15);
    CHECK_EQ_INT(cfg.renew_deadline_s, 10);
    CHECK_EQ_INT(cfg.retry_period_s, 2);
    gethostname(host, sizeof(host) - 1);
    CHECK_EQ_STR(cfg.identity, host[0] ? host : "kube-watch-bridge");
    /* No service account dir on a test machine. */
    if (access("/var/run/secrets/kubernetes.io/serviceaccount/namespace",
               F_OK) != 0) {
        CHECK_EQ_STR(cfg.lease_namespace, "default");
        CHECK_EQ_STR(cfg.state_configmap_namespace, "default");
    }

    CHECK_EQ_INT(cfg.n_watches, 1);
    CHECK_EQ_STR(cfg.watches[0].api, "v1");
    CHECK_EQ_STR(cfg.watches[0].group, "");
    CHECK_EQ_STR(cfg.watches[0].version, "v1");
    CHECK_EQ_STR(cfg.watches[0].resource, "pods");
    CHECK_EQ_STR(cfg.watches[0].id, "v1/pods");
    CHECK(cfg.watches[0].namespace_ == NULL);
    CHECK(cfg.watches[0].label_selector == NULL);
    CHECK(cfg.watches[0].field_selector == NULL);
    CHECK(cfg.watches[0].topic == NULL);
    CHECK_EQ_INT(cfg.watches[0].trim_managed_fields, -1);

    CHECK_EQ_INT(cfg.n_sinks, 1);
    CHECK_EQ_STR(cfg.sinks[0].type, "file");
    CHECK_EQ_STR(cfg.sinks[0].name, "file");
    CHECK(cfg.sinks[0].dead_letter_path == NULL);
    CHECK(cfg.sinks[0].ops == kwb_sink_find("file"));
    CHECK_EQ_INT(cfg.sinks[0].line, 3);
    CHECK(cfg.sinks[0].group != NULL);
    kwb_config_free(&cfg);
    kwb_config_free(&cfg); /* twice: zeroed after the first */
    kwb_config_free(NULL);
}

static const char full_text[] =
    "# every key set\n"
    "cluster = {\n"
    "  name = \"prod-eu-1\";\n"
    "  server = \"https://k8s.example:6443\";\n"
    "  kubeconfig = \"/etc/kwb/kubeconfig\";\n"
    "  context = \"admin@prod\";\n"
    "  token_file = \"/etc/kwb/token\";\n"
    "  ca_file = \"/etc/kwb/ca.crt\";\n"
    "  client_cert_file = \"/etc/kwb/c.pem\";\n"
    "  client_key_file = \"/etc/kwb/k.pem\";\n"
    "  insecure_skip_tls_verify = true;\n"
    "  serviceaccount_dir = \"@SA@\";\n"
    "};\n"
    "state = { dir = \"/data\"; backend = \"configmap\";\n"
    "  checkpoint_interval_ms = 250; configmap_name_prefix = \"kwb.ckpt\"; };\n"
    "initial = \"skip\";\n"
    "log_level = \"debug\";\n"
    "watch_defaults = {\n"
    "  list_page_size = 50; timeout_min_seconds = 5;\n"
    "  timeout_max_seconds = 5; stall_timeout_seconds = 7;\n"
    "  connect_timeout_seconds = 3; watch_list = \"off\";\n"
    "  max_event_bytes = 100000000L; trim_managed_fields = true;\n"
    "  backoff = { initial_seconds = 1; factor = 1.5; jitter = 0;\n"
    "    max_seconds = 10; reset_seconds = 60.5; };\n"
    "};\n"
    "pipeline = { queue_events = 16; queue_bytes = 131072;\n"
    "  shutdown_timeout_ms = 0; retry_initial_seconds = 0.25;"
    " retry_max_seconds = 2; };\n"
    "redaction = { hash_key_file = \"/etc/kwb/hash.key\"; };\n"
    "leader_election = { enabled = true; name = \"kwb-lock\";\n"
    "  identity = \"pod-a\"; lease_duration_seconds = 30;\n"
    "  renew_deadline_seconds = 20; retry_period_seconds = 4; };\n"
    "metrics_address = \"[::1]:9090\";\n"
    "watches = (\n"
    "  { api = \"apps/v1\"; resource = \"deployments\"; namespace = \"prod\";\n"
    "    label_selector = \"tier=web\"; field_selector = \"\";\n"
    "    trim_managed_fields = false; topic = \"k8s.deploys\"; },\n"
    "  { api = \"example.com/v1alpha1\"; resource = \"widgets\";\n"
    "    field_selector = \"metadata.name=w\"; trim_managed_fields = true; },\n"
    "  { api = \"apps/v1\"; resource = \"deployments\"; }\n"
    ");\n"
    "sinks = (\n"
    "  { type = \"file\"; name = \"audit-log\"; path = \"/tmp/a\";\n"
    "    dead_letter_path = \"/tmp/dl\"; },\n"
    "  { type = \"file\"; path = \"/tmp/b\"; }\n"
    ");\n";

static void test_full(void)
{
    struct kwb_config cfg;
    char err[512];
    char text[sizeof(full_text) + 128];
    char sa[128];
    char *at;
    const char *path;
    FILE *f;

    /* A service account dir whose namespace file names the defaults. */
    snprintf(sa, sizeof(sa), "%s/sa", tmpdir);
    mkdir(sa, 0700);
    snprintf(err, sizeof(err), "%s/namespace", sa);
    f = fopen(err, "w");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    fputs("kwb-system\n", f);
    fclose(f);
    at = strstr(full_text, "@SA@");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - full_text), full_text,
             sa, at + 4);
    path = write_file("full.conf", text);

    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    if (cfg.n_watches == 0) {
        fprintf(stderr, "%s\n", err);
        failed++;
        return;
    }
    CHECK_EQ_STR(cfg.cluster_name, "prod-eu-1");
    CHECK_EQ_STR(cfg.server, "https://k8s.example:6443");
    CHECK_EQ_STR(cfg.kubeconfig, "/etc/kwb/kubeconfig");
    CHECK_EQ_STR(cfg.context, "admin@prod");
    CHECK_EQ_STR(cfg.token_file, "/etc/kwb/token");
    CHECK_EQ_STR(cfg.ca_file, "/etc/kwb/ca.crt");
    CHECK_EQ_STR(cfg.client_cert_file, "/etc/kwb/c.pem");
    CHECK_EQ_STR(cfg.client_key_file, "/etc/kwb/k.pem");
    CHECK_EQ_INT(cfg.insecure_skip_tls_verify, 1);
    CHECK_EQ_STR(cfg.serviceaccount_dir, sa);
    CHECK_EQ_STR(cfg.state_dir, "/data");
    CHECK_EQ_STR(cfg.state_backend, "configmap");
    CHECK_EQ_INT(cfg.checkpoint_interval_ms, 250);
    CHECK_EQ_STR(cfg.state_configmap_namespace, "kwb-system");
    CHECK_EQ_STR(cfg.state_configmap_name_prefix, "kwb.ckpt");
    CHECK_EQ_INT(cfg.initial, KWB_INITIAL_SKIP);
    CHECK_EQ_INT(cfg.log_level, 0);
    CHECK_EQ_INT(cfg.list_page_size, 50);
    CHECK_EQ_INT(cfg.watch_timeout_min_s, 5);
    CHECK_EQ_INT(cfg.watch_timeout_max_s, 5);
    CHECK_EQ_INT(cfg.stall_timeout_s, 7);
    CHECK_EQ_INT(cfg.connect_timeout_s, 3);
    CHECK_EQ_INT(cfg.watch_list, 0);
    CHECK_EQ_INT(cfg.max_event_bytes, 100000000);
    CHECK_EQ_INT(cfg.trim_managed_fields, 1);
    CHECK_DBL(cfg.backoff_initial_s, 1.0);
    CHECK_DBL(cfg.backoff_factor, 1.5);
    CHECK_DBL(cfg.backoff_jitter, 0.0);
    CHECK_DBL(cfg.backoff_max_s, 10.0);
    CHECK_DBL(cfg.backoff_reset_s, 60.5);
    CHECK_EQ_INT(cfg.queue_events, 16);
    CHECK_EQ_INT(cfg.queue_bytes, 131072);
    CHECK_EQ_INT(cfg.shutdown_timeout_ms, 0);
    CHECK_DBL(cfg.sink_retry_initial_s, 0.25);
    CHECK_DBL(cfg.sink_retry_max_s, 2.0);
    CHECK_EQ_STR(cfg.redaction_hash_key_file, "/etc/kwb/hash.key");
    CHECK_EQ_INT(cfg.leader_election, 1);
    CHECK_EQ_STR(cfg.lease_namespace, "kwb-system");
    CHECK_EQ_STR(cfg.lease_name, "kwb-lock");
    CHECK_EQ_STR(cfg.identity, "pod-a");
    CHECK_EQ_INT(cfg.lease_duration_s, 30);
    CHECK_EQ_INT(cfg.renew_deadline_s, 20);
    CHECK_EQ_INT(cfg.retry_period_s, 4);
    CHECK_EQ_STR(cfg.metrics_address, "[::1]:9090");
    CHECK_EQ_STR(cfg.metrics_host, "::1");
    CHECK_EQ_INT(cfg.metrics_port, 9090);

    CHECK_EQ_INT(cfg.n_watches, 3);
    CHECK_EQ_STR(cfg.watches[0].group, "apps");
    CHECK_EQ_STR(cfg.watches[0].version, "v1");
    CHECK_EQ_STR(cfg.watches[0].namespace_, "prod");
    CHECK_EQ_STR(cfg.watches[0].label_selector, "tier=web");
    CHECK(cfg.watches[0].field_selector == NULL);
    CHECK_EQ_INT(cfg.watches[0].trim_managed_fields, 0);
    CHECK_EQ_STR(cfg.watches[0].topic, "k8s.deploys");
    CHECK_EQ_STR(cfg.watches[0].id, "apps/v1/deployments@prod");
    CHECK_EQ_STR(cfg.watches[1].group, "example.com");
    CHECK_EQ_STR(cfg.watches[1].version, "v1alpha1");
    CHECK_EQ_STR(cfg.watches[1].field_selector, "metadata.name=w");
    CHECK_EQ_INT(cfg.watches[1].trim_managed_fields, 1);
    CHECK_EQ_STR(cfg.watches[1].id, "example.com/v1alpha1/widgets");
    /* Same resource, other namespace scope: a different watch. */
    CHECK_EQ_STR(cfg.watches[2].id, "apps/v1/deployments");

    CHECK_EQ_INT(cfg.n_sinks, 2);
    CHECK_EQ_STR(cfg.sinks[0].name, "audit-log");
    CHECK_EQ_STR(cfg.sinks[0].dead_letter_path, "/tmp/dl");
    CHECK_EQ_INT(cfg.sinks[0].line, 42);
    CHECK_EQ_STR(cfg.sinks[1].name, "file");
    CHECK_EQ_INT(cfg.sinks[1].line, 44);
    kwb_config_free(&cfg);
}

static void test_numbers(void)
{
    struct kwb_config cfg;
    char err[512];
    const char *path =
        write_file("num.conf", VALID
                   "watch_defaults = { max_event_bytes = 2048;\n"
                   "  backoff = { max_seconds = 45; factor = 3;\n"
                   "    reset_seconds = 1.5e2; initial_seconds = 2e-1; "
                   "}; };\n"
                   "# 99999999999 in a comment\n"
                   "redaction = { hash_key_file = \"/k/77777777777\"; };\n"
                   "pipeline = { queue_events = 100L; queue_bytes = "
                   "33554432L; };\n"
                   "metrics_address = \":9100\";\n");

    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg.max_event_bytes, 2048);
    CHECK_DBL(cfg.backoff_max_s, 45.0);
    CHECK_DBL(cfg.backoff_factor, 3.0);
    CHECK_DBL(cfg.backoff_reset_s, 150.0);
    CHECK_DBL(cfg.backoff_initial_s, 0.2);
    CHECK_EQ_INT(cfg.queue_events, 100);
    CHECK_EQ_INT(cfg.queue_bytes, 33554432);
    CHECK_EQ_STR(cfg.metrics_host, "");
    CHECK_EQ_INT(cfg.metrics_port, 9100);
    kwb_config_free(&cfg);

    /* Port 0: any free port, as http.c accepts. */
    path =
        write_file("port0.conf", VALID "metrics_address = \"127.0.0.1:0\";\n");
    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    CHECK_EQ_STR(cfg.metrics_host, "127.0.0.1");
    CHECK_EQ_INT(cfg.metrics_port, 0);
    kwb_config_free(&cfg);
}

/* SPEC's Kafka example: properties = { "security.protocol" = ...; }. */
static void test_quoted_names(void)
{
    struct kwb_config cfg;
    char err[512];
    const char *text =
        "# kwbq0 appears in this comment, so placeholders must differ\n" CLUSTER
            WATCHES SINKS "\"log_level\" /* c */ : \"warn\";\n"
        "state = { \"dir\" = \"/q\"; };\n";

    CHECK_EQ_INT(kwb_config_load_string(&cfg, text, strlen(text), "q.conf", err,
                                        sizeof(err)),
                 0);
    CHECK_EQ_INT(cfg.log_level, 2);
    CHECK_EQ_STR(cfg.state_dir, "/q");
    kwb_config_free(&cfg);
}

/* A sink for kwb_config_check_sinks(): needs `path`, accepts `extra`. */
static const char *const fake_keys[] = {"path", "extra", NULL};
static int fake_inits, fake_closes;
static char fake_seen_name[64], fake_seen_file[128];

static void *fake_init(const struct config_setting_t *group,
                       const struct kwb_sink_env *env, char *errbuf,
                       size_t errsize)
{
    const char *p;

    fake_inits++;
    snprintf(fake_seen_name, sizeof(fake_seen_name), "%s", env->name);
    snprintf(fake_seen_file, sizeof(fake_seen_file), "%s", env->conf_file);
    if (!config_setting_lookup_string(group, "path", &p)) {
        snprintf(errbuf, errsize, "'path' is required");
        return NULL;
    }
    if (config_setting_get_member(group, "extra")) {
        snprintf(errbuf, errsize, "extra: not now");
        return NULL;
    }
    return &fake_inits;
}

static void fake_close(void *sink)
{
    CHECK(sink == &fake_inits);
    fake_closes++;
}

static const struct kwb_sink_ops fake_ops = {
    .type = "fake",
    .keys = fake_keys,
    .init = fake_init,
    .close = fake_close,
};

static void test_check_sinks(void)
{
    struct kwb_config cfg;
    char err[512];
    const char *path = write_file(
        "sinks.conf", CLUSTER WATCHES
        "sinks = (\n  { type = \"file\"; name = \"a\"; path = \"/x\"; },\n"
        "  { type = \"file\"; name = \"b\";\n    rotate_keep = 3; }\n);\n");

    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    if (cfg.n_sinks != 2) {
        failed++;
        return;
    }
    cfg.sinks[0].ops = &fake_ops;
    cfg.sinks[1].ops = &fake_ops;
    CHECK_EQ_INT(kwb_config_check_sinks(&cfg, err, sizeof(err)), -1);
    CHECK_EQ_INT(fake_inits, 2);
    CHECK_EQ_INT(fake_closes, 1);
    CHECK_EQ_STR(fake_seen_name, "b");
    CHECK_EQ_STR(fake_seen_file, path);
    {
        char want[256];

        snprintf(want, sizeof(want), "%s:5: sinks[1] (b): 'path' is required",
                 path);
        CHECK_EQ_STR(err, want);
    }
    cfg.n_sinks = 1; /* only the valid one */
    CHECK_EQ_INT(kwb_config_check_sinks(&cfg, err, sizeof(err)), 0);
    CHECK_EQ_INT(fake_closes, 2);
    cfg.n_sinks = 2;
    kwb_config_free(&cfg);

    /* The line is that of the key the message names, when it has one. */
    path = write_file("sinks2.conf",
                      CLUSTER WATCHES "sinks = (\n  { type = \"file\";\n"
                                      "    path = \"/x\";\n"
                                      "    rotate_keep = 3; }\n);\n");
    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    if (cfg.n_sinks != 1) {
        failed++;
        return;
    }
    cfg.sinks[0].ops = &fake_ops;
    {
        config_setting_t *x =
            config_setting_add(cfg.sinks[0].group, "extra", CONFIG_TYPE_INT);
        char want[256];

        CHECK(x != NULL);
        CHECK_EQ_INT(kwb_config_check_sinks(&cfg, err, sizeof(err)), -1);
        /* Added settings have no line: the group's line it is. */
        snprintf(want, sizeof(want), "%s:4: sinks[0] (file): extra: not now",
                 path);
        CHECK_EQ_STR(err, want);
        /* The real file sink names 'rotate_keep', on line 6. */
        config_setting_remove(cfg.sinks[0].group, "extra");
        config_setting_set_int(
            config_setting_get_member(cfg.sinks[0].group, "rotate_keep"), 0);
        cfg.sinks[0].ops = kwb_sink_find("file");
        CHECK_EQ_INT(kwb_config_check_sinks(&cfg, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:6: sinks[0] (file): ", path);
        CHECK(strncmp(err, want, strlen(want)) == 0);
        CHECK(strstr(err, "rotate_keep") != NULL);
    }
    kwb_config_free(&cfg);
}

static void test_include(void)
{
    struct kwb_config cfg;
    char err[512];
    char dir[128];
    char main_path[160];
    FILE *f;

    /* @include is relative to the including file, not the cwd. */
    snprintf(dir, sizeof(dir), "%s/inc", tmpdir);
    mkdir(dir, 0700);
    write_file("inc/watches.inc", WATCHES);
    write_file("inc/bad.inc", "\n\nbogus = 1;\n");
    snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
    f = fopen(main_path, "w");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    fputs(CLUSTER "@include \"watches.inc\"\n" SINKS, f);
    fclose(f);
    CHECK_EQ_INT(kwb_config_load(&cfg, main_path, err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg.n_watches, 1);
    kwb_config_free(&cfg);

    f = fopen(main_path, "w");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    fputs(VALID "@include \"bad.inc\"\n", f);
    fclose(f);
    CHECK_EQ_INT(kwb_config_load(&cfg, main_path, err, sizeof(err)), -1);
    CHECK(strstr(err, "bad.inc:3: unknown key 'bogus' at top level") != NULL);
}

static void test_io_errors(void)
{
    struct kwb_config cfg;
    char err[512];
    char want[256];
    char nul_text[] = "cluster = { name = \"c\"; };\n\nx\0y";

    snprintf(want, sizeof(want), "%s/none.conf", tmpdir);
    CHECK_EQ_INT(kwb_config_load(&cfg, want, err, sizeof(err)), -1);
    strncat(want, ": cannot open: No such file or directory",
            sizeof(want) - strlen(want) - 1);
    CHECK_EQ_STR(err, want);

    CHECK_EQ_INT(kwb_config_load(&cfg, tmpdir, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: is a directory", tmpdir);
    CHECK_EQ_STR(err, want);

    CHECK_EQ_INT(kwb_config_load_string(&cfg, nul_text, sizeof(nul_text) - 1,
                                        "n.conf", err, sizeof(err)),
                 -1);
    CHECK_EQ_STR(err, "n.conf:3: NUL byte in the configuration");

    /* A tiny errbuf truncates but still terminates. */
    CHECK_EQ_INT(kwb_config_load_string(&cfg, "x", 1, "t.conf", err, 8), -1);
    CHECK_EQ_INT(strlen(err), 7);
}

/* pipeline.queue_bytes, when unset: 32 MiB with a kafka sink (librdkafka
 * needs the wide window), else 8 MiB; a value set is kept as it is. */
static void test_queue_bytes_default(void)
{
    static const char *const kafka =
        "  { type = \"kafka\"; brokers = \"127.0.0.1:9092\"; topic = \"t\"; }";
    static const char *const webhook =
        "  { type = \"webhook\"; url = \"http://127.0.0.1:1/x\"; }";
    static const char *const file = "  { type = \"file\"; path = \"/x\"; }";
    struct {
        const char *sinks[2];
        const char *pipeline;
        size_t want;
    } cases[] = {
        {{file, NULL}, "", (size_t)8 << 20},
        {{webhook, file}, "", (size_t)8 << 20},
        {{kafka, NULL}, "", (size_t)32 << 20},
        {{file, kafka}, "", (size_t)32 << 20},
        {{file, kafka}, "pipeline = { queue_bytes = 1048576; };\n", 1048576},
        {{file, NULL},
         "pipeline = { queue_bytes = 33554432; };\n",
         (size_t)32 << 20},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kwb_config cfg;
        char text[1024], err[512];
        int n = snprintf(
            text, sizeof(text), "%s%ssinks = (\n%s%s%s\n);\n%s", CLUSTER,
            WATCHES, cases[i].sinks[0], cases[i].sinks[1] ? ",\n" : "",
            cases[i].sinks[1] ? cases[i].sinks[1] : "", cases[i].pipeline);

        CHECK(n > 0 && (size_t)n < sizeof(text));
        CHECK_EQ_INT(kwb_config_load_string(&cfg, text, (size_t)n, "q.conf",
                                            err, sizeof(err)),
                     0);
        CHECK_EQ_INT(cfg.queue_bytes, cases[i].want);
        kwb_config_free(&cfg);
    }
}

/* The file is read into a buffer of its size, grown as it reads longer
 * (a FIFO has no size), up to the 16 MiB limit. */
static void test_read_sizes(void)
{
    struct kwb_config cfg;
    char err[512], want[256], path[128];
    size_t pad = 20000, big = (size_t)16 * 1024 * 1024 + 1;
    char *text = malloc(big + 1);
    size_t n;
    pid_t pid;
    FILE *f;

    if (!text) {
        CHECK(0);
        return;
    }
    /* Longer than the 4096 bytes a FIFO starts with: comments first. */
    memset(text, '#', pad);
    text[pad - 1] = '\n';
    n = pad + (size_t)snprintf(text + pad, big + 1 - pad, "%s", VALID);
    snprintf(path, sizeof(path), "%s/fifo.conf", tmpdir);
    CHECK_EQ_INT(mkfifo(path, 0600), 0);
    pid = fork();
    if (pid == 0) {
        f = fopen(path, "w");
        _exit(f && fwrite(text, 1, n, f) == n && fclose(f) == 0 ? 0 : 1);
    }
    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    CHECK_EQ_STR(cfg.cluster_name, "c1");
    kwb_config_free(&cfg);
    CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);

    /* One byte over the limit, as a file. */
    memset(text, '#', big);
    text[big] = '\0';
    snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
    f = fopen(path, "w");
    CHECK(f && fwrite(text, 1, big, f) == big && fclose(f) == 0);
    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: larger than 16777216 bytes", path);
    CHECK_EQ_STR(err, want);
    unlink(path);
    free(text);
}

/*
 * Loading leaves glibc's malloc thresholds alone: freeing a 16 MiB buffer
 * raised the mmap threshold to 16 MiB (and the trim threshold to 32 MiB)
 * for the agent's life, so every thread's arena kept large freed buffers
 * resident. With the default threshold (128 KiB) a 4 MiB block is still
 * an mmap of its own. Run before anything else in this process.
 */
static void test_load_keeps_malloc_thresholds(void)
{
    struct kwb_config cfg;
    char err[512];
    const char *path = write_file("min.conf", VALID);

    CHECK_EQ_INT(kwb_config_load(&cfg, path, err, sizeof(err)), 0);
    kwb_config_free(&cfg);
    if (!GLIBC_MALLOC) {
        return;
    }
    CHECK(malloc_is_mmapped((size_t)4 << 20));
}

static void test_dump(void)
{
    struct kwb_config cfg;
    char err[512];
    char *buf = NULL;
    size_t len = 0;
    FILE *out;
    const char *text =
        "cluster = { name = \"c\";\n"
        "  server = \"https://user:pw@k8s.example:6443/\"; };\n" WATCHES
        "sinks = ( { type = \"file\"; path = \"/x\"; fsync = true; } );\n";

    CHECK_EQ_INT(kwb_config_load_string(&cfg, text, strlen(text), "d.conf", err,
                                        sizeof(err)),
                 0);
    out = open_memstream(&buf, &len);
    CHECK(out != NULL);
    if (!out) {
        kwb_config_free(&cfg);
        return;
    }
    CHECK_EQ_INT(kwb_config_dump(&cfg, out, 1), 0);
    fclose(out);
    CHECK(strstr(buf, "server = \"https://[redacted]@k8s.example:6443/\";") !=
          NULL);
    CHECK(strstr(buf, "pw") == NULL);
    CHECK(strstr(buf, "  list_page_size = 500;  # objects per list page") !=
          NULL);
    CHECK(strstr(buf, "initial = \"emit\";") != NULL);
    CHECK(strstr(buf, "    path = \"/x\";\n") != NULL);
    CHECK(strstr(buf, "    fsync = true;\n") != NULL);
    CHECK(strstr(buf, "    # trim_managed_fields: unset -- overrides") != NULL);
    CHECK(strstr(buf, "  # kubeconfig: unset -- kubeconfig file") != NULL);
    CHECK(strstr(buf, "    initial_seconds = 0.8;") != NULL);
    CHECK(strstr(buf, "    max_seconds = 30.0;") != NULL);
    free(buf);
    kwb_config_free(&cfg);

    /* Values inside a sink's nested groups never print: Kafka
     * properties (SASL passwords), webhook headers (Authorization). */
    text = CLUSTER WATCHES
        "sinks = ( { type = \"file\"; path = \"/x\"; rotate_keep = 2; },\n"
        "  { type = \"kafka\"; brokers = \"127.0.0.1:9092\"; topic = \"t\";\n"
        "    properties = { \"sasl.password\" = \"hunter2\"; }; } );\n";
    CHECK_EQ_INT(kwb_config_load_string(&cfg, text, strlen(text), "d.conf", err,
                                        sizeof(err)),
                 0);
    buf = NULL;
    out = open_memstream(&buf, &len);
    if (!out) {
        kwb_config_free(&cfg);
        return;
    }
    CHECK_EQ_INT(kwb_config_dump(&cfg, out, 0), 0);
    fclose(out);
    CHECK(strstr(buf, "rotate_keep = 2;") != NULL);
    CHECK(strstr(buf, "\"sasl.password\" = [redacted];") != NULL);
    CHECK(strstr(buf, "brokers = \"127.0.0.1:9092\";") != NULL);
    CHECK(strstr(buf, "hunter2") == NULL);
    CHECK(strstr(buf, "# objects per list page") == NULL); /* no help */
    free(buf);
    kwb_config_free(&cfg);
}

/*
 * Every conf/ example loads, and its sinks accept their groups.
 * The working directory is tests/unit (CMake).
 */
static void test_examples(void)
{
    static const char *const names[] = {"kube-watch-bridge.conf",
                                        "in-cluster.conf", "kafka.conf",
                                        "webhook.conf"};
    static const char *const needs[] = {"file", "file", "kafka", "webhook"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct kwb_config cfg;
        char path[128];
        char err[1024];
        int rc;

        snprintf(path, sizeof(path), "../../conf/%s", names[i]);
        rc = kwb_config_load(&cfg, path, err, sizeof(err));
        CHECK(kwb_sink_find(needs[i]) != NULL);
        CHECK_EQ_INT(rc, 0);
        if (rc != 0) {
            fprintf(stderr, "%s\n", err);
            continue;
        }
        CHECK_EQ_INT(kwb_config_check_sinks(&cfg, err, sizeof(err)), 0);
        if (err[0]) {
            fprintf(stderr, "%s\n", err);
        }
        kwb_config_free(&cfg);
    }
}

/* `word` occurs in `text` with no name character on either side. */
static int has_word(const char *text, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        char before = p == text ? ' ' : p[-1];
        char after = p[n];

        if (!isalnum((unsigned char)before) && before != '_' &&
            !isalnum((unsigned char)after) && after != '_') {
            return 1;
        }
    }
    return 0;
}

/*
 * conf/kube-watch-bridge.conf is the reference of every key: each key the
 * dump prints (that is, each key of config.c's tables) appears in it.
 */
static void test_reference_documents_every_key(void)
{
    struct kwb_config cfg;
    char err[1024];
    char *dump = NULL, *ref = NULL;
    size_t dump_len = 0, ref_len = 0;
    FILE *f;
    char *line, *save = NULL;
    int keys = 0;

    CHECK_EQ_INT(kwb_config_load(&cfg, "../../conf/kube-watch-bridge.conf", err,
                                 sizeof(err)),
                 0);
    if (cfg.n_sinks == 0) {
        return;
    }
    f = open_memstream(&dump, &dump_len);
    CHECK(f != NULL);
    if (!f) {
        kwb_config_free(&cfg);
        return;
    }
    CHECK_EQ_INT(kwb_config_dump(&cfg, f, 0), 0);
    fclose(f);
    kwb_config_free(&cfg);
    f = fopen("../../conf/kube-watch-bridge.conf", "r");
    CHECK(f != NULL);
    if (!f) {
        free(dump);
        return;
    }
    ref = calloc(1, 1 << 20);
    ref_len = ref ? fread(ref, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    CHECK(ref_len > 0);
    for (line = strtok_r(dump, "\n", &save); line && ref;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq;

        while (*line == ' ') {
            line++;
        }
        if (strncmp(line, "# ", 2) == 0 && strstr(line, ": unset")) {
            line += 2; /* "# kubeconfig: unset" */
            eq = strstr(line, ": unset");
        } else {
            eq = strstr(line, " = ");
            if (!eq || *line == '#' || *line == '"') {
                continue;
            }
        }
        *eq = '\0';
        keys++;
        if (!has_word(ref, line)) {
            failed++;
            fprintf(stderr, "key '%s' is not in kube-watch-bridge.conf\n",
                    line);
        } else {
            passed++;
        }
    }
    CHECK(keys > 70);
    free(dump);
    free(ref);
}

/* The dump of a config reads back as the same config. */
static void test_dump_round_trip(void)
{
    struct kwb_config cfg;
    char err[1024];
    char *one = NULL, *two = NULL;
    size_t one_len = 0, two_len = 0;
    FILE *f;

    CHECK_EQ_INT(kwb_config_load(&cfg, "../../conf/kube-watch-bridge.conf", err,
                                 sizeof(err)),
                 0);
    if (cfg.n_sinks == 0) {
        return;
    }
    f = open_memstream(&one, &one_len);
    CHECK(f != NULL);
    if (!f) {
        kwb_config_free(&cfg);
        return;
    }
    CHECK_EQ_INT(kwb_config_dump(&cfg, f, 1), 0);
    fclose(f);
    kwb_config_free(&cfg);
    CHECK_EQ_INT(kwb_config_load_string(&cfg, one, one_len,
                                        "../../conf/kube-watch-bridge.conf",
                                        err, sizeof(err)),
                 0);
    if (cfg.n_sinks == 0) {
        fprintf(stderr, "%s\n", err);
        free(one);
        return;
    }
    f = open_memstream(&two, &two_len);
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ_INT(kwb_config_dump(&cfg, f, 1), 0);
        fclose(f);
        CHECK_EQ_STR(two, one);
    }
    kwb_config_free(&cfg);
    free(one);
    free(two);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    char cmd[128];

    snprintf(tmpdir, sizeof(tmpdir), "%s/kwb-test-config-XXXXXX",
             base && strlen(base) < 32 ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_load_keeps_malloc_thresholds();
    test_bad_configs();
    test_defaults();
    test_full();
    test_numbers();
    test_quoted_names();
    test_check_sinks();
    test_include();
    test_io_errors();
    test_read_sizes();
    test_queue_bytes_default();
    test_dump();
    test_examples();
    test_reference_documents_every_key();
    test_dump_round_trip();

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
