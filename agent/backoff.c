/*
 * backoff.c - see backoff.h.
 */
#include "backoff.h"

void kwb_backoff_init(struct kwb_backoff *b, double initial_s, double factor,
                      double jitter, double max_s, double reset_s,
                      uint64_t seed)
{
    b->initial_s = initial_s;
    b->factor = factor;
    b->jitter = jitter < 0 ? 0 : (jitter > 1 ? 1 : jitter);
    b->max_s = max_s;
    b->reset_s = reset_s;
    b->cur_s = initial_s;
    b->last_fail_ms = -1;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

double kwb_backoff_rand(struct kwb_backoff *b)
{
    /* xorshift64*: good enough for jitter, cheap, injectable. */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return (double)((b->rng * 2685821657736338717ull) >> 11) /
           (double)(1ull << 53);
}

int64_t kwb_backoff_next(struct kwb_backoff *b, int64_t now_ms,
                         double retry_after_s)
{
    double d, sleep_s;

    /* A long quiet spell since the last failure starts over. */
    if (b->last_fail_ms >= 0 &&
        (double)(now_ms - b->last_fail_ms) >= b->reset_s * 1000.0) {
        b->cur_s = b->initial_s;
    }
    b->last_fail_ms = now_ms;
    d = b->cur_s < b->max_s ? b->cur_s : b->max_s;
    sleep_s = d * (1.0 - b->jitter * 0.5 * kwb_backoff_rand(b));
    b->cur_s = d * b->factor;
    if (sleep_s < retry_after_s) {
        sleep_s = retry_after_s;
    }
    return (int64_t)(sleep_s * 1000.0);
}
