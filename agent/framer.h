/*
 * framer.h - splits the watch stream into lines.
 *
 * libcurl hands the body over in chunks that may split a line anywhere;
 * the framer delivers each complete line once, without its '\n' and
 * without one trailing '\r'. Empty and whitespace-only lines (' ', '\t',
 * '\r') are skipped. A line that lies whole inside a chunk while nothing is
 * pending is delivered in place (zero-copy); only partial lines are copied
 * into the framer's buffer, which never grows past max_line + 1 bytes and
 * is freed after a line that made it grow past 256 KiB (one large object
 * does not keep its size for the life of the watch).
 *
 * A line longer than max_line bytes (counting a trailing '\r', not the
 * '\n') is reported once through on_oversize and skipped up to its '\n'
 * without being buffered.
 *
 * Callers: watch.c (one framer per watch worker). Thread: the owner only.
 */
#ifndef KWB_FRAMER_H
#define KWB_FRAMER_H

#include <stddef.h>

struct kwb_framer {
    char *buf;       /* partial line (owned) */
    size_t len;      /* bytes held in buf */
    size_t cap;      /* allocated size of buf */
    size_t max_line; /* longest accepted line */
    size_t skipped;  /* bytes of the oversize line being skipped */
    int skipping;    /* inside an oversize line: drop until '\n' */
};

/* Callbacks return 0 to continue, nonzero to stop; kwb_framer_feed then
 * returns that value at once. The line is borrowed for the call only. */
typedef int (*kwb_framer_line_fn)(void *opaque, const char *line, size_t len);
typedef int (*kwb_framer_oversize_fn)(void *opaque, size_t len_so_far);

void kwb_framer_init(struct kwb_framer *f, size_t max_line);
/* Drop partial data and any skip state; keep the memory unless a line
 * made it grow past 256 KiB. */
void kwb_framer_reset(struct kwb_framer *f);
/* Free the memory; NULL-safe; the framer may be initialised again. */
void kwb_framer_free(struct kwb_framer *f);

/*
 * Feed one chunk (borrowed). Calls on_line for every complete line and
 * on_oversize (may be NULL) once per oversize line, in stream order.
 * Returns 0 when the chunk was consumed, -ENOMEM when a partial line
 * could not be buffered (that line is lost: treat it as a stream error and
 * reconnect), or the nonzero
 * value of a callback that stopped. After a stop the rest of this chunk
 * is dropped, not kept: the caller abandons the stream and calls
 * kwb_framer_reset() before feeding a new one.
 */
int kwb_framer_feed(struct kwb_framer *f, const char *data, size_t len,
                    kwb_framer_line_fn on_line,
                    kwb_framer_oversize_fn on_oversize, void *opaque);

/* Bytes of the incomplete line seen so far: held in the buffer, or being
 * skipped when oversize. Nonzero at the end of a stream means it ended
 * inside a line (truncated event). */
size_t kwb_framer_pending(const struct kwb_framer *f);

#endif
