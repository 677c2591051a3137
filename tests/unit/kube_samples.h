/*
 * kube_samples.h - realistic Kubernetes JSON for tests and benchmarks:
 * a ~3.6 KB Pod (labels, annotations incl. last-applied-configuration,
 * ownerReferences, managedFields, two containers, status) and watch
 * lines around it. Header-only; all output goes into caller buffers.
 */
#ifndef KWB_KUBE_SAMPLES_H
#define KWB_KUBE_SAMPLES_H

#include <stdio.h>

/* clang-format off */
/* Pod number i into buf; returns the length, or -1 when it does not fit. */
static inline int sample_pod(char *buf, size_t size, unsigned i)
{
    int n = snprintf(
        buf, size,
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{"
        "\"name\":\"web-%u-7d9f8c6b5-x%04u\",\"generateName\":\"web-%u-7d9f8c6b5-\","
        "\"namespace\":\"shop-%u\",\"uid\":\"%08x-4e2b-11ee-9c1d-%012x\","
        "\"resourceVersion\":\"%u\",\"creationTimestamp\":\"2026-11-22T15:04:05Z\","
        "\"labels\":{\"app\":\"web\",\"pod-template-hash\":\"7d9f8c6b5\","
        "\"tier\":\"frontend\",\"app.kubernetes.io/version\":\"1.24.%u\","
        "\"team\":\"checkout\"},"
        "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":"
        "\"{\\\"apiVersion\\\":\\\"v1\\\",\\\"kind\\\":\\\"Pod\\\",\\\"metadata\\\":"
        "{\\\"annotations\\\":{},\\\"labels\\\":{\\\"app\\\":\\\"web\\\"},"
        "\\\"name\\\":\\\"web\\\",\\\"namespace\\\":\\\"shop\\\"},\\\"spec\\\":"
        "{\\\"containers\\\":[{\\\"image\\\":\\\"nginx:1.24\\\",\\\"name\\\":"
        "\\\"web\\\"}]}}\\n\","
        "\"prometheus.io/scrape\":\"true\",\"prometheus.io/port\":\"9113\"},"
        "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
        "\"name\":\"web-%u-7d9f8c6b5\",\"uid\":\"1b7e5c2a-4e2b-11ee-9c1d-0242ac120002\","
        "\"controller\":true,\"blockOwnerDeletion\":true}],"
        "\"managedFields\":[{\"manager\":\"kube-controller-manager\","
        "\"operation\":\"Update\",\"apiVersion\":\"v1\","
        "\"time\":\"2026-11-22T15:04:05Z\",\"fieldsType\":\"FieldsV1\","
        "\"fieldsV1\":{\"f:metadata\":{\"f:generateName\":{},\"f:labels\":"
        "{\".\":{},\"f:app\":{},\"f:pod-template-hash\":{}},\"f:ownerReferences\":"
        "{\".\":{},\"k:{\\\"uid\\\":\\\"1b7e5c2a-4e2b-11ee-9c1d-0242ac120002\\\"}\":{}}},"
        "\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"web\\\"}\":{\".\":{},"
        "\"f:image\":{},\"f:imagePullPolicy\":{},\"f:name\":{},\"f:ports\":{}},"
        "\"k:{\\\"name\\\":\\\"sidecar\\\"}\":{\".\":{},\"f:image\":{},\"f:name\":{}}},"
        "\"f:dnsPolicy\":{},\"f:restartPolicy\":{},\"f:schedulerName\":{}}}},"
        "{\"manager\":\"kubelet\",\"operation\":\"Update\",\"apiVersion\":\"v1\","
        "\"time\":\"2026-11-22T15:04:09Z\",\"fieldsType\":\"FieldsV1\","
        "\"fieldsV1\":{\"f:status\":{\"f:conditions\":{},"
        "\"f:containerStatuses\":{},\"f:hostIP\":{},\"f:phase\":{},\"f:podIP\":{},"
        "\"f:podIPs\":{\".\":{},\"k:{\\\"ip\\\":\\\"10.244.1.%u\\\"}\":{}},"
        "\"f:startTime\":{}}},\"subresource\":\"status\"}]},"
        "\"spec\":{\"volumes\":[{\"name\":\"kube-api-access-%05u\",\"projected\":"
        "{\"sources\":[{\"serviceAccountToken\":{\"path\":\"token\"}}],"
        "\"defaultMode\":420}}],"
        "\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.24.%u\",\"ports\":"
        "[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}],"
        "\"env\":[{\"name\":\"GREETING\",\"value\":"
        "\"Grüße aus Zürich — ✓\"}],\"resources\":{\"limits\":{\"cpu\":\"500m\","
        "\"memory\":\"256Mi\"},\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}},"
        "\"volumeMounts\":[{\"name\":\"kube-api-access-%05u\",\"readOnly\":true,"
        "\"mountPath\":\"/var/run/secrets/kubernetes.io/serviceaccount\"}],"
        "\"imagePullPolicy\":\"IfNotPresent\"},"
        "{\"name\":\"sidecar\",\"image\":\"envoyproxy/envoy:v1.28.0\",\"args\":"
        "[\"-c\",\"/etc/envoy/envoy.yaml\"],"
        "\"imagePullPolicy\":\"IfNotPresent\"}],"
        "\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,"
        "\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":\"default\","
        "\"nodeName\":\"node-%u\",\"securityContext\":{},\"schedulerName\":"
        "\"default-scheduler\",\"priority\":0},"
        "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Initialized\","
        "\"status\":\"True\",\"lastProbeTime\":null,\"lastTransitionTime\":"
        "\"2026-11-22T15:04:05Z\"},{\"type\":\"Ready\",\"status\":\"True\","
        "\"lastProbeTime\":null,\"lastTransitionTime\":\"2026-11-22T15:04:09Z\"}],"
        "\"hostIP\":\"172.18.0.%u\",\"podIP\":\"10.244.1.%u\",\"podIPs\":[{\"ip\":"
        "\"10.244.1.%u\"}],\"startTime\":\"2026-11-22T15:04:05Z\","
        "\"containerStatuses\":[{\"name\":\"sidecar\",\"state\":{\"running\":"
        "{\"startedAt\":\"2026-11-22T15:04:08Z\"}},\"lastState\":{},\"ready\":true,"
        "\"restartCount\":0,\"image\":\"docker.io/envoyproxy/envoy:v1.28.0\","
        "\"containerID\":\"containerd://%064x\",\"started\":true},"
        "{\"name\":\"web\",\"state\":{\"running\":{\"startedAt\":"
        "\"2026-11-22T15:04:07Z\"}},\"lastState\":{},\"ready\":true,"
        "\"restartCount\":%u,\"image\":\"docker.io/library/nginx:1.24.%u\","
        "\"containerID\":\"containerd://%064x\",\"started\":true}],"
        "\"qosClass\":\"Burstable\"}}",
        i, i % 10000, i, i % 50, i, i, 100000 + i, i % 10, i, i % 250, i % 100000,
        i % 10, i % 100000, i % 8, i % 8, i % 250, i % 250, i * 7919u, i % 5,
        i % 10, i * 104729u);
    return n < 0 || (size_t)n >= size ? -1 : n;
}
/* clang-format on */

/* {"type":"<type>","object":<pod i>}; returns the length or -1. */
static inline int sample_pod_event(char *buf, size_t size, const char *type,
                                   unsigned i)
{
    int h = snprintf(buf, size, "{\"type\":\"%s\",\"object\":", type);
    int n;

    if (h < 0 || (size_t)h >= size) {
        return -1;
    }
    n = sample_pod(buf + h, size - (size_t)h, i);
    if (n < 0 || (size_t)(h + n + 1) >= size) {
        return -1;
    }
    buf[h + n] = '}';
    buf[h + n + 1] = '\0';
    return h + n + 1;
}

#endif
