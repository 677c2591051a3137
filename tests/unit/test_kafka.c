/*
 * test_kafka.c - the Kafka sink's offline behaviour: init() validation and
 * messages, defaults that keep the at-least-once promise, and the calls
 * that must be safe before start(). No network: start() is never called
 * (the integration tests run the sink against librdkafka's mock cluster).
 */
#include "sink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libconfig.h>

static int failed;
static int acks;

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__,        \
                    #cond);                                                    \
            failed++;                                                          \
        }                                                                      \
    } while (0)

static void on_ack(void *opaque, uint64_t token, enum kwb_ack_status status,
                   const char *reason)
{
    (void)opaque;
    (void)token;
    (void)status;
    (void)reason;
    acks++;
}

static int logged;

static void on_log(int level, const char *sink_name, const char *fmt, ...)
{
    (void)level;
    (void)sink_name;
    (void)fmt;
    logged++;
}

static const struct kwb_sink_env env = {
    .name = "kafka-test",
    .cluster = "c1",
    .ack = on_ack,
    .log = on_log,
    .conf_file = "test.conf",
};

/* init() on `sink = { <body> };`; returns the sink or NULL with errbuf. */
static void *init_body(const char *body, char *errbuf, size_t errsize)
{
    config_t lc;
    char text[2048];
    void *sink = NULL;

    errbuf[0] = '\0';
    snprintf(text, sizeof(text), "sink = { %s };", body);
    config_init(&lc);
    if (!config_read_string(&lc, text)) {
        snprintf(errbuf, errsize, "libconfig: %s", config_error_text(&lc));
    } else {
        sink = kwb_sink_kafka.init(config_lookup(&lc, "sink"), &env, errbuf,
                                   errsize);
    }
    /* The sink copies what it keeps: the config may go now. */
    config_destroy(&lc);
    return sink;
}

static void expect_error(const char *body, const char *needle)
{
    char errbuf[512];
    void *sink = init_body(body, errbuf, sizeof(errbuf));

    EXPECT(sink == NULL);
    kwb_sink_kafka.close(sink);
    if (!strstr(errbuf, needle)) {
        fprintf(stderr, "for { %s }: \"%s\" lacks \"%s\"\n", body, errbuf,
                needle);
        failed++;
    }
}

static void test_ops(void)
{
    EXPECT(strcmp(kwb_sink_kafka.type, "kafka") == 0);
    EXPECT(kwb_sink_kafka.keys != NULL);
    EXPECT(strcmp(kwb_sink_kafka.keys[0], "brokers") == 0);
    EXPECT(strcmp(kwb_sink_kafka.keys[1], "topic") == 0);
    EXPECT(strcmp(kwb_sink_kafka.keys[2], "properties") == 0);
    EXPECT(kwb_sink_kafka.keys[3] == NULL);
    kwb_sink_kafka.close(NULL);
}

static void test_valid_and_before_start(void)
{
    char errbuf[512];
    struct kwb_sink_event ev = {.json = "{}\n",
                                .json_len = 2,
                                .type = "ADDED",
                                .kind = "Pod",
                                .resource = "pods",
                                .namespace_ = "default",
                                .uid = "u1",
                                .resource_version = "1",
                                .cluster = "c1"};
    void *sink = init_body("brokers = \"127.0.0.1:1\"; topic = "
                           "\"k8s.{resource}\"; properties = { linger_ms = 1; "
                           "compression_type = \"lz4\"; log_level = 6; };",
                           errbuf, sizeof(errbuf));

    EXPECT(sink != NULL);
    if (!sink) {
        fprintf(stderr, "init: %s\n", errbuf);
        return;
    }
    /* Not started: not ready, nothing accepted, nothing to flush. */
    EXPECT(kwb_sink_kafka.ready(sink) == 0);
    EXPECT(kwb_sink_kafka.submit(sink, &ev, 1) == -ENOTCONN);
    EXPECT(kwb_sink_kafka.poll_acks(sink, 0) == -ENOTCONN);
    EXPECT(kwb_sink_kafka.flush(sink, 0) == 0);
    EXPECT(acks == 0);
    kwb_sink_kafka.close(sink);
}

static void test_errors(void)
{
    expect_error("topic = \"t\";", "brokers: missing");
    expect_error("brokers = \"\"; topic = \"t\";", "brokers");
    expect_error("brokers = \"h:1\";", "topic: missing");
    expect_error("brokers = \"h:1\"; topic = \"{nope}\";", "{nope}");
    expect_error("brokers = \"h:1\"; topic = \"a/b\";", "invalid character");
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = { "
                 "no_such = 1; };",
                 "no_such (\"no.such\"): No such configuration property");
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = { "
                 "socket_timeout_ms = \"x\"; };",
                 "socket_timeout_ms");
    /* Combination errors: found by a client created without brokers. */
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = { "
                 "acks = 0; };",
                 "enable.idempotence");
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = { "
                 "metadata_broker_list = \"x\"; };",
                 "brokers");
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = { "
                 "delivery_report_only_error = true; };",
                 "delivery.report.only.error");
    expect_error("brokers = \"h:1\"; topic = \"t\"; properties = 5;",
                 "properties: must be a group");
}

static void test_sensitive_value_not_echoed(void)
{
    char errbuf[512];
    void *sink = init_body("brokers = \"h:1\"; topic = \"t\"; properties = { "
                           "sasl_password = \"hunter2\"; sasl_mechanisms = "
                           "\"NOPE\"; security_protocol = \"SASL_SSL\"; };",
                           errbuf, sizeof(errbuf));

    EXPECT(sink == NULL);
    EXPECT(strstr(errbuf, "SASL mechanism: NOPE") != NULL);
    EXPECT(strstr(errbuf, "hunter2") == NULL);
    kwb_sink_kafka.close(sink);
}

int main(void)
{
    test_ops();
    test_valid_and_before_start();
    test_errors();
    test_sensitive_value_not_echoed();
    if (failed) {
        fprintf(stderr, "test_kafka: %d failed\n", failed);
        return 1;
    }
    printf("test_kafka: ok\n");
    return 0;
}
