/*
 * test_backoff.c - exponential growth, jitter bounds, cap, reset after a
 * quiet period, Retry-After as a lower bound. Clock and seed injected.
 */
#include "backoff.h"
#include "check.h"

int main(void)
{
    struct kwb_backoff b;
    int64_t now = 1000000;
    int ok = 1;

    kwb_backoff_init(&b, 0.8, 2.0, 1.0, 30.0, 120.0, 42);
    /* d = 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30: sleep in [d/2, d]. */
    double d = 0.8;
    for (int i = 0; i < 10; i++) {
        int64_t ms = kwb_backoff_next(&b, now, 0);
        double cap = d < 30.0 ? d : 30.0;
        ok &= ms >= (int64_t)(cap * 500.0) - 1 && ms <= (int64_t)(cap * 1000);
        d *= 2;
        now += ms;
    }
    CHECK(ok);
    /* Never above the cap. */
    for (int i = 0; i < 100; i++) {
        ok &= kwb_backoff_next(&b, now, 0) <= 30000;
        now += 10;
    }
    CHECK(ok);
    /* Two quiet minutes reset it to the initial delay. */
    now += 121 * 1000;
    CHECK(kwb_backoff_next(&b, now, 0) <= 800);
    /* Retry-After is a lower bound. */
    CHECK(kwb_backoff_next(&b, now + 1, 5.0) >= 5000);

    /* No jitter: exact delays. */
    kwb_backoff_init(&b, 1.0, 2.0, 0.0, 4.0, 120.0, 1);
    CHECK_EQ_INT(kwb_backoff_next(&b, 0, 0), 1000);
    CHECK_EQ_INT(kwb_backoff_next(&b, 1, 0), 2000);
    CHECK_EQ_INT(kwb_backoff_next(&b, 2, 0), 4000);
    CHECK_EQ_INT(kwb_backoff_next(&b, 3, 0), 4000);

    /* Random numbers stay in [0, 1). */
    for (int i = 0; i < 1000; i++) {
        double r = kwb_backoff_rand(&b);
        ok &= r >= 0.0 && r < 1.0;
    }
    CHECK(ok);
    return check_report();
}
