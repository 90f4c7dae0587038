/* ctx.c — the context: configuration, state dir, logger, plugins. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char *default_state_dir(void)
{
  const char *env = getenv("VMSNAP_STATE_DIR");
  if (env && *env) return xstrdup(env);
  if (geteuid() == 0) return xstrdup("/var/lib/vmsnap");
  const char *xdg = getenv("XDG_STATE_HOME");
  if (xdg && *xdg == '/') return xasprintf("%s/vmsnap", xdg);
  const char *home = getenv("HOME");
  return xasprintf("%s/.local/state/vmsnap", home && *home ? home : "/tmp");
}

void ctx_log(vmsnap_ctx *ctx, int level, const char *fmt, ...)
{
  if (level > ctx->log_level) return;
  char msg[VS_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx->log) {
    ctx->log(ctx->log_user, level, msg);
    return;
  }
  static const char *const names[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "vmsnap: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}


int vmsnap_ctx_new(vmsnap_ctx **ctxp, const vmsnap_config *config, char **errmsg)
{
  vmsnap_config cfg = {0};
  if (errmsg) *errmsg = NULL;
  if (!ctxp) return VMSNAP_E_INVALID;
  *ctxp = NULL;
  if (config) memcpy(&cfg, config, config->struct_size < sizeof cfg ? config->struct_size : sizeof cfg);
  vmsnap_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return VMSNAP_E_NOMEM;
  ctx->log = cfg.log;
  ctx->log_user = cfg.log_user;
  ctx->log_level = cfg.struct_size > offsetof(vmsnap_config, log_level) && cfg.log_level
                       ? cfg.log_level : VMSNAP_LOG_WARN;
  ctx->flags = cfg.flags;
  ctx->evfd = -1;
  pthread_mutex_init(&ctx->lock, NULL);
  pthread_mutex_init(&ctx->plugins_lock, NULL);
  pthread_cond_init(&ctx->idle, NULL);
  ctx->state_dir = cfg.state_dir ? xstrdup(cfg.state_dir) : default_state_dir();

  vs_err err = {0};
  if (fs_mkdir_p(ctx->state_dir, 0700, &err)) {
    if (errmsg) *errmsg = xasprintf("cannot use state dir: %s", err.msg);
    vmsnap_ctx_free(ctx);
    return err.code == VMSNAP_E_NOSPC || err.code == VMSNAP_E_NOMEM ? err.code : VMSNAP_E_IO;
  }
  ctx->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ctx->evfd < 0) {
    if (errmsg) *errmsg = xasprintf("cannot create an eventfd: %s", strerror(errno));
    vmsnap_ctx_free(ctx);
    return VMSNAP_E_IO;
  }
  const char *path = cfg.plugin_path;
  if (!path) path = getenv("VMSNAP_PLUGIN_PATH");
  if (!path || !*path) path = VMSNAP_DEFAULT_PLUGIN_DIR;
  loader_load_path(ctx, path);
  if (ctx->nfiles == 0)
    ctx_log(ctx, VMSNAP_LOG_WARN, "no backend plugins found in %s: no disk can be "
            "snapshotted (set VMSNAP_PLUGIN_PATH or --plugin-dir)", path);
  *ctxp = ctx;
  return 0;
}

void vmsnap_ctx_free(vmsnap_ctx *ctx)
{
  if (!ctx) return;
  pthread_mutex_lock(&ctx->lock);
  while (ctx->running > 0) pthread_cond_wait(&ctx->idle, &ctx->lock);
  pthread_mutex_unlock(&ctx->lock);
  dispatch_drain(ctx); /* callbacks nobody dispatched still run exactly once */
  loader_unload_all(ctx);
  if (ctx->evfd >= 0) close(ctx->evfd);
  pthread_mutex_destroy(&ctx->lock);
  pthread_mutex_destroy(&ctx->plugins_lock);
  pthread_cond_destroy(&ctx->idle);
  free(ctx->state_dir);
  free(ctx);
}

const char *vmsnap_ctx_state_dir(const vmsnap_ctx *ctx) { return ctx->state_dir; }
int vmsnap_ctx_get_fd(vmsnap_ctx *ctx) { return ctx->evfd; }

/* Listing shows every plugin: load the ones no op needed yet. */
size_t vmsnap_backend_count(const vmsnap_ctx *ctx)
{
  if (!ctx) return 0;
  loader_load_all((vmsnap_ctx *)ctx);
  return ctx->nplugins;
}

int vmsnap_backend_get(const vmsnap_ctx *ctx, size_t i, vmsnap_backend_info *info)
{
  if (!ctx || !info) return VMSNAP_E_NOT_FOUND;
  loader_load_all((vmsnap_ctx *)ctx);
  if (i >= ctx->nplugins) return VMSNAP_E_NOT_FOUND;
  const plugin *p = ctx->plugins[i];
  vmsnap_backend_info out = {
    .struct_size = sizeof out,
    .name = p->ops.name,
    .version = p->ops.version,
    .description = p->ops.description ? p->ops.description : "",
    .path = p->path,
    .capabilities = p->ops.capabilities(NULL),
    .available = p->available,
    .why_unavailable = p->available ? NULL : p->why,
  };
  size_t n = info->struct_size && info->struct_size < sizeof out ? info->struct_size : sizeof out;
  memcpy(info, &out, n);
  return 0;
}

const char *vmsnap_cap_name(uint64_t bit)
{
  static const char *const names[] = {
    "internal", "external", "live-qmp", "needs-pause", "revert-keeps-newer",
    "revert-consumes-target", "revert-may-invalidate-siblings", "delete-any", "list",
    "reflink", "progress", "cancel", "block-device"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (bit == (1ull << i)) return names[i];
  return NULL;
}
