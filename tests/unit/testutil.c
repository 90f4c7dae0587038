/* testutil.c — helpers shared by the core's unit tests. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char tu_log[16384];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

char *tu_tempdir(void)
{
  char tmpl[] = "/tmp/vmsnap-unit.XXXXXX";
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)st; (void)flag; (void)f;
  return remove(p);
}

void tu_rmtree(const char *path)
{
  if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_write_file(const char *path, char byte, size_t len)
{
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); abort(); }
  for (size_t i = 0; i < len; i++) fputc(byte, f);
  fclose(f);
}

int tu_first_byte(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  int c = fgetc(f);
  fclose(f);
  return c;
}

int tu_exists(const char *path) { return access(path, F_OK) == 0; }

void tu_log_reset(void)
{
  pthread_mutex_lock(&log_lock);
  tu_log[0] = '\0';
  pthread_mutex_unlock(&log_lock);
}

void tu_log_fn(void *user, int level, const char *message)
{
  (void)user; (void)level;
  pthread_mutex_lock(&log_lock);
  size_t n = strlen(tu_log);
  snprintf(tu_log + n, sizeof tu_log - n, "%s\n", message);
  pthread_mutex_unlock(&log_lock);
}

vmsnap_ctx *tu_ctx_path(const char *dir, const char *plugin_path, unsigned flags)
{
  char state[4096];
  snprintf(state, sizeof state, "%s/state", dir);
  vmsnap_config cfg = {.struct_size = sizeof cfg, .state_dir = state, .plugin_path = plugin_path,
                       .log = tu_log_fn, .log_level = VMSNAP_LOG_WARN, .flags = flags};
  vmsnap_ctx *ctx = NULL;
  char *msg = NULL;
  if (vmsnap_ctx_new(&ctx, &cfg, &msg) != 0) {
    fprintf(stderr, "vmsnap_ctx_new: %s\n", msg ? msg : "?");
    abort();
  }
  return ctx;
}

vmsnap_ctx *tu_ctx(const char *dir, unsigned flags)
{
  return tu_ctx_path(dir, TEST_PLUGIN_DIR, flags);
}
