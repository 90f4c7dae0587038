/* store_index.c — loading a domain's snapshot documents without parsing
 * every one of them.
 *
 * Most ops need of every snapshot only its uuid, name, parent and ctime
 * (names, the tree, the order); a few need the whole document of one or
 * two. Parsing hundreds of documents costs milliseconds, so the store
 * keeps snapshots/.index: for every document file its name, the file's
 * identity when it was indexed (inode, size, mtime) and those four
 * fields, and for host->siblings each disk's target, backend and string
 * backend data. Loading lists the directory, stats each file and, when the
 * index knows the file as it is now, makes a light document of uuid, name
 * and parent (its ctime orders the load, store_loaded, and is added with
 * the rest); any other file is read and parsed. The documents stay the
 * truth: an index that is damaged, missing or disagrees with a file is
 * simply not used for that file, and the next writer writes it again.
 *
 * A light document becomes the whole one (its file read, the missing
 * keys added) before anything needs more than the four fields: finding a
 * snapshot to work on, applying updates, writing it, host->siblings.
 *
 * The index is only written by a writer (the domain lock held): it
 * leaves its name before the first document changes and is written again
 * at store_close, without fsync (a cache: checksums reject a torn one, and
 * a lost one is rebuilt) — by appending the session's changes when the
 * writer trusted it, else whole (store_index_file.c).
 *
 * Its header also records the snapshots directory's inode, mtime and
 * ctime as they were right after the index was renamed into it, and the
 * journal's sequence number then. A loader that finds the directory so
 * (nothing added, removed or renamed in it since: vmsnap replaces
 * documents by rename) and no operation journaled since takes the index as
 * it is, without listing the directory and a stat per file; an op on one
 * snapshot then reads only the documents it touches (store_index_family,
 * store_index_uuid_named). Only a document rewritten in place by hand, in
 * the same clock tick as the index on a kernel with coarse timestamps, or
 * without touching the directory, goes unseen until the next writer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_index_file.h"

struct store_entry {
  json_t *doc; /* a reference; light until expanded */
  char *file;
  char *disks; /* the index's summary, while light */
  int light;
};

/* Built key by key: json_pack parses its format for every document. */
static json_t *light_doc(const store_known *k)
{
  /* No ctime: the order comes from the index (store_loaded), and making
   * the document whole adds it. _nocheck: the strings were valid UTF-8 in
   * the documents they were indexed from, and the checksum vouches for
   * the index. */
  json_t *doc = json_object();
  if (!doc || json_object_set_new_nocheck(doc, "uuid", json_string_nocheck(k->uuid)) ||
      json_object_set_new_nocheck(doc, "name", json_string_nocheck(k->name)) ||
      (!k->parent_absent &&
       json_object_set_new_nocheck(doc, "parent",
                                   k->parent ? json_string_nocheck(k->parent) : json_null()))) {
    json_decref(doc);
    return NULL;
  }
  return doc;
}

static int track(store_domain *d, json_t *doc, const char *file, const char *disks)
{
  if (d->nents == d->capents) {
    size_t cap = d->capents ? d->capents * 2 : 64;
    store_entry *g = realloc(d->ents, cap * sizeof *g);
    if (!g) return -1;
    d->ents = g;
    d->capents = cap;
  }
  char *f = xstrdup(file), *s = xstrdup(disks);
  if (!f || (disks && !s)) {
    free(f);
    free(s);
    return -1;
  }
  d->ents[d->nents++] = (store_entry){.doc = json_incref(doc), .file = f, .disks = s,
                                      .light = disks != NULL};
  if (!disks) d->nwhole++;
  d->ents_sorted = 0;
  return 0;
}

/* A whole document of file this store already handed out: a load hands
 * it out again, so that what an op changes in a snapshot meets in one
 * document (an op that read a few documents may load the rest later). */
static json_t *whole_loaded(store_domain *d, const char *file)
{
  /* Only what was loaded before this load began (a load adds no whole
   * document twice): no quadratic scan of its own light ones. */
  for (size_t i = 0; d->nwhole && i < d->nents_before; i++)
    if (!d->ents[i].light && strcmp(d->ents[i].file, file) == 0) return d->ents[i].doc;
  return NULL;
}

static void loaded_whole(store_loaded *out, json_t *doc)
{
  json_t *ctime = json_object_get(doc, "ctime");
  const char *name = jstr(doc, "name");
  *out = (store_loaded){json_incref(doc), json_integer_value(json_object_get(ctime, "sec")),
                        json_integer_value(json_object_get(ctime, "nsec")), name ? name : ""};
}

/* The light document of a file the index describes as it is. */
static int load_light(store_domain *d, store_known *k, store_loaded *out, vs_err *err)
{
  k->used = 1;
  json_t *whole = whole_loaded(d, k->file);
  if (whole) {
    loaded_whole(out, whole);
    return 0;
  }
  *out = (store_loaded){light_doc(k), k->csec, k->cnsec, k->name};
  if (!out->doc || track(d, out->doc, k->file, k->disks)) {
    json_decref(out->doc);
    out->doc = NULL;
    return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  }
  return 0;
}

/* Every document as the index has it: the directory did not change. */
static int load_trusted(store_domain *d, store_loaded **docsp, size_t *np, vs_err *err)
{
  store_loaded *docs = malloc(d->nknown * sizeof *docs);
  if (!docs) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  for (size_t i = 0; i < d->nknown; i++) {
    int rc = load_light(d, &d->known[i], &docs[i], err);
    if (rc) {
      while (i) json_decref(docs[--i].doc);
      free(docs);
      return rc;
    }
  }
  *docsp = docs;
  *np = d->nknown;
  return 0;
}

/* One document file of the directory: light when the index knows it as
 * it is, else read whole (and recorded for the next index). */
static int load_one(store_domain *d, const char *file, store_loaded *loaded, vs_err *err)
{
  struct stat st;
  json_t *docv = NULL, **out = &docv;
  loaded->doc = NULL;
  if (fstatat(d->snapdirfd, file, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : err_set(err, VMSNAP_E_IO, "cannot read %s/snapshots/%s: %s",
                                         d->dir, file, strerror(errno));
  store_known *k = known_find(d, file);
  json_t *whole = whole_loaded(d, file);
  if (whole) {
    if (k) k->used = 1;
    loaded_whole(loaded, whole);
    return 0;
  }
  if (k && k->ino == (uint64_t)st.st_ino && k->size == (uint64_t)st.st_size &&
      k->msec == (int64_t)st.st_mtim.tv_sec && k->mnsec == (int64_t)st.st_mtim.tv_nsec)
    return load_light(d, k, loaded, err);
  int rc = fs_read_json(d->snapdirfd, file, out, err);
  if (rc == VMSNAP_E_NOT_FOUND) return 0; /* removed meanwhile */
  if (rc) return rc;
  d->index_dirty = 1;
  store_known nk;
  if (known_from_doc(&nk, file, &st, *out)) {
    nk.used = 1;
    known_put(d, &nk);
  } else {
    d->index_complete = 0; /* a document the index cannot describe */
  }
  if (track(d, *out, file, NULL)) {
    json_decref(*out);
    return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  }
  loaded_whole(loaded, *out);
  json_decref(*out);
  return 0;
}

int store_index_trusted(store_domain *d)
{
  d->nents_before = d->nents;
  known_clear(d);
  index_file_read(d);
  d->index_complete = 1;
  int trusted = d->nknown && index_current(d);
  /* Not trusted: a writer writes it whole and stamped anew at close. */
  if (!trusted) d->index_dirty = d->index_rewrite = 1;
  return trusted;
}

/* The first in creation order, as a search of the loaded documents
 * finds (names are unique unless a document was edited by hand). */
static store_known *known_named(store_domain *d, const char *name)
{
  store_known *best = NULL;
  for (size_t i = 0; i < d->nknown; i++) {
    store_known *k = &d->known[i];
    if (strcmp(k->name, name) == 0 &&
        (!best || k->csec < best->csec || (k->csec == best->csec && k->cnsec < best->cnsec)))
      best = k;
  }
  return best;
}

const char *store_index_uuid_named(store_domain *d, const char *name)
{
  store_known *k = known_named(d, name);
  return k ? k->uuid : NULL;
}

int store_index_family(store_domain *d, const char *name, store_loaded **docsp, size_t *np,
                       vs_err *err)
{
  *docsp = NULL;
  *np = 0;
  if (!store_index_trusted(d)) return 0;
  store_known *named = known_named(d, name);
  if (!named) return 1;
  const char *uuid = named->uuid;
  store_loaded *docs = NULL;
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; !rc && i < d->nknown; i++) {
    store_known *k = &d->known[i];
    if (k != named && !(k->parent && strcmp(k->parent, uuid) == 0)) continue;
    store_loaded *g = realloc(docs, (n + 1) * sizeof *g);
    json_t *doc = NULL;
    if (!g) { rc = err_set(err, VMSNAP_E_NOMEM, "out of memory"); break; }
    docs = g;
    if (!(doc = whole_loaded(d, k->file))) {
      rc = fs_read_json(d->snapdirfd, k->file, &doc, err);
      if (rc == VMSNAP_E_NOT_FOUND)
        rc = err_set(err, VMSNAP_E_IO, "snapshot document %s/snapshots/%s was removed "
                     "meanwhile; try again", d->dir, k->file);
      if (!rc && track(d, doc, k->file, NULL)) rc = err_set(err, VMSNAP_E_NOMEM, "out of memory");
      if (rc) { json_decref(doc); break; }
      json_decref(doc); /* track holds it */
    }
    loaded_whole(&docs[n++], doc);
  }
  if (rc) {
    while (n) json_decref(docs[--n].doc);
    free(docs);
    return rc;
  }
  *docsp = docs;
  *np = n;
  return 1;
}

const char *store_index_name_of(store_domain *d, const char *uuid)
{
  for (size_t i = 0; i < d->nknown; i++)
    if (strcmp(d->known[i].uuid, uuid) == 0) return d->known[i].name;
  return NULL;
}

int store_index_load(store_domain *d, store_loaded **docsp, size_t *np, vs_err *err)
{
  *docsp = NULL;
  *np = 0;
  if (store_index_trusted(d)) return load_trusted(d, docsp, np, err);
  int fd = openat(d->snapdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0) close(fd);
    return err_set(err, VMSNAP_E_IO, "cannot list %s/snapshots: %s", d->dir, strerror(errno));
  }
  size_t n = 0, cap = 64;
  store_loaded *docs = malloc(cap * sizeof *docs);
  struct dirent *de;
  int rc = 0;
  while (docs && (de = readdir(dir))) {
    size_t len = strlen(de->d_name);
    if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
      continue;
    store_loaded doc;
    if ((rc = load_one(d, de->d_name, &doc, err))) break;
    if (!doc.doc) continue;
    if (n == cap) {
      store_loaded *g = realloc(docs, (cap *= 2) * sizeof *docs);
      if (!g) { json_decref(doc.doc); break; }
      docs = g;
    }
    docs[n++] = doc;
  }
  closedir(dir);
  if (!docs) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  /* Files the index knew that are gone. */
  for (size_t i = 0; i < d->nknown;)
    if (!d->known[i].used) {
      known_drop(d, d->known[i].file);
      d->index_dirty = 1;
    } else {
      i++;
    }
  if (rc) {
    for (size_t i = 0; i < n; i++) json_decref(docs[i].doc);
    free(docs);
    return rc;
  }
  *docsp = docs;
  *np = n;
  return 0;
}

static store_entry *entry_of(store_domain *d, json_t *doc)
{
  for (size_t i = d->nents; i-- > 0;)
    if (d->ents[i].doc == doc) return &d->ents[i];
  return NULL;
}

/* Reads the whole document under a light one. A writer keeps the keys it
 * set in memory since (a new parent…); a reader takes the file as it is
 * now (a writer may have changed it since the load). */
static int expand(store_domain *d, store_entry *e, vs_err *err)
{
  json_t *full;
  int rc = fs_read_json(d->snapdirfd, e->file, &full, err);
  if (rc == VMSNAP_E_NOT_FOUND)
    return err_set(err, VMSNAP_E_IO, "snapshot document %s/snapshots/%s was removed meanwhile; "
                   "try again", d->dir, e->file);
  if (rc) return rc;
  if ((d->lockfd >= 0 ? json_object_update_missing : json_object_update)(e->doc, full)) {
    json_decref(full);
    return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  }
  json_decref(full);
  e->light = 0;
  d->nwhole++;
  return 0;
}

int store_doc(store_domain *d, json_t *doc, vs_err *err)
{
  if (!d || !doc) return 0;
  pthread_mutex_lock(&d->ents_lock);
  store_entry *e = entry_of(d, doc);
  int rc = e && e->light ? expand(d, e, err) : 0;
  pthread_mutex_unlock(&d->ents_lock);
  return rc;
}

int store_docs_all(store_domain *d, vs_err *err)
{
  if (!d) return 0;
  int rc = 0;
  pthread_mutex_lock(&d->ents_lock);
  for (size_t i = 0; !rc && !d->all_expanded && i < d->nents; i++)
    if (d->ents[i].light) rc = expand(d, &d->ents[i], err);
  if (!rc) d->all_expanded = 1;
  pthread_mutex_unlock(&d->ents_lock);
  return rc;
}

static int by_doc(const void *a, const void *b)
{
  uintptr_t x = (uintptr_t)(*(store_entry *const *)a)->doc;
  uintptr_t y = (uintptr_t)(*(store_entry *const *)b)->doc;
  return x < y ? -1 : x > y;
}

/* The entry of doc, by binary search (the sorted view is built once per
 * set of entries). Called with ents_lock held. */
static store_entry *entry_sorted(store_domain *d, json_t *doc)
{
  if (!d->ents_sorted) {
    store_entry **g = realloc(d->ents_by_doc, (d->nents ? d->nents : 1) * sizeof *g);
    if (!g) return entry_of(d, doc);
    d->ents_by_doc = g;
    for (size_t i = 0; i < d->nents; i++) g[i] = &d->ents[i];
    qsort(g, d->nents, sizeof *g, by_doc);
    d->ents_sorted = 1;
  }
  store_entry key = {.doc = doc}, *kp = &key;
  store_entry **e = bsearch(&kp, d->ents_by_doc, d->nents, sizeof kp, by_doc);
  return e ? *e : NULL;
}

/* Cuts s at the next sep (empty fields kept); NULL after the last. */
static char *next_cut(char **s, char sep)
{
  char *f = *s;
  if (!f) return NULL;
  char *e = strchr(f, sep);
  if (e) *e = '\0';
  *s = e ? e + 1 : NULL;
  return f;
}

/* fn for one light document's disks of target and backend, from the
 * index's summary: no document is read. */
static int summary_siblings(const char *uuid, const char *name, char *disks,
                            const char *target, const char *backend, store_sibling_fn *fn,
                            void *user)
{
  int rc = 0;
  char *rest = *disks ? disks : NULL;
  for (char *disk; !rc && (disk = next_cut(&rest, RS));) {
    const char *kv[258];
    size_t n = 0;
    char *in = disk, *t = next_cut(&in, US), *b = next_cut(&in, US);
    if (!t || !b || strcmp(t, target) || strcmp(b, backend)) continue;
    for (char *f; n < 256 && (f = next_cut(&in, US));) kv[n++] = f;
    kv[n & ~(size_t)1] = NULL; /* pairs only */
    rc = fn(user, uuid, name, kv);
  }
  return rc;
}

int store_siblings(store_domain *d, json_t *docs, const char *self, const char *target,
                   const char *backend, store_sibling_fn *fn, void *user)
{
  size_t i;
  json_t *doc;
  int rc = 0;
  json_array_foreach(docs, i, doc) {
    const char *uuid = jstr(doc, "uuid");
    if (!uuid || (self && strcmp(uuid, self) == 0)) continue;
    pthread_mutex_lock(&d->ents_lock);
    store_entry *e = entry_sorted(d, doc);
    int light = e && e->light;
    char *disks = light ? xstrdup(e->disks) : NULL;
    pthread_mutex_unlock(&d->ents_lock);
    if (light && !disks) return VMSNAP_E_NOMEM;
    if (light) {
      rc = summary_siblings(uuid, jstr(doc, "name"), disks, target, backend, fn, user);
      free(disks);
    } else {
      rc = store_doc_siblings(doc, target, backend, fn, user);
    }
    if (rc) return rc;
  }
  return 0;
}


void store_index_free(store_domain *d)
{
  known_clear(d);
  free(d->index_log);
  d->index_log = NULL;
  for (size_t i = 0; i < d->nents; i++) {
    json_decref(d->ents[i].doc);
    free(d->ents[i].file);
    free(d->ents[i].disks);
  }
  free(d->ents);
  free(d->ents_by_doc);
  d->ents_by_doc = NULL;
  d->ents = NULL;
  d->nents = d->capents = d->nwhole = 0;
}

