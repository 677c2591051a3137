/*
 * sink.c - the static registry of sink modules. A new sink adds its ops
 * here and nowhere else in agent/.
 */
#include "sink.h"

#include <string.h>

static const struct kwb_sink_ops *const registry[] = {
    &kwb_sink_file,
    &kwb_sink_kafka,
    &kwb_sink_webhook,
    NULL,
};

const struct kwb_sink_ops *kwb_sink_find(const char *type)
{
    for (size_t i = 0; registry[i]; i++) {
        if (strcmp(registry[i]->type, type) == 0) {
            return registry[i];
        }
    }
    return NULL;
}

const struct kwb_sink_ops *const *kwb_sink_all(void)
{
    return registry;
}
