/* testutil.h — helpers shared by the core's unit tests. */
#ifndef VMSNAP_TESTUTIL_H
#define VMSNAP_TESTUTIL_H

#include <stddef.h>
#include <vmsnap/vmsnap.h>

/* A fresh directory under /tmp (removed by tu_rmtree). */
char *tu_tempdir(void);
void tu_rmtree(const char *path);
/* Writes `len` bytes of `byte` to path. */
void tu_write_file(const char *path, char byte, size_t len);
/* First byte of the file, or -1. */
int tu_first_byte(const char *path);
int tu_exists(const char *path);

/* Log lines the library sent, joined with '\n' (tu_log_reset clears). */
extern char tu_log[16384];
void tu_log_reset(void);
vmsnap_log_fn tu_log_fn;

/* A context on state dir <dir>/state with the unit-test plugins. */
vmsnap_ctx *tu_ctx(const char *dir, unsigned flags);
/* A context whose plugin path is exactly `plugin_path`. */
vmsnap_ctx *tu_ctx_path(const char *dir, const char *plugin_path, unsigned flags);

#endif
