/* disks.c — validates disks and picks the backend that takes each. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "disks.h"
#include "job.h"

static int target_ok(const char *t)
{
  if (!t || !*t || strlen(t) > 32) return 0;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
          *t == '_' || *t == '-'))
      return 0;
  return 1;
}

/* Checks the source and fills source (absolute), block_device. */
static int check_source(json_t *doc, vs_err *err)
{
  const char *target = jstr(doc, "target"), *src = jstr(doc, "source");
  char real[PATH_MAX];
  struct stat st;
  if (!src || !*src)
    return err_set(err, VMSNAP_E_INVALID, "disk %s has no source path", target);
  if (!realpath(src, real) || stat(real, &st) < 0)
    return err_set(err, err_from_errno(errno), "disk %s: %s: %s; check the path", target, src,
                   strerror(errno));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISDIR(st.st_mode))
    return err_set(err, VMSNAP_E_INVALID,
                   "disk %s: %s is neither a file, a block device nor a directory", target, src);
  /* A block device keeps the stable name it was given (/dev/VG/LV,
   * /dev/disk/by-id/...): the /dev/dm-N it resolves to is numbered anew at
   * every activation, and an LVM revert that renames LVs gives the name to
   * another device. */
  int keep = S_ISBLK(st.st_mode) && !strncmp(src, "/dev/", 5) && !strstr(src, "/../") &&
             !strstr(src, "/./");
  json_object_set_new(doc, "source", json_string(keep ? src : real));
  json_object_set_new(doc, "block_device", json_boolean(S_ISBLK(st.st_mode)));
  if (!jstr(doc, "format")) json_object_set_new(doc, "format", json_string("raw"));
  return 0;
}

/* "k=v,k=v" (",," a comma) as given with the disk -> {"k": "v", ...}; an
 * object (remembered in domain.json) is kept. */
static int parse_options(json_t *doc, vs_err *err)
{
  json_t *o = json_object_get(doc, "options");
  const char *target = jstr(doc, "target");
  if (!o || json_is_null(o)) {
    json_object_del(doc, "options");
    return 0;
  }
  if (json_is_object(o)) return 0;
  const char *text = json_string_value(o);
  if (!text) return err_set(err, VMSNAP_E_INVALID, "disk %s: options must be text", target);
  json_t *obj = json_object();
  char *buf = xstrdup(text), *w = buf;
  for (const char *r = text;; r++) {
    if (*r == ',' && r[1] == ',') { *w++ = ','; r++; continue; }
    if (*r != ',' && *r) { *w++ = *r; continue; }
    *w = '\0';
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf || !eq[1] || json_object_get(obj, (*eq = '\0', buf))) {
      int rc = err_set(err, VMSNAP_E_INVALID, "disk %s: bad or repeated option '%s' in '%s'",
                       target, buf, text);
      free(buf);
      json_decref(obj);
      return rc;
    }
    json_object_set_new(obj, buf, json_string(eq + 1));
    w = buf;
    if (!*r) break;
  }
  free(buf);
  json_object_set_new(doc, "options", obj);
  return 0;
}

/* Every option given for the disk must be one its backend takes. */
static int check_options(json_t *doc, const plugin *p, vs_err *err)
{
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(doc, "options"), key, v) {
    const char *const *known = p->ops.disk_options;
    int ok = 0;
    for (size_t i = 0; known && known[i]; i++) ok = ok || !strcmp(known[i], key);
    if (ok && json_is_string(v)) continue;
    char list[256] = "";
    size_t n = 0;
    for (size_t i = 0; known && known[i] && n < sizeof list; i++)
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s=", i ? ", " : "", known[i]);
    return err_set(err, VMSNAP_E_INVALID, "disk %s: backend %s takes no option '%s' (%s%s)",
                   jstr(doc, "target"), p->ops.name, key, n ? "it takes: " : "it takes none",
                   list);
  }
  return 0;
}

/* The backend that took this disk for the domain's earlier snapshots: the
 * remembered disk with the same target, source and format. */
static const char *recorded_backend(json_t *doc, json_t *remembered)
{
  size_t i;
  json_t *r;
  json_array_foreach(remembered, i, r) {
    const char *t = jstr(r, "target"), *s = jstr(r, "source"), *f = jstr(r, "format");
    if (t && s && f && !strcmp(t, jstr(doc, "target")) && !strcmp(s, jstr(doc, "source")) &&
        jstr(doc, "format") && !strcmp(f, jstr(doc, "format")))
      return jstr(r, "backend");
  }
  return NULL;
}

/* Keeps a disk with the backend that holds its snapshots while that one
 * still takes it: no switch to another (say a plugin installed since), and
 * no loading of every plugin to compare them on each command. */
static const plugin *keep_recorded(vmsnap_ctx *ctx, const vmsnap_disk *d, const char *name)
{
  const plugin *p = name ? loader_find(ctx, name) : NULL;
  if (!p || !p->available) return NULL;
  if (d->live && !(p->ops.capabilities(d) & VMSNAP_CAP_LIVE_QMP)) return NULL;
  return p->ops.probe(d) > 0 ? p : NULL;
}

const plugin *disks_backend(vmsnap_ctx *ctx, json_t *doc, json_t *remembered, vs_err *err)
{
  const char *want = jstr(doc, "backend");
  vmsnap_disk d = {
    .struct_size = sizeof d, .target = jstr(doc, "target"), .source = jstr(doc, "source"),
    .format = jstr(doc, "format"), .mode = jstr(doc, "mode"), .file = jstr(doc, "file"),
    .is_block_device = json_is_true(json_object_get(doc, "block_device")),
    .live = json_is_true(json_object_get(doc, "live")),
    .node_name = jstr(doc, "node_name"),
  };
  const plugin *best = want ? NULL : keep_recorded(ctx, &d, recorded_backend(doc, remembered));
  const plugin *named = want ? loader_find(ctx, want) : NULL;
  int best_score = 0;
  /* A named backend is loaded alone; a choice compares every backend. */
  if (!want && !best) loader_load_all(ctx);
  size_t n = best ? 0 : want ? (named != NULL) : ctx->nplugins;
  for (size_t i = 0; i < n; i++) {
    const plugin *p = want ? named : ctx->plugins[i];
    if (!p->available) {
      if (want) {
        err_set(err, VMSNAP_E_UNSUPPORTED, "disk %s: backend %s cannot run here: %s", d.target,
                want, p->why);
        return NULL;
      }
      continue;
    }
    /* A disk a running QEMU serves is snapshotted through QMP or not at all. */
    if (d.live && !(p->ops.capabilities(&d) & VMSNAP_CAP_LIVE_QMP)) continue;
    int score = p->ops.probe(&d);
    if (score > best_score) { best = p; best_score = score; }
  }
  if (best) {
    if (check_options(doc, best, err)) return NULL;
    json_object_set_new(doc, "backend", json_string(best->ops.name));
    return best;
  }
  if (want && !named && loader_failure(ctx, want))
    err_set(err, VMSNAP_E_NOT_FOUND, "disk %s: backend '%s' cannot be loaded: %s (see snapctl "
            "plugins)", d.target, want, loader_failure(ctx, want));
  else if (want && !named)
    err_set(err, VMSNAP_E_NOT_FOUND, "disk %s: no backend named '%s' is loaded (see snapctl "
            "plugins)", d.target, want);
  else
    err_set(err, VMSNAP_E_UNSUPPORTED, "disk %s (%s, format %s): %s takes it; see snapctl "
            "plugins for the backends and the disks they take", d.target, d.source, d.format,
            want ? "the chosen backend no longer" :
            d.live ? "it is served by a running QEMU and no loaded backend can snapshot it live: "
                     "no backend" : "no loaded backend");
  return NULL;
}

/* Two names of one block device (/dev/VG/LV and /dev/mapper/VG-LV). */
static int same_device(json_t *a, json_t *b)
{
  struct stat sa, sb;
  return json_is_true(json_object_get(a, "block_device")) &&
         json_is_true(json_object_get(b, "block_device")) && stat(jstr(a, "source"), &sa) == 0 &&
         stat(jstr(b, "source"), &sb) == 0 && sa.st_rdev == sb.st_rdev;
}

static int check_unique(json_t *docs, vs_err *err)
{
  size_t i, j;
  json_t *a, *b;
  json_array_foreach(docs, i, a) {
    json_array_foreach(docs, j, b) {
      if (j <= i) continue;
      if (!strcmp(jstr(a, "target"), jstr(b, "target")))
        return err_set(err, VMSNAP_E_INVALID, "disk target %s is given twice", jstr(a, "target"));
      if (!strcmp(jstr(a, "source"), jstr(b, "source")) || same_device(a, b))
        return err_set(err, VMSNAP_E_INVALID, "disks %s and %s are the same %s", jstr(a, "target"),
                       jstr(b, "target"), jstr(a, "source"));
    }
  }
  return 0;
}

int disks_resolve(vmsnap_ctx *ctx, json_t *docs, json_t *remembered, vs_err *err)
{
  size_t i;
  json_t *doc;
  if (json_array_size(docs) == 0)
    return err_set(err, VMSNAP_E_INVALID, "no disks: name them with --disk TARGET=SOURCE the "
                   "first time (they are remembered for the domain after that)");
  json_array_foreach(docs, i, doc) {
    if (!target_ok(jstr(doc, "target")))
      return err_set(err, VMSNAP_E_INVALID, "disk target '%s' must be 1-32 of [A-Za-z0-9_-] "
                     "(like vda, xvda, hda)", jstr(doc, "target") ? jstr(doc, "target") : "");
    int rc = check_source(doc, err);
    if (!rc) rc = parse_options(doc, err);
    if (rc) return rc;
  }
  int rc = check_unique(docs, err);
  if (rc) return rc;
  json_array_foreach(docs, i, doc)
    if (!disks_backend(ctx, doc, remembered, err)) return err->code;
  return 0;
}

int disks_from_specs(vmsnap_ctx *ctx, const vmsnap_disk_spec *specs, size_t n, json_t **docs,
                     vs_err *err)
{
  *docs = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *d = json_object();
    json_object_set_new(d, "target", json_string(specs[i].target ? specs[i].target : ""));
    json_object_set_new(d, "source", json_string(specs[i].source ? specs[i].source : ""));
    static const char *const keys[] = {"format", "backend", "mode", "file", "options"};
    const char *vals[] = {specs[i].format, specs[i].backend, specs[i].mode, specs[i].file,
                          specs[i].options};
    for (size_t k = 0; k < 5; k++)
      if (vals[k]) json_object_set_new(d, keys[k], json_string(vals[k]));
    json_array_append_new(*docs, d);
  }
  int rc = disks_resolve(ctx, *docs, NULL, err);
  if (rc) { json_decref(*docs); *docs = NULL; }
  return rc;
}
