/*
 * backoff.h - exponential backoff with jitter, as client-go's reflector
 * and kube-rs use: initial 0.8 s, factor 2, jitter 1.0, cap 30 s, reset
 * after 2 minutes without failure.
 *
 * The delay of the n-th consecutive failure is d = min(initial * factor^n,
 * max); the sleep is uniform in [d * (1 - jitter/2), d], so with jitter 1.0
 * it lies in [d/2, d]: spread out, never above the cap. A Retry-After
 * from the server is a lower bound.
 *
 * Thread: one owner; randomness and clock are injected for tests.
 */
#ifndef KWB_BACKOFF_H
#define KWB_BACKOFF_H

#include <stdint.h>

struct kwb_backoff {
    double initial_s, factor, jitter, max_s, reset_s;
    double cur_s;         /* next base delay */
    int64_t last_fail_ms; /* time of the last failure, -1 never */
    uint64_t rng;         /* xorshift state */
};

void kwb_backoff_init(struct kwb_backoff *b, double initial_s, double factor,
                      double jitter, double max_s, double reset_s,
                      uint64_t seed);
/* A failure at now_ms: returns the delay in ms to wait before the next
 * attempt, at least retry_after_s (pass 0 when none). */
int64_t kwb_backoff_next(struct kwb_backoff *b, int64_t now_ms,
                         double retry_after_s);
/* Uniform random in [0, 1) from the backoff's generator. */
double kwb_backoff_rand(struct kwb_backoff *b);

#endif
