/*
 * malloc_probe.h - is a block of n bytes an mmap of its own, i.e. at or
 * above glibc's (dynamic) mmap threshold? Tests that check the agent does
 * not raise that threshold (freeing a large malloc'd buffer does, for the
 * life of the process) use it. Only glibc's allocator is probed: under
 * ASan/TSan, which replace it, GLIBC_MALLOC is 0 and the tests skip.
 */
#ifndef KWB_TEST_MALLOC_PROBE_H
#define KWB_TEST_MALLOC_PROBE_H

#include <malloc.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GLIBC_MALLOC 0
#else
#define GLIBC_MALLOC 1
#endif

/* The probe block escapes through it, or the compiler may drop the
 * malloc/free pair. */
static void *volatile probe_keep;

static int malloc_is_mmapped(size_t n)
{
    size_t before = mallinfo2().hblks;
    char *p = malloc(n);
    int mapped;

    probe_keep = p;
    mapped = p && mallinfo2().hblks == before + 1;
    free(p);
    return mapped;
}

#endif
