/* plugin_util.h — small helpers every backend plugin shares, linked into
 * each plugin as a static library (a plugin is one .so that exports only
 * vmsnap_plugin_init; these symbols stay hidden inside it). */
#ifndef VMSNAP_PLUGIN_UTIL_H
#define VMSNAP_PLUGIN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "1.5 GiB", "512 bytes": a size for messages. */
void vp_human_size(uint64_t bytes, char *buf, size_t len);

#endif
