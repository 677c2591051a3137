/*
 * leader.h - leader election on a coordination.k8s.io/v1 Lease, with
 * client-go's semantics, so that of several replicas only one forwards.
 *
 * The elector GETs the lease; creates it when absent (POST; 409: someone
 * else won); waits while another identity holds it and it has not expired
 * (leaseDurationSeconds after the record last changed, measured on our
 * own monotonic clock from when we saw the change, as client-go does);
 * else takes it with a PUT carrying metadata.resourceVersion (optimistic
 * concurrency; 409: lost the race, try again). The leader renews every
 * retry period; when it cannot renew within renew_deadline (counted from
 * the start of its last successful renewal), or sees another holder, it
 * has lost leadership for good: lost_fd becomes readable and the elector
 * stops (the agent then exits so the pod restarts, as client-go's
 * OnStoppedLeading). A stopped leader releases the lease (holderIdentity
 * cleared, leaseDurationSeconds 1, as client-go's ReleaseOnCancel) so a
 * standby takes over within one retry period.
 *
 * Callers: main (start, wait, lost_fd, stop). The elector runs one thread
 * with its own curl easy handle; curl_global_init must have run.
 * Thread: start/stop from one thread; wait, is_leader and lost_fd from any.
 * Locks: `lock` guards state and stopping; never held across I/O or logging.
 */
#ifndef KWB_LEADER_H
#define KWB_LEADER_H

#include <stddef.h>

struct kwb_config;
struct kwb_kube_auth;
struct kwb_leader;

#define KWB_LEADER_DEFAULT_NAME "kube-watch-bridge"

/*
 * Start campaigning. cfg is borrowed for the call only (lease namespace,
 * name, identity and durations are copied): lease namespace defaults to the
 * auth source's namespace, then "default"; name to
 * KWB_LEADER_DEFAULT_NAME; identity to "<hostname>_<random hex>";
 * durations (seconds) to 15 / 10 / 2 when 0. Requires lease > renew >
 * retry. auth is borrowed and must outlive the elector. Returns 0 and
 * *out, or a negative errno with errbuf.
 */
int kwb_leader_start(const struct kwb_config *cfg, struct kwb_kube_auth *auth,
                     struct kwb_leader **out, char *errbuf, size_t errsize);

/* Block until we are leader (1), timeout_ms passes (0; < 0 waits without
 * limit), or the elector is stopping or has lost leadership (-ECANCELED). */
int kwb_leader_wait(struct kwb_leader *l, int timeout_ms);

/* 1 while we hold the lease. Lock-free. */
int kwb_leader_is_leader(const struct kwb_leader *l);

/* An eventfd that becomes readable once, when leadership is lost (never
 * on a requested stop). Owned by the elector; valid until stop. */
int kwb_leader_lost_fd(const struct kwb_leader *l);

/* The identity we campaign under (borrowed). */
const char *kwb_leader_identity(const struct kwb_leader *l);

/* NULL-safe. Stop campaigning, release the lease if held, join the thread
 * and free everything. */
void kwb_leader_stop(struct kwb_leader *l);

#endif
