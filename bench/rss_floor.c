/*
 * rss_floor.c - the memory floor of any program built on the agent's
 * libraries: links libcurl, librdkafka, libconfig, cJSON, libmicrohttpd,
 * OpenSSL and libyaml like kube-watch-bridge, initialises them as the
 * agent does at start (curl_global_init, OpenSSL, a libconfig parse, a
 * cJSON parse, a librdkafka configuration, the metrics HTTP server on
 * 127.0.0.1, ephemeral port, with its own thread), then prints "ready <pid>"
 * and sleeps until stdin closes or a signal ends it. bench.py reads its VmRSS
 * and /proc/PID/smaps_rollup and prints them beside the agent's.
 *
 * Usage: rss_floor
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *data_size, void **state)
{
    struct MHD_Response *r;
    enum MHD_Result rc;

    (void)cls, (void)url, (void)method, (void)version, (void)data;
    (void)data_size, (void)state;
    r = MHD_create_response_from_buffer(3, (void *)"ok\n",
                                        MHD_RESPMEM_PERSISTENT);
    rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

int main(void)
{
    static const char conf_text[] =
        "cluster = { name = \"floor\"; };\n"
        "watches = ( { api = \"v1\"; resource = \"pods\"; } );\n";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char errstr[256];
    config_t conf;
    cJSON *j;
    rd_kafka_conf_t *kc;
    struct MHD_Daemon *d;
    yaml_parser_t yp;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char buf[64];
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        return 1;
    }
    /* curl's TLS backend is up; the agent also hashes (HMAC, checkpoint
     * SHA-256) with libcrypto. */
    OPENSSL_init_ssl(0, NULL);
    if (!EVP_Digest("floor", 5, md, &md_len, EVP_sha256(), NULL)) {
        fprintf(stderr, "EVP_Digest failed\n");
        goto out;
    }
    config_init(&conf);
    if (config_read_string(&conf, conf_text) != CONFIG_TRUE) {
        fprintf(stderr, "libconfig: %s\n", config_error_text(&conf));
        config_destroy(&conf);
        goto out;
    }
    config_destroy(&conf);
    j = cJSON_Parse("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"floor\"}}");
    if (!j) {
        fprintf(stderr, "cJSON_Parse failed\n");
        goto out;
    }
    cJSON_Delete(j);
    if (!yaml_parser_initialize(&yp)) {
        fprintf(stderr, "yaml_parser_initialize failed\n");
        goto out;
    }
    yaml_parser_delete(&yp);
    kc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kc, "linger.ms", "5", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdkafka: %s\n", errstr);
        rd_kafka_conf_destroy(kc);
        goto out;
    }
    rd_kafka_conf_destroy(kc);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0,
                         NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned int)64, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "MHD_start_daemon failed\n");
        goto out;
    }
    printf("ready %d (curl %s, rdkafka %s, cJSON %s, %s, sha256 %u bytes)\n",
           (int)getpid(), curl_version_info(CURLVERSION_NOW)->version,
           rd_kafka_version_str(), cJSON_Version(),
           OpenSSL_version(OPENSSL_VERSION), md_len);
    fflush(stdout);
    /* Idle until told to go: EOF on stdin (or a signal). */
    while (fgets(buf, sizeof(buf), stdin)) {
    }
    MHD_stop_daemon(d);
    rc = 0;
out:
    curl_global_cleanup();
    return rc;
}
