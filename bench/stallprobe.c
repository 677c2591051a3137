/*
 * stallprobe.c - what the machine itself does to a sleeping thread while a
 * latency benchmark runs: wakes every millisecond (absolute CLOCK_MONOTONIC
 * deadlines) and records every wake-up more than 0.5 ms late, i.e. a time
 * in which this machine ran nothing of ours (vCPU descheduled by the
 * host, or every CPU busy). bench.py runs it beside the agent and matches
 * the slow events against these stalls on the same clock.
 *
 * Output FILE, one line per late wake-up: "<CLOCK_REALTIME ns at the
 * wake-up> <ms late>", then "# ticks N late M". Costs ~1k wake-ups/s.
 * Runs until SIGINT or SIGTERM.
 *
 * Usage: stallprobe FILE
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

static uint64_t ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return ns_of(&ts);
}

static void add_ms(struct timespec *ts)
{
    ts->tv_nsec += 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    struct timespec next;
    uint64_t ticks = 0, late = 0;
    FILE *out;

    if (argc != 2) {
        fprintf(stderr, "usage: stallprobe FILE\n");
        return 2;
    }
    out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 1;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!quit) {
        add_ms(&next);
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0) {
            continue; /* a signal: quit is checked above */
        }
        uint64_t now = now_ns(CLOCK_MONOTONIC), due = ns_of(&next);
        ticks++;
        if (now > due + 500000) {
            late++;
            fprintf(out, "%llu %.3f\n",
                    (unsigned long long)now_ns(CLOCK_REALTIME),
                    (double)(now - due) / 1e6);
            /* the ticks missed meanwhile are not late ones of their own */
            while (ns_of(&next) + 1000000 < now) {
                add_ms(&next);
            }
        }
    }
    fprintf(out, "# ticks %llu late %llu\n", (unsigned long long)ticks,
            (unsigned long long)late);
    fclose(out);
    return 0;
}
