/*
 * cmstate.h - the "configmap" state backend: per-watch checkpoints kept in
 * ConfigMaps, so they survive a pod rescheduled without a volume and are
 * shared by the replicas of a leader-elected Deployment.
 *
 * One ConfigMap per watch in state.configmap_namespace, named
 * "<prefix>-<sanitized watch id>" (see kwb_cmstate_name). data["checkpoint"]
 * holds the file backend's text (checkpoint.h: header, entries, SHA-256
 * trailer); data["objects"] is "included", or "omitted" when the text with
 * the known-object set would exceed KWB_CMSTATE_MAX_TEXT (ConfigMaps hold at
 * most 1 MiB): then only the resourceVersion is stored. Resuming from such a
 * checkpoint watches from that resourceVersion with an empty known set; if
 * it has expired (410), the relist diffs against that set, so every live
 * object is emitted again (ADDED) and objects deleted while the agent was
 * down are not reported as DELETED.
 *
 * Writes: PUT with metadata.resourceVersion of the last version read or
 * written (optimistic concurrency); 404 -> POST; 409 -> GET and retry once.
 *
 * Callers: main (new, read before the pipeline starts, free after it
 * stopped) and the pipeline thread (write). Thread: one thread at a time;
 * the object has its own curl easy handle. Never logs a token.
 */
#ifndef KWB_CMSTATE_H
#define KWB_CMSTATE_H

#include <stddef.h>

#include "store.h"

struct kwb_config;
struct kwb_kube_auth;
struct kwb_cmstate;

/* Largest checkpoint text stored with its known-object set. */
#define KWB_CMSTATE_MAX_TEXT (900u * 1024u)
/* Longest ConfigMap name (a DNS-1123 subdomain). */
#define KWB_CMSTATE_NAME_MAX 253
/* Hex digits of SHA-256(watch id) in a hash-suffixed name. */
#define KWB_CMSTATE_HASH_HEX 10

/*
 * The ConfigMap name of watch_id into out (size >= KWB_CMSTATE_NAME_MAX+1):
 * "<prefix>-<id>" with the id lower-cased and every run of characters
 * other than [a-z0-9] turned into one '-' ("apps/v1/deployments@kube-system"
 * -> "apps-v1-deployments-kube-system"). With `hashed`, or when the result
 * would be longer than KWB_CMSTATE_NAME_MAX, it is cut and ends in
 * "-<first 10 hex digits of SHA-256(watch_id)>". Returns 1 when hashed, 0
 * when not, -EINVAL for an empty prefix or id, -ENAMETOOLONG when size is
 * too small.
 */
int kwb_cmstate_name(const char *prefix, const char *watch_id, int hashed,
                     char *out, size_t size);

/*
 * Names for every watch of cfg (hash-suffixed where two plain names would
 * collide), the namespace (cfg->state_configmap_namespace) and a curl
 * handle. auth is borrowed and must outlive the object. 0 and *out, or a
 * negative errno with errbuf.
 */
int kwb_cmstate_new(const struct kwb_config *cfg, struct kwb_kube_auth *auth,
                    struct kwb_cmstate **out, char *errbuf, size_t errsize);
void kwb_cmstate_free(struct kwb_cmstate *cs); /* NULL-safe */

/* "namespace/name" of a watch's ConfigMap, for logs; NULL for an unknown
 * watch id. Borrowed. */
const char *kwb_cmstate_where(const struct kwb_cmstate *cs,
                              const char *watch_id);

/*
 * Store the checkpoint of watch_id. 0, or a negative errno with errbuf
 * (-EIO network, -EACCES 401/403, -EBUSY after a second 409 conflict,
 * -EPROTO other HTTP answers). After a failure, further writes return
 * -EAGAIN at once (nothing sent) for 1 s, doubling up to 30 s, so a
 * caller retrying every interval blocks on at most one request (10 s at
 * most) per period. The caller keeps its state dirty and retries.
 */
int kwb_cmstate_write(struct kwb_cmstate *cs, const char *watch_id,
                      const char *rv, const struct kwb_store *s, char *errbuf,
                      size_t errsize);

/*
 * Read it back: 0 with *rv (malloc'd), *s (new store) and *omitted (1 when
 * the known-object set was left out: *s is then empty); -ENOENT when there
 * is none; -EBADMSG when its content is corrupt (errbuf says why); other
 * negative errno when the API server could not be asked (network errors,
 * 5xx and 429 are retried a few times first). kwb_cmstate_write remembers
 * the resourceVersion read.
 */
int kwb_cmstate_read(struct kwb_cmstate *cs, const char *watch_id, char **rv,
                     struct kwb_store **s, int *omitted, char *errbuf,
                     size_t errsize);

#endif
