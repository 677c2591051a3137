/*
 * watch.h - one worker thread per configured watch: list, watch, resume,
 * relist. Workers hand batches of events to the pipeline and never call a
 * sink or the checkpoint.
 *
 * Thread: kwb_watch_start/stop on main; everything else on the worker.
 */
#ifndef KWB_WATCH_H
#define KWB_WATCH_H

#include <stddef.h>

#include "config.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

struct kwb_kube_auth;
struct kwb_watch;

/*
 * Create the worker for cfg->watches[idx]. `live` (taken on success) is
 * the store as of the checkpoint, `resume_rv` (copied, may be NULL) where
 * to resume. `first_start` means there was no checkpoint at all, so
 * cfg->initial applies.
 */
struct kwb_watch *kwb_watch_new(const struct kwb_config *cfg, size_t idx,
                                struct kwb_kube_auth *auth,
                                struct kwb_pipeline *pipeline,
                                struct kwb_watch_stats *stats,
                                struct kwb_store *live, const char *resume_rv,
                                int first_start, const unsigned char *hash_key,
                                size_t hash_key_len);
int kwb_watch_start(struct kwb_watch *w);
/* Ask the worker to stop (any thread, async-signal-unsafe). */
void kwb_watch_request_stop(struct kwb_watch *w);
/* Join; the worker has pushed everything it parsed before returning. */
void kwb_watch_join(struct kwb_watch *w);
void kwb_watch_free(struct kwb_watch *w); /* NULL-safe */

#endif
