/* loader.c — finds, checks and loads backend plugins.
 *
 * A context only lists the *.so files of its plugin path when it starts;
 * a plugin is opened when first needed (a backend named by a disk loads
 * <name>.so alone), and everything is loaded when the backends must be
 * compared or listed (probe, snapctl plugins). dlopen and each plugin's
 * load/available cost a fraction of a millisecond per plugin: a command
 * on a dd disk need not pay for qcow2's.
 *
 * A plugin that cannot be used (not a plugin, wrong ABI, missing ops,
 * unsafe permissions, dlopen error) is skipped with a warning naming the
 * file and the reason; the others still load. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

typedef const vmsnap_plugin *init_fn(size_t *struct_size, uint32_t *abi_version);

/* Anyone who can write the file or its directory could make us run their
 * code: refuse unless owned by root or us and not writable by others. */
static int unsafe_mode(const struct stat *st, char *why, size_t len, const char *what)
{
  if (st->st_uid != 0 && st->st_uid != geteuid()) {
    snprintf(why, len, "%s is owned by uid %u, neither root nor us", what, (unsigned)st->st_uid);
    return 1;
  }
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(why, len, "%s is writable by %s (mode %04o); fix with chmod go-w", what,
             (st->st_mode & S_IWOTH) ? "others" : "its group", (unsigned)(st->st_mode & 07777));
    return 1;
  }
  return 0;
}

static int name_ok(const char *name)
{
  if (!name || !*name || strlen(name) > 64) return 0;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return 0;
  return 1;
}

/* Copies the plugin's table up to its struct_size and checks it. */
static int check_ops(const vmsnap_plugin *src, size_t size, plugin *p, char *why, size_t len)
{
  size_t min = offsetof(vmsnap_plugin, revert) + sizeof src->revert;
  if (size < min) {
    snprintf(why, len, "its ops table is %zu bytes, smaller than any ABI 1 table (%zu)", size, min);
    return -1;
  }
  memcpy(&p->ops, src, size < sizeof p->ops ? size : sizeof p->ops);
  static const struct { const char *name; size_t off; } required[] = {
    {"name", offsetof(vmsnap_plugin, name)}, {"version", offsetof(vmsnap_plugin, version)},
    {"probe", offsetof(vmsnap_plugin, probe)},
    {"capabilities", offsetof(vmsnap_plugin, capabilities)},
    {"create", offsetof(vmsnap_plugin, create)}, {"remove", offsetof(vmsnap_plugin, remove)},
    {"revert", offsetof(vmsnap_plugin, revert)},
  };
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    void *ptr;
    memcpy(&ptr, (const char *)&p->ops + required[i].off, sizeof ptr);
    if (!ptr) {
      snprintf(why, len, "required op '%s' is missing", required[i].name);
      return -1;
    }
  }
  if (!name_ok(p->ops.name)) {
    snprintf(why, len, "its name '%s' is not [a-z0-9_-]{1,64}", p->ops.name);
    return -1;
  }
  return 0;
}

static plugin *load_one(vmsnap_ctx *ctx, const char *path, char *why, size_t len)
{
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, len, "not a regular file");
    return NULL;
  }
  if (unsafe_mode(&st, why, len, "the file")) return NULL;
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    snprintf(why, len, "cannot be loaded: %s", dlerror());
    return NULL;
  }
  init_fn *init = (init_fn *)dlsym(dl, VMSNAP_PLUGIN_INIT_SYMBOL);
  size_t size = 0;
  uint32_t abi = 0;
  const vmsnap_plugin *ops = init ? init(&size, &abi) : NULL;
  plugin *p = calloc(1, sizeof *p);
  if (!init)
    snprintf(why, len, "not a vmsnap plugin (no %s symbol)", VMSNAP_PLUGIN_INIT_SYMBOL);
  else if (abi != VMSNAP_PLUGIN_ABI_VERSION)
    snprintf(why, len, "built for plugin ABI %u; this libvmsnap speaks ABI %d: rebuild it "
             "against this vmsnap-plugin.h", abi, VMSNAP_PLUGIN_ABI_VERSION);
  else if (!ops)
    snprintf(why, len, "its init returned no ops table");
  else if (p && check_ops(ops, size, p, why, len) == 0) {
    if (!p->ops.load || p->ops.load(&vs_host) == 0) {
      p->dl = dl;
      p->path = xstrdup(path);
      p->available = p->ops.available ? p->ops.available(p->why, sizeof p->why) : 1;
      return p;
    }
    snprintf(why, len, "its load op refused to start");
  }
  free(p);
  dlclose(dl);
  return NULL;
}

static int by_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Called with plugins_lock held. */
static void add_plugin(vmsnap_ctx *ctx, plugin *p)
{
  for (size_t i = 0; i < ctx->nplugins; i++) {
    if (strcmp(ctx->plugins[i]->ops.name, p->ops.name) == 0) {
      ctx_log(ctx, VMSNAP_LOG_WARN, "skipping plugin %s: backend '%s' is already loaded from %s",
              p->path, p->ops.name, ctx->plugins[i]->path);
      if (p->ops.unload) p->ops.unload();
      dlclose(p->dl);
      free(p->path);
      free(p);
      return;
    }
  }
  plugin **g = realloc(ctx->plugins, (ctx->nplugins + 1) * sizeof *g);
  if (!g) return;
  ctx->plugins = g;
  ctx->plugins[ctx->nplugins++] = p;
  ctx_log(ctx, VMSNAP_LOG_DEBUG, "loaded backend %s %s from %s", p->ops.name, p->ops.version,
          p->path);
}

/* Remembers the *.so files of one directory, in name order; nothing is
 * opened yet. An unsafe directory is skipped whole, as before. */
static void scan_dir(vmsnap_ctx *ctx, const char *dir)
{
  struct stat st;
  char why[512];
  if (stat(dir, &st) < 0) {
    ctx_log(ctx, VMSNAP_LOG_DEBUG, "plugin directory %s: %s", dir, strerror(errno));
    return;
  }
  if (unsafe_mode(&st, why, sizeof why, "the directory")) {
    ctx_log(ctx, VMSNAP_LOG_WARN, "skipping plugin directory %s: %s", dir, why);
    return;
  }
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort);
  if (n < 0) return;
  char **names = calloc((size_t)n, sizeof *names);
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(ents[i]->d_name);
    if (names && len > 3 && strcmp(ents[i]->d_name + len - 3, ".so") == 0)
      names[k++] = xasprintf("%s/%s", dir, ents[i]->d_name);
    free(ents[i]);
  }
  free(ents);
  if (names) qsort(names, k, sizeof *names, by_name);
  loader_file *g = realloc(ctx->plugin_files, (ctx->nfiles + k) * sizeof *g);
  for (size_t i = 0; i < k; i++) {
    if (g && names[i]) g[ctx->nfiles++] = (loader_file){.path = names[i]};
    else free(names[i]);
  }
  if (g) ctx->plugin_files = g;
  free(names);
}

int loader_load_path(vmsnap_ctx *ctx, const char *path)
{
  char *copy = xstrdup(path), *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
    scan_dir(ctx, dir);
  free(copy);
  return 0;
}

/* Loads one remembered file, once. Called with plugins_lock held. */
static void load_file(vmsnap_ctx *ctx, loader_file *f)
{
  if (f->tried) return;
  f->tried = 1;
  char why[512];
  plugin *p = load_one(ctx, f->path, why, sizeof why);
  if (p) {
    add_plugin(ctx, p);
    return;
  }
  ctx_log(ctx, VMSNAP_LOG_WARN, "skipping plugin %s: %s", f->path, why);
  f->why = xstrdup(why);
}

/* Called with plugins_lock held. */
static void load_all_locked(vmsnap_ctx *ctx)
{
  for (size_t i = 0; !ctx->all_loaded && i < ctx->nfiles; i++) load_file(ctx, &ctx->plugin_files[i]);
  ctx->all_loaded = 1;
}

void loader_load_all(vmsnap_ctx *ctx)
{
  pthread_mutex_lock(&ctx->plugins_lock);
  load_all_locked(ctx);
  pthread_mutex_unlock(&ctx->plugins_lock);
}

static plugin *find_loaded(const vmsnap_ctx *ctx, const char *name)
{
  for (size_t i = 0; i < ctx->nplugins; i++)
    if (strcmp(ctx->plugins[i]->ops.name, name) == 0) return ctx->plugins[i];
  return NULL;
}

/* The file that should hold backend `name`: the first <name>.so on the
 * path. */
static loader_file *file_for(vmsnap_ctx *ctx, const char *name)
{
  size_t len = strlen(name);
  for (size_t i = 0; i < ctx->nfiles; i++) {
    const char *base = strrchr(ctx->plugin_files[i].path, '/');
    base = base ? base + 1 : ctx->plugin_files[i].path;
    if (strncmp(base, name, len) == 0 && strcmp(base + len, ".so") == 0)
      return &ctx->plugin_files[i];
  }
  return NULL;
}

const plugin *loader_find(const vmsnap_ctx *cctx, const char *name)
{
  vmsnap_ctx *ctx = (vmsnap_ctx *)cctx; /* loading on demand is not a visible change */
  pthread_mutex_lock(&ctx->plugins_lock);
  plugin *p = find_loaded(ctx, name);
  if (!p && !ctx->all_loaded) {
    /* Most backends live in <name>.so: load just that one. A backend
     * whose file is named otherwise is found once every file is loaded. */
    loader_file *f = file_for(ctx, name);
    if (f) load_file(ctx, f);
    if (!(p = find_loaded(ctx, name))) {
      load_all_locked(ctx);
      p = find_loaded(ctx, name);
    }
  }
  pthread_mutex_unlock(&ctx->plugins_lock);
  return p;
}

const char *loader_failure(const vmsnap_ctx *cctx, const char *name)
{
  vmsnap_ctx *ctx = (vmsnap_ctx *)cctx;
  pthread_mutex_lock(&ctx->plugins_lock);
  loader_file *f = file_for(ctx, name);
  const char *why = f ? f->why : NULL;
  pthread_mutex_unlock(&ctx->plugins_lock);
  return why; /* never changes once set */
}

void loader_unload_all(vmsnap_ctx *ctx)
{
  for (size_t i = 0; i < ctx->nplugins; i++) {
    plugin *p = ctx->plugins[i];
    if (p->ops.unload) p->ops.unload();
    dlclose(p->dl);
    free(p->path);
    free(p);
  }
  free(ctx->plugins);
  ctx->plugins = NULL;
  ctx->nplugins = 0;
  for (size_t i = 0; i < ctx->nfiles; i++) {
    free(ctx->plugin_files[i].path);
    free(ctx->plugin_files[i].why);
  }
  free(ctx->plugin_files);
  ctx->plugin_files = NULL;
  ctx->nfiles = 0;
}
