/*
 * checkpoint.h - one file per watch under state.dir: the resourceVersion
 * a watch may resume from and the set of objects known at that point.
 *
 * Written atomically: temp file, fsync, rename, fsync of the directory
 * (as Redis' rdbSave). Protected by a SHA-256 trailer so truncation and
 * corruption are detected and handled by a relist, never by a crash.
 *
 * Thread: the pipeline thread writes; main reads before threads start.
 */
#ifndef KWB_CHECKPOINT_H
#define KWB_CHECKPOINT_H

#include <stddef.h>

#include "store.h"

/* Write the checkpoint of watch `watch_id`. 0 or negative errno with
 * errbuf set. Files are created 0600 inside a 0700 directory. */
int kwb_checkpoint_write(const char *dir, const char *watch_id, const char *rv,
                         const struct kwb_store *s, char *errbuf,
                         size_t errsize);

/*
 * Read it back: 0 with *rv (malloc'd) and *s (new store) set; -ENOENT
 * when there is none; -EBADMSG when it is corrupt or truncated (errbuf
 * says where); other negative errno on I/O errors.
 */
int kwb_checkpoint_read(const char *dir, const char *watch_id, char **rv,
                        struct kwb_store **s, char *errbuf, size_t errsize);

/*
 * The checkpoint text alone (the file's exact bytes), for other backends
 * (cmstate.c): *out is malloc'd and NUL-terminated, *len excludes the NUL.
 * s NULL writes "count 0" and no entries (resourceVersion only). 0 or
 * -ENOMEM.
 */
int kwb_checkpoint_format(const char *watch_id, const char *rv,
                          const struct kwb_store *s, char **out, size_t *len);

/*
 * Parse checkpoint text buf[0..len) with buf[len] == '\0'; buf is
 * modified in place. `path` names it in messages. Results as
 * kwb_checkpoint_read (-EBADMSG when corrupt, truncated or of another
 * watch).
 */
int kwb_checkpoint_parse(char *buf, size_t len, const char *path,
                         const char *watch_id, char **rv, struct kwb_store **s,
                         char *errbuf, size_t errsize);

/* The file path of a watch's checkpoint into out. 0 or -ENAMETOOLONG. */
int kwb_checkpoint_path(const char *dir, const char *watch_id, char *out,
                        size_t size);

#endif
