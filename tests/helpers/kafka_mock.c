/*
 * kafka_mock.c - librdkafka's mock cluster as a test helper process.
 *
 *   kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * Prints the bootstrap address list ("127.0.0.1:p1,127.0.0.1:p2,...") as
 * one line on stdout, then serves until stdin closes or SIGTERM/SIGINT.
 * While it runs it reads one control command a line on stdin and answers
 * each with one line, "ok" or "error <message>", so a test can inject
 * faults in order:
 *
 *   down <broker_id>          broker disconnects and refuses connections
 *   up <broker_id>
 *   all-down / all-up         every broker (ids 1..N)
 *   error <apikey> <errcode> <count>   next <count> requests of ApiKey
 *                                      (0 = Produce, 3 = Metadata) fail
 *   clear <apikey>            drop queued request errors
 *   topic <name> <partitions> create a topic
 *   topic-error <name> <errcode>  metadata reports errcode for the topic
 *   leader <topic> <partition> <broker_id>  move a partition's leader
 *   rtt <broker_id> <ms>      add round-trip latency
 *
 * Only loopback listeners: the mock binds 127.0.0.1 on ephemeral ports.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (!s) {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name,
                        long parts, char *msg, size_t msgsize)
{
    rd_kafka_resp_err_t err;

    err = rd_kafka_mock_topic_create(mc, name, (int)parts, 3);
    if (err) {
        snprintf(msg, msgsize, "topic %s: %s", name, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static int set_updown(rd_kafka_mock_cluster_t *mc, long id, int up, char *msg,
                      size_t msgsize)
{
    rd_kafka_resp_err_t err;

    err = up ? rd_kafka_mock_broker_set_up(mc, (int32_t)id)
             : rd_kafka_mock_broker_set_down(mc, (int32_t)id);
    if (err) {
        snprintf(msg, msgsize, "broker %ld: %s", id, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Execute one command line; 0 or -1 with msg filled. */
static int run_command(rd_kafka_mock_cluster_t *mc, int n_brokers, char *line,
                       char *msg, size_t msgsize)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t", &save);
    char *a1 = strtok_r(NULL, " \t", &save);
    char *a2 = strtok_r(NULL, " \t", &save);
    char *a3 = strtok_r(NULL, " \t", &save);
    long v1 = 0, v2 = 0, v3 = 0;

    if (!cmd) {
        snprintf(msg, msgsize, "empty command");
        return -1;
    }
    if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) {
        if (parse_int(a1, 1, n_brokers, &v1)) {
            snprintf(msg, msgsize, "usage: %s <broker_id 1..%d>", cmd,
                     n_brokers);
            return -1;
        }
        return set_updown(mc, v1, cmd[0] == 'u', msg, msgsize);
    }
    if (strcmp(cmd, "all-down") == 0 || strcmp(cmd, "all-up") == 0) {
        for (int id = 1; id <= n_brokers; id++) {
            if (set_updown(mc, id, cmd[4] == 'u', msg, msgsize)) {
                return -1;
            }
        }
        return 0;
    }
    if (strcmp(cmd, "error") == 0) {
        if (parse_int(a1, 0, 32767, &v1) || parse_int(a2, -1, 32767, &v2) ||
            parse_int(a3, 1, 1000000, &v3)) {
            snprintf(msg, msgsize, "usage: error <apikey> <errcode> <count>");
            return -1;
        }
        for (long i = 0; i < v3; i++) {
            rd_kafka_mock_push_request_errors(mc, (int16_t)v1, 1,
                                              (rd_kafka_resp_err_t)v2);
        }
        return 0;
    }
    if (strcmp(cmd, "clear") == 0) {
        if (parse_int(a1, 0, 32767, &v1)) {
            snprintf(msg, msgsize, "usage: clear <apikey>");
            return -1;
        }
        rd_kafka_mock_clear_request_errors(mc, (int16_t)v1);
        return 0;
    }
    if (strcmp(cmd, "topic") == 0) {
        if (!a1 || parse_int(a2, 1, 10000, &v2)) {
            snprintf(msg, msgsize, "usage: topic <name> <partitions>");
            return -1;
        }
        return create_topic(mc, a1, v2, msg, msgsize);
    }
    if (strcmp(cmd, "topic-error") == 0) {
        if (!a1 || parse_int(a2, -1, 32767, &v2)) {
            snprintf(msg, msgsize, "usage: topic-error <name> <errcode>");
            return -1;
        }
        rd_kafka_mock_topic_set_error(mc, a1, (rd_kafka_resp_err_t)v2);
        return 0;
    }
    if (strcmp(cmd, "leader") == 0) {
        if (!a1 || parse_int(a2, 0, 10000, &v2) ||
            parse_int(a3, 1, n_brokers, &v3)) {
            snprintf(msg, msgsize,
                     "usage: leader <topic> <partition> <broker_id>");
            return -1;
        }
        if (rd_kafka_mock_partition_set_leader(mc, a1, (int32_t)v2,
                                               (int32_t)v3)) {
            snprintf(msg, msgsize, "leader failed");
            return -1;
        }
        return 0;
    }
    if (strcmp(cmd, "rtt") == 0) {
        if (parse_int(a1, 1, n_brokers, &v1) || parse_int(a2, 0, 600000, &v2)) {
            snprintf(msg, msgsize, "usage: rtt <broker_id> <ms>");
            return -1;
        }
        if (rd_kafka_mock_broker_set_rtt(mc, (int32_t)v1, (int)v2)) {
            snprintf(msg, msgsize, "rtt failed");
            return -1;
        }
        return 0;
    }
    snprintf(msg, msgsize, "unknown command %s", cmd);
    return -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...\n");
}

int main(int argc, char **argv)
{
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    char errstr[512];
    char line[1024];
    size_t used = 0;
    long n_brokers = 3;
    int rc = 1;
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 16, &n_brokers)) {
                usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            i++; /* created below, once the cluster exists */
        } else {
            usage();
            return 2;
        }
    }

    conf = rd_kafka_conf_new();
    /* The handle only hosts the mock cluster's thread; it never connects. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        goto out;
    }
    conf = NULL;
    mc = rd_kafka_mock_cluster_new(rk, (int)n_brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create mock cluster\n");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") == 0) {
            char spec[256];
            char *colon;
            long parts = 1;
            int len = snprintf(spec, sizeof(spec), "%s", argv[++i]);

            if (len < 0 || (size_t)len >= sizeof(spec)) {
                usage();
                rc = 2;
                goto out;
            }
            colon = strrchr(spec, ':');
            if (colon) {
                *colon = '\0';
                if (parse_int(colon + 1, 1, 10000, &parts)) {
                    usage();
                    rc = 2;
                    goto out;
                }
            }
            if (create_topic(mc, spec, parts, errstr, sizeof(errstr))) {
                fprintf(stderr, "kafka_mock: %s\n", errstr);
                goto out;
            }
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    while (!stop_flag) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        ssize_t n;
        char *nl;

        if (poll(&pfd, 1, 200) <= 0) {
            continue;
        }
        n = read(0, line + used, sizeof(line) - 1 - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* stdin closed: the test is gone */
        }
        used += (size_t)n;
        line[used] = '\0';
        while ((nl = strchr(line, '\n')) != NULL) {
            char msg[512] = "";
            size_t len = (size_t)(nl - line);

            *nl = '\0';
            if (len > 0 && line[len - 1] == '\r') {
                line[len - 1] = '\0';
            }
            if (run_command(mc, (int)n_brokers, line, msg, sizeof(msg))) {
                printf("error %s\n", msg);
            } else {
                printf("ok\n");
            }
            fflush(stdout);
            memmove(line, nl + 1, used - len - 1);
            used -= len + 1;
            line[used] = '\0';
        }
        if (used == sizeof(line) - 1) {
            printf("error line too long\n");
            fflush(stdout);
            used = 0;
        }
    }
    rc = 0;
out:
    if (mc) {
        rd_kafka_mock_cluster_destroy(mc);
    }
    if (rk) {
        rd_kafka_destroy(rk);
    }
    if (conf) {
        rd_kafka_conf_destroy(conf);
    }
    return rc;
}
