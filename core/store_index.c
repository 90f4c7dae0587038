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
 * The index is only written by a writer (the domain lock held): it is
 * removed before the first document changes and written again at
 * store_close, without fsync (a cache: its checksum rejects a torn one,
 * and a lost one is rebuilt).
 *
 * Its header also records the snapshots directory's inode, mtime and
 * ctime as they were right after the index was renamed into it. A loader
 * that finds the directory so (nothing added, removed or renamed in it
 * since: vmsnap replaces documents by rename) takes the index as it is,
 * without listing the directory and a stat per file (about a third of a
 * load at 500 snapshots). Only a document rewritten in place by hand, in
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

#include "store.h"

#define INDEX_NAME ".index"
#define INDEX_MAGIC "vmsnap-index 3"
/* ino mtime-sec mtime-nsec ctime-sec ctime-nsec, fixed width: written
 * after the rename, in place. All zero: not recorded. */
#define STAMP_FMT "%020" PRIu64 " %020" PRId64 " %09ld %020" PRId64 " %09ld"
#define STAMP_LEN 82
/* Below this many documents parsing them all costs about what keeping the
 * index does (its write, and the write-back the next op's fsync pays). */
#define INDEX_MIN_DOCS 32

struct store_known {
  char *file;
  uint64_t ino, size;
  int64_t msec, mnsec;
  char *uuid, *name, *parent; /* parent NULL: null; parent_absent: no key */
  char *disks; /* per disk "target US backend (US key US value)*", RS between */
  int parent_absent;
  int64_t csec, cnsec;
  char *mem; /* owns the strings above when not NULL */
  int used;  /* seen in the directory by this load */
};

struct store_entry {
  json_t *doc; /* a reference; light until expanded */
  char *file;
  char *disks; /* the index's summary, while light */
  int light;
};

#define RS ((char)0x1e)
#define US ((char)0x1f)

static int field_ok(const char *s)
{
  return s && !strpbrk(s, "\t\n\x1e\x1f");
}

static int cat(char **buf, size_t *len, size_t *cap, const char *s)
{
  size_t n = strlen(s);
  if (*len + n + 2 > *cap) {
    char *g = realloc(*buf, *cap = (*len + n + 2) * 2);
    if (!g) return 0;
    *buf = g;
  }
  memcpy(*buf + *len, s, n + 1);
  *len += n;
  return 1;
}

/* The disks summary host->siblings needs; NULL when a string cannot be
 * held (the index then holds nothing for this document). */
static char *disks_summary(json_t *doc)
{
  size_t len = 0, cap = 256, i;
  char *buf = malloc(cap), sep[2] = {0, 0};
  json_t *disk;
  if (!buf) return NULL;
  buf[0] = '\0';
  json_array_foreach(json_object_get(doc, "disks"), i, disk) {
    const char *target = jstr(disk, "target"), *backend = jstr(disk, "backend"), *key;
    json_t *v;
    if (!target || !backend) continue; /* host->siblings skips it */
    int ok = field_ok(target) && field_ok(backend);
    sep[0] = RS;
    ok = ok && (!len || cat(&buf, &len, &cap, sep)) && cat(&buf, &len, &cap, target);
    sep[0] = US;
    ok = ok && cat(&buf, &len, &cap, sep) && cat(&buf, &len, &cap, backend);
    json_object_foreach(json_object_get(disk, "data"), key, v) {
      if (!ok || !json_is_string(v)) continue;
      ok = field_ok(key) && field_ok(json_string_value(v)) && cat(&buf, &len, &cap, sep) &&
           cat(&buf, &len, &cap, key) && cat(&buf, &len, &cap, sep) &&
           cat(&buf, &len, &cap, json_string_value(v));
    }
    if (!ok) {
      free(buf);
      return NULL;
    }
  }
  return buf;
}

/* Fills k's fields from a whole document; 0 when the index cannot hold it. */
static int known_from_doc(store_known *k, const char *file, const struct stat *st, json_t *doc)
{
  json_t *ctime = json_object_get(doc, "ctime"), *parent = json_object_get(doc, "parent");
  json_t *sec = json_object_get(ctime, "sec"), *nsec = json_object_get(ctime, "nsec");
  const char *uuid = jstr(doc, "uuid"), *name = jstr(doc, "name");
  const char *p = json_string_value(parent);
  if (!field_ok(file) || !field_ok(uuid) || !field_ok(name) || !json_is_integer(sec) ||
      !json_is_integer(nsec) || json_object_size(ctime) != 2 ||
      (parent && !json_is_null(parent) && !field_ok(p)))
    return 0;
  char *disks = disks_summary(doc);
  if (!disks) return 0;
  memset(k, 0, sizeof *k);
  k->mem = xasprintf("%s%c%s%c%s%c%s%c%s", file, 0, uuid, 0, name, 0, disks, 0, p ? p : "");
  free(disks);
  if (!k->mem) return 0;
  k->file = k->mem;
  k->uuid = k->file + strlen(file) + 1;
  k->name = k->uuid + strlen(uuid) + 1;
  k->disks = k->name + strlen(name) + 1;
  k->parent = p ? k->disks + strlen(k->disks) + 1 : NULL;
  k->parent_absent = !parent;
  k->ino = (uint64_t)st->st_ino;
  k->size = (uint64_t)st->st_size;
  k->msec = (int64_t)st->st_mtim.tv_sec;
  k->mnsec = (int64_t)st->st_mtim.tv_nsec;
  k->csec = json_integer_value(sec);
  k->cnsec = json_integer_value(nsec);
  return 1;
}

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

static void known_clear(store_domain *d)
{
  for (size_t i = 0; i < d->nknown; i++) free(d->known[i].mem);
  free(d->known);
  free(d->index_text);
  d->known = NULL;
  d->index_text = NULL;
  d->nknown = 0;
}

static int by_file(const void *a, const void *b)
{
  return strcmp(((const store_known *)a)->file, ((const store_known *)b)->file);
}

static int next_field(char **p, char **out)
{
  char *s = *p, *e = strchr(s, '\t');
  if (!e) return 0;
  *e = '\0';
  *out = s;
  *p = e + 1;
  return 1;
}

/* A whole field of decimal digits, optionally negative (what put_int
 * writes). By hand: strtoll's locale and base handling was the largest
 * cost of reading the index (six numbers a line). */
static int parse_int(const char *s, int64_t *out)
{
  int neg = *s == '-';
  uint64_t v = 0;
  const char *p = s + neg;
  if (!*p) return 0;
  for (; *p; p++) {
    unsigned dgt = (unsigned)(*p - '0');
    if (dgt > 9 || v > (UINT64_MAX - dgt) / 10) return 0;
    v = v * 10 + dgt;
  }
  if (v > (uint64_t)INT64_MAX + neg) return 0;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 1;
}

/* One line: file ino size msec mnsec uuid parent csec cnsec disks name,
 * the parent as N (null), A (no key) or S<uuid>. */
static int parse_line(char *line, store_known *k)
{
  char *f[10];
  int64_t ino, size;
  memset(k, 0, sizeof *k);
  for (int i = 0; i < 10; i++)
    if (!next_field(&line, &f[i])) return 0;
  if (!parse_int(f[1], &ino) || !parse_int(f[2], &size) || !parse_int(f[3], &k->msec) ||
      !parse_int(f[4], &k->mnsec) || !parse_int(f[7], &k->csec) || !parse_int(f[8], &k->cnsec))
    return 0;
  if (f[6][0] == 'S') k->parent = f[6] + 1;
  else if (f[6][0] == 'A' && !f[6][1]) k->parent_absent = 1;
  else if (!(f[6][0] == 'N' && !f[6][1])) return 0;
  k->file = f[0];
  k->ino = (uint64_t)ino;
  k->size = (uint64_t)size;
  k->uuid = f[5];
  k->disks = f[9];
  k->name = line;
  return *k->file && *k->uuid;
}

/* Reads snapshots/.index into d->known (sorted by file); nothing when it
 * is missing, damaged or of another format. */
static void index_read(store_domain *d)
{
  int fd = openat(d->snapdirfd, INDEX_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0) return;
  char *buf = NULL;
  if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (64 << 20) &&
      (buf = malloc((size_t)st.st_size + 1))) {
    ssize_t r;
    size_t len = 0;
    while (len < (size_t)st.st_size &&
           ((r = read(fd, buf + len, (size_t)st.st_size - len)) > 0 || (r < 0 && errno == EINTR)))
      if (r > 0) len += (size_t)r;
    if (len != (size_t)st.st_size) { free(buf); buf = NULL; }
    else buf[len] = '\0';
  }
  close(fd);
  if (!buf) return;
  size_t n = 0;
  uint64_t sum = 0, ino = 0;
  int64_t ms = 0, cs = 0;
  long mns = 0, cns = 0;
  char *body = strchr(buf, '\n');
  if (!body || sscanf(buf, INDEX_MAGIC " %zu %" SCNx64 " %" SCNu64 " %" SCNd64 " %ld %" SCNd64 " %ld\n",
                      &n, &sum, &ino, &ms, &mns, &cs, &cns) != 7 ||
      fs_checksum(body + 1, strlen(body + 1)) != sum || n > (size_t)st.st_size) {
    free(buf);
    return;
  }
  store_known *known = calloc(n ? n : 1, sizeof *known);
  size_t i = 0;
  for (char *line = body + 1; known && i < n && *line; i++) {
    char *nl = strchr(line, '\n');
    if (!nl) break;
    *nl = '\0';
    if (!parse_line(line, &known[i])) break;
    line = nl + 1;
  }
  if (!known || i != n) {
    free(known);
    free(buf);
    return;
  }
  /* Written sorted: a look at each pair costs less than the sort. */
  for (size_t s = 1; s < n; s++)
    if (strcmp(known[s - 1].file, known[s].file) >= 0) {
      qsort(known, n, sizeof *known, by_file);
      break;
    }
  d->known = known;
  d->nknown = n;
  d->index_text = buf;
  d->index_stamped = ino != 0;
  d->index_dirstat.st_ino = (ino_t)ino;
  d->index_dirstat.st_mtim = (struct timespec){(time_t)ms, mns};
  d->index_dirstat.st_ctim = (struct timespec){(time_t)cs, cns};
}

/* The snapshots directory is as the index's writer left it. */
static int dir_unchanged(store_domain *d)
{
  struct stat st;
  const struct stat *was = &d->index_dirstat;
  return d->index_stamped && fstat(d->snapdirfd, &st) == 0 && st.st_ino == was->st_ino &&
         st.st_mtim.tv_sec == was->st_mtim.tv_sec && st.st_mtim.tv_nsec == was->st_mtim.tv_nsec &&
         st.st_ctim.tv_sec == was->st_ctim.tv_sec && st.st_ctim.tv_nsec == was->st_ctim.tv_nsec;
}

static store_known *known_find(store_domain *d, const char *file)
{
  store_known key = {.file = (char *)file};
  return d->nknown ? bsearch(&key, d->known, d->nknown, sizeof key, by_file) : NULL;
}

/* Adds or replaces the record of file (k's strings owned by k->mem),
 * keeping known sorted: a binary search, not a sort per document written. */
static void known_put(store_domain *d, store_known *k)
{
  size_t lo = 0, hi = d->nknown;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(d->known[mid].file, k->file);
    if (c == 0) {
      free(d->known[mid].mem);
      d->known[mid] = *k;
      return;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  store_known *g = realloc(d->known, (d->nknown + 1) * sizeof *g);
  if (!g) { free(k->mem); d->index_complete = 0; return; }
  d->known = g;
  memmove(&d->known[lo + 1], &d->known[lo], (d->nknown - lo) * sizeof *g);
  d->known[lo] = *k;
  d->nknown++;
}

static void known_drop(store_domain *d, const char *file)
{
  for (size_t i = 0; i < d->nknown; i++)
    if (!strcmp(d->known[i].file, file)) {
      free(d->known[i].mem);
      memmove(&d->known[i], &d->known[i + 1], (d->nknown - i - 1) * sizeof *d->known);
      d->nknown--;
      return;
    }
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
  index_read(d);
  d->index_complete = 1;
  d->index_dirty = d->nknown == 0;
  return d->nknown && dir_unchanged(d);
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

void store_index_changing(store_domain *d)
{
  if (d->index_dropped) return;
  /* Before the first document changes: a crash from here on leaves no
   * index to trust (the document writes' directory flush makes this
   * removal durable with them). */
  unlinkat(d->snapdirfd, INDEX_NAME, 0);
  d->index_dropped = 1;
  d->index_dirty = 1;
}

void store_index_written(store_domain *d, const char *file, json_t *doc)
{
  struct stat st;
  store_known k;
  if (fstatat(d->snapdirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      known_from_doc(&k, file, &st, doc))
    known_put(d, &k);
  else
    d->index_complete = 0;
}

void store_index_removed(store_domain *d, const char *file)
{
  known_drop(d, file);
}

/* The index's fields, appended without printf: 500 lines are written by
 * every op at 500 snapshots. */
static char *put_str(char *p, const char *s, char end)
{
  size_t n = strlen(s);
  memcpy(p, s, n);
  p[n] = end;
  return p + n + 1;
}

static char *put_int(char *p, int64_t v, char end)
{
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do tmp[n++] = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) *p++ = '-';
  while (n) *p++ = tmp[--n];
  *p = end;
  return p + 1;
}

/* Writes the index of what this writer knows of every file: a temporary
 * file renamed into place, no fsync. */
void store_index_save(store_domain *d)
{
  if (d->lockfd < 0 || !d->index_complete || !d->index_dirty || d->nknown < INDEX_MIN_DOCS)
    return;
  size_t cap = 256 + d->nknown * 256, len = 0;
  char *buf = malloc(cap);
  for (size_t i = 0; buf && i < d->nknown; i++) {
    const store_known *k = &d->known[i];
    size_t need = strlen(k->file) + strlen(k->uuid) + strlen(k->name) + strlen(k->disks) +
                  (k->parent ? strlen(k->parent) : 0) + 160;
    if (len + need > cap) {
      char *g = realloc(buf, cap = (len + need) * 2);
      if (!g) { free(buf); buf = NULL; break; }
      buf = g;
    }
    char *p = buf + len;
    p = put_str(p, k->file, '\t');
    p = put_int(p, (int64_t)k->ino, '\t');
    p = put_int(p, (int64_t)k->size, '\t');
    p = put_int(p, k->msec, '\t');
    p = put_int(p, k->mnsec, '\t');
    p = put_str(p, k->uuid, '\t');
    *p++ = k->parent ? 'S' : k->parent_absent ? 'A' : 'N';
    p = put_str(p, k->parent ? k->parent : "", '\t');
    p = put_int(p, k->csec, '\t');
    p = put_int(p, k->cnsec, '\t');
    p = put_str(p, k->disks, '\t');
    p = put_str(p, k->name, '\n');
    len = (size_t)(p - buf);
  }
  if (!buf) return;
  char head[200], stamp[STAMP_LEN + 1];
  int sl = snprintf(stamp, sizeof stamp, STAMP_FMT, (uint64_t)0, (int64_t)0, 0L, (int64_t)0, 0L);
  int hl = snprintf(head, sizeof head, INDEX_MAGIC " %zu %016" PRIx64 " %s\n", d->nknown,
                    fs_checksum(buf, len), stamp);
  int fd = openat(d->snapdirfd, "." INDEX_NAME ".tmp",
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int ok = fd >= 0 && sl == STAMP_LEN && write(fd, head, (size_t)hl) == hl &&
           write(fd, buf, len) == (ssize_t)len;
  free(buf);
  if (!ok || renameat(d->snapdirfd, "." INDEX_NAME ".tmp", d->snapdirfd, INDEX_NAME) < 0) {
    unlinkat(d->snapdirfd, "." INDEX_NAME ".tmp", 0);
  } else {
    /* The directory as this rename left it, into the header in place (no
     * new name: the directory stays as stamped). A torn or lost stamp only
     * costs the next loader its look at each file. */
    struct stat st;
    if (fstat(d->snapdirfd, &st) == 0 &&
        snprintf(stamp, sizeof stamp, STAMP_FMT, (uint64_t)st.st_ino, (int64_t)st.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_nsec, (int64_t)st.st_ctim.tv_sec,
                 (long)st.st_ctim.tv_nsec) == STAMP_LEN)
      (void)!pwrite(fd, stamp, STAMP_LEN, hl - 1 - STAMP_LEN);
  }
  if (fd >= 0) close(fd);
}

void store_index_free(store_domain *d)
{
  known_clear(d);
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
