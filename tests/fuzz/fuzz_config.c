/*
 * fuzz_config.c - libFuzzer target for config.c: arbitrary text through
 * the quoted-name rewrite, libconfig and the table-driven validation, the
 * same path as kwb_config_load(). Every outcome must be a clean 0 or -1
 * with a "FILE..." message; on success the dump must work too.
 *
 * Seeds: the conf/ examples. Name a scratch corpus first, so that
 * libFuzzer writes there and not into conf/:
 *     fuzz_config -max_len=4096 CORPUS conf
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5's scanner leaks its string buffer when a parse error
 * follows a string token (input: two double quotes); not ours to fix.
 * Only scanner frames: settings leaked by us come from the parser. */
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kwb_config cfg;
    char err[512];
    FILE *null;

    /* @include would read files of the machine running the fuzzer. */
    for (size_t i = 0; i + 1 < size; i++) {
        if (data[i] == '@' && (data[i + 1] | 0x20) == 'i') {
            return 0;
        }
    }
    if (kwb_config_load_string(&cfg, (const char *)data, size, "fuzz.conf", err,
                               sizeof(err)) != 0) {
        if (strncmp(err, "fuzz.conf", 9) != 0) {
            abort(); /* every failure names the file */
        }
        kwb_config_free(&cfg);
        return 0;
    }
    if (cfg.n_watches == 0 || cfg.n_sinks == 0 || !cfg.cluster_name) {
        abort();
    }
    null = fopen("/dev/null", "w");
    if (null) {
        kwb_config_dump(&cfg, null, 1);
        fclose(null);
    }
    kwb_config_free(&cfg);
    return 0;
}
