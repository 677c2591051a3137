/*
 * check.h - tiny assertion helpers for the unit tests.
 *
 *   CHECK(cond); CHECK_EQ_INT(a, b); CHECK_EQ_STR(a, b);
 *   CHECK_EQ_MEM(p, n, q, m);
 *   return check_report();   (at the end of main)
 *
 * A failed check prints file:line and the values, counts, and goes on;
 * check_report() prints "N passed, N failed" and returns the exit code
 * (nonzero when anything failed). Header-only: each test is one binary.
 */
#ifndef KWB_CHECK_H
#define KWB_CHECK_H

#include <stdio.h>
#include <string.h>

static unsigned long check_passed, check_failed;

static inline int check_result(int ok, const char *file, int line,
                               const char *expr)
{
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    }
    return ok;
}

#define CHECK(cond) check_result(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        if (!check_result(check_a_ == check_b_, __FILE__, __LINE__,            \
                          #a " == " #b)) {                                     \
            fprintf(stderr, "    %lld != %lld\n", check_a_, check_b_);         \
        }                                                                      \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                     \
    do {                                                                       \
        const char *check_a_ = (a), *check_b_ = (b);                           \
        int check_ok_ =                                                        \
            (!check_a_ && !check_b_) ||                                        \
            (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0);         \
        if (!check_result(check_ok_, __FILE__, __LINE__, #a " == " #b)) {      \
            fprintf(stderr, "    \"%s\" != \"%s\"\n",                          \
                    check_a_ ? check_a_ : "(null)",                            \
                    check_b_ ? check_b_ : "(null)");                           \
        }                                                                      \
    } while (0)

/* Bytes [p, p+n) equal [q, q+m). */
#define CHECK_EQ_MEM(p, n, q, m)                                               \
    do {                                                                       \
        size_t check_n_ = (n), check_m_ = (m);                                 \
        int check_ok_ = check_n_ == check_m_ &&                                \
                        (check_n_ == 0 || memcmp((p), (q), check_n_) == 0);    \
        if (!check_result(check_ok_, __FILE__, __LINE__,                       \
                          #p "[" #n "] == " #q "[" #m "]")) {                  \
            fprintf(stderr, "    \"%.*s\" != \"%.*s\"\n",                      \
                    (int)(check_n_ > 200 ? 200 : check_n_), (p),               \
                    (int)(check_m_ > 200 ? 200 : check_m_), (q));              \
        }                                                                      \
    } while (0)

static inline int check_report(void)
{
    printf("%lu passed, %lu failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
