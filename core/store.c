/* store.c — per-domain metadata: domain.json, snapshots/<uuid>.json,
 * snapshots/.current, the lock that serialises writers (the journal:
 * store_journal.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "names.h"
#include "store.h"

#define LOCK_WAIT_MS 5000
/* The current snapshot: a symbolic link in snapshots/ to its uuid ("-":
 * none). Apart from domain.json, which rarely changes, so that an op that
 * moves it flushes one directory, the one its documents are in. Absent
 * (a state dir from before it), domain.json's "current" holds. */
#define CURRENT_LINK ".current"
#define NO_CURRENT "-"

/* How long a writer waits for another operation on the domain:
 * $VMSNAP_LOCK_TIMEOUT_MS, else 5 s. */
static int lock_wait_ms(void)
{
  const char *env = getenv("VMSNAP_LOCK_TIMEOUT_MS");
  return env && *env ? atoi(env) : LOCK_WAIT_MS;
}

static int take_lock(store_domain *d, vs_err *err)
{
  d->lockfd = openat(d->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (d->lockfd < 0)
    return err_set(err, err_from_errno(errno), "cannot open the lock of domain %s: %s",
                   d->name, strerror(errno));
  /* Short operations of other processes finish within the wait; a long
   * copy holds it longer and the caller gets BUSY, not a hang. */
  int limit = lock_wait_ms();
  for (int waited = 0;; waited += 20) {
    if (flock(d->lockfd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK || waited >= limit) break;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  return err_set(err, VMSNAP_E_BUSY,
                 "domain %s is busy: another vmsnap operation holds %s/lock; wait for it to "
                 "finish", d->name, d->dir);
}

/* Whether the directory and lock we hold are still the domain's: a
 * refused first create removes what it made (store_forget_fresh) while
 * another writer may wait for its lock. */
static int still_linked(store_domain *d)
{
  struct stat held, now, lock;
  return fstat(d->dirfd, &held) == 0 && stat(d->dir, &now) == 0 && held.st_dev == now.st_dev &&
         held.st_ino == now.st_ino && fstat(d->lockfd, &lock) == 0 && lock.st_nlink > 0;
}

static json_t *fresh_domain_doc(const char *name)
{
  return json_pack("{s:i, s:s, s:s, s:[], s:n}", "format", 1, "name", name, "driver",
                   "offline", "disks", "current");
}

static int open_dirs(store_domain *d, const char *domain, int mode, vs_err *err);

/* Reads .current into d->doc and notes what is on disk. */
static int read_current(store_domain *d, vs_err *err)
{
  char target[128];
  ssize_t n = readlinkat(d->snapdirfd, CURRENT_LINK, target, sizeof target - 1);
  if (!d->fresh) {
    d->doc_written = json_deep_copy(d->doc);
    json_object_del(d->doc_written, "current");
  }
  if (n < 0 && errno == ENOENT) return 0;
  if (n > 0) target[n] = '\0';
  if (n <= 0 || (strcmp(target, NO_CURRENT) && name_validate(target, "uuid", &(vs_err){0})))
    return err_set(err, VMSNAP_E_IO, "%s/snapshots/" CURRENT_LINK " is damaged (%s); point it "
                   "to the current snapshot's uuid (ln -sfn UUID), or to -", d->dir,
                   n < 0 ? strerror(errno) : "not a snapshot uuid");
  d->current_written = xstrdup(target);
  json_object_set_new(d->doc, "current", strcmp(target, NO_CURRENT) ? json_string(target)
                                                                     : json_null());
  return 0;
}

int store_open(vmsnap_ctx *ctx, const char *domain, int mode, store_domain **out,
               vs_err *err)
{
  *out = NULL;
  int rc = name_validate(domain, "domain name", err);
  if (rc) return rc;
  store_domain *d = calloc(1, sizeof *d);
  if (!d) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  d->ctx = ctx;
  d->dirfd = d->snapdirfd = d->lockfd = d->journal_fd = -1;
  pthread_mutex_init(&d->ents_lock, NULL);
  pthread_mutex_init(&d->snaps_lock, NULL);
  d->name = xstrdup(domain);
  d->dir = xasprintf("%s/domains/%s", ctx->state_dir, domain);
  int tries = 0;
  while ((rc = open_dirs(d, domain, mode, err)) == 0 && mode != STORE_READ && !still_linked(d)) {
    /* Removed while we waited for its lock: open it afresh. */
    close(d->lockfd);
    close(d->snapdirfd);
    close(d->dirfd);
    d->dirfd = d->snapdirfd = d->lockfd = -1;
    if (++tries == 3) {
      rc = err_set(err, VMSNAP_E_BUSY, "domain %s keeps being removed while this operation "
                   "waits for it; try again", domain);
      break;
    }
  }
  if (rc) goto fail;
  rc = fs_read_json(d->dirfd, "domain.json", &d->doc, err);
  if (rc == VMSNAP_E_NOT_FOUND) {
    d->doc = fresh_domain_doc(domain);
    d->fresh = 1;
    rc = 0;
  }
  if (!rc) rc = read_current(d, err);
  if (rc) goto fail;
  *out = d;
  return 0;
fail:
  store_close(d);
  return rc;
}

/* Opens (for STORE_CREATE makes) the domain's directories and takes the
 * lock unless reading. */
static int open_dirs(store_domain *d, const char *domain, int mode, vs_err *err)
{
  int rc;
  if (mode == STORE_CREATE) {
    char *snaps = xasprintf("%s/snapshots", d->dir);
    rc = fs_mkdir_p(snaps, 0700, err);
    free(snaps);
    if (rc) return rc;
  }
  d->dirfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->dirfd < 0)
    return errno == ENOENT
               ? err_set(err, VMSNAP_E_NOT_FOUND,
                         "domain %s has no snapshots (nothing under %s)", domain, d->dir)
               : err_set(err, err_from_errno(errno), "cannot open %s: %s", d->dir,
                         strerror(errno));
  d->snapdirfd = openat(d->dirfd, "snapshots", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->snapdirfd < 0)
    return err_set(err, VMSNAP_E_IO, "cannot open %s/snapshots: %s", d->dir, strerror(errno));
  return mode != STORE_READ ? take_lock(d, err) : 0;
}

void store_remove_temps(store_domain *d)
{
  if (d->lockfd < 0) return;
  fs_remove_temps(d->dirfd);
  fs_remove_temps(d->snapdirfd);
}

void store_forget_fresh(store_domain *d)
{
  if (!d || !d->fresh || d->lockfd < 0 ||
      faccessat(d->dirfd, "domain.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
      store_journal_pending(d))
    return;
  /* Only what store_open made: an empty snapshots dir, the lock, the dir
   * (rmdir fails, harmlessly, on anything more), and a cleared journal. */
  if (unlinkat(d->dirfd, "snapshots", AT_REMOVEDIR) < 0) return;
  store_journal_forget(d);
  unlinkat(d->dirfd, "lock", 0);
  rmdir(d->dir);
}

/* What is on disk is unknown (a failed write) or gone: written anew next time. */
static void forget_written(store_domain *d)
{
  json_decref(d->doc_written);
  d->doc_written = NULL;
  free(d->current_written);
  d->current_written = NULL;
}

int store_forget_domain_doc(store_domain *d, vs_err *err)
{
  if (unlinkat(d->snapdirfd, CURRENT_LINK, 0) < 0 && errno != ENOENT)
    return err_set(err, VMSNAP_E_IO, "cannot remove %s/snapshots/" CURRENT_LINK ": %s", d->dir,
                   strerror(errno));
  if (unlinkat(d->dirfd, "domain.json", 0) < 0 && errno != ENOENT)
    return err_set(err, VMSNAP_E_IO, "cannot remove %s/domain.json: %s", d->dir, strerror(errno));
  if (fsync(d->snapdirfd) < 0 || fsync(d->dirfd) < 0)
    return err_set(err, VMSNAP_E_IO, "cannot sync %s: %s", d->dir, strerror(errno));
  json_decref(d->doc);
  d->doc = fresh_domain_doc(d->name);
  d->fresh = 1;
  forget_written(d);
  return 0;
}

json_t *store_peek_disks(vmsnap_ctx *ctx, const char *domain)
{
  vs_err ignore = {0};
  json_t *doc = NULL, *disks = NULL;
  if (name_validate(domain, "domain name", &ignore)) return NULL;
  char *dir = xasprintf("%s/domains/%s", ctx->state_dir, domain);
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (dirfd < 0) return NULL;
  if (fs_read_json(dirfd, "domain.json", &doc, &ignore) == 0)
    disks = json_incref(json_object_get(doc, "disks"));
  json_decref(doc);
  close(dirfd);
  return disks;
}

void store_close(store_domain *d)
{
  if (!d) return;
  fs_batch_discard(&d->batch); /* never committed: an error path */
  json_decref(d->batch_docs);
  if (d->snapdirfd >= 0) store_index_save(d);
  json_decref(d->snaps);
  store_index_free(d);
  pthread_mutex_destroy(&d->ents_lock);
  pthread_mutex_destroy(&d->snaps_lock);
  if (d->journal_fd >= 0) close(d->journal_fd);
  if (d->lockfd >= 0) close(d->lockfd); /* releases the flock */
  if (d->snapdirfd >= 0) close(d->snapdirfd);
  if (d->dirfd >= 0) close(d->dirfd);
  json_decref(d->doc);
  forget_written(d);
  free(d->name);
  free(d->dir);
  free(d);
}

static int write_json(store_domain *d, int dirfd, const char *name, json_t *doc, vs_err *err)
{
  if (d->batching) return fs_batch_json(&d->batch, dirfd, name, doc, err);
  return fs_write_json(dirfd, name, doc, err);
}

void store_batch_begin(store_domain *d)
{
  d->batching = 1;
}

void store_batch_commit_record(store_domain *d, const char *crashpoint_before)
{
  d->batch.before_last = crashpoint_before;
}

int store_batch_end(store_domain *d, int rc, vs_err *err)
{
  d->batching = 0;
  if (!rc) rc = fs_batch_commit(&d->batch, err);
  else fs_batch_discard(&d->batch);
  const char *file;
  json_t *doc;
  json_object_foreach(d->batch_docs, file, doc) {
    if (rc) d->index_complete = 0; /* which of them are in place is unknown */
    else store_index_written(d, file, doc);
  }
  json_decref(d->batch_docs);
  d->batch_docs = NULL;
  if (rc) forget_written(d);
  return rc;
}

int store_write_domain(store_domain *d, vs_err *err)
{
  const char *cur = jstr(d->doc, "current");
  cur = cur ? cur : NO_CURRENT;
  json_t *rest = json_copy(d->doc);
  if (!rest) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  json_object_del(rest, "current");
  int rc = 0;
  /* The link first: a batch installs in order, and a domain.json without
   * "current" must not meet a state dir from before the link. */
  if (!d->current_written || strcmp(d->current_written, cur)) {
    store_index_changing(d); /* the snapshots directory changes */
    rc = d->batching ? fs_batch_link(&d->batch, d->snapdirfd, CURRENT_LINK, cur, err)
                     : fs_write_link(d->snapdirfd, CURRENT_LINK, cur, err);
    free(d->current_written);
    d->current_written = rc ? NULL : xstrdup(cur);
  }
  if (!rc && (!d->doc_written || !json_equal(rest, d->doc_written))) {
    rc = write_json(d, d->dirfd, "domain.json", rest, err);
    json_decref(d->doc_written);
    d->doc_written = rc ? NULL : json_deep_copy(rest); /* d->doc's parts change in place */
  }
  json_decref(rest);
  return rc;
}

/* Creation order, then name. */
static int by_ctime(const void *a, const void *b)
{
  const store_loaded *x = a, *y = b;
  if (x->sec != y->sec) return x->sec < y->sec ? -1 : 1;
  if (x->nsec != y->nsec) return x->nsec < y->nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* docs in creation order, as an array (docs freed, their references moved). */
static int ordered(store_loaded *docs, size_t n, json_t **arr, vs_err *err)
{
  if (n) qsort(docs, n, sizeof *docs, by_ctime);
  json_t *out = json_array();
  for (size_t i = 0; i < n; i++) {
    if (out) json_array_append(out, docs[i].doc);
    json_decref(docs[i].doc);
  }
  free(docs);
  if (!out) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  *arr = out;
  return 0;
}

int store_load_snapshots(store_domain *d, json_t **arr, vs_err *err)
{
  store_loaded *docs;
  size_t n;
  *arr = NULL;
  int rc = store_index_load(d, &docs, &n, err);
  return rc ? rc : ordered(docs, n, arr, err);
}

int store_load_family(store_domain *d, const char *name, json_t **arr, vs_err *err)
{
  store_loaded *docs;
  size_t n;
  *arr = NULL;
  int rc = store_index_family(d, name, &docs, &n, err);
  if (rc <= 0) return rc;
  return (rc = ordered(docs, n, arr, err)) ? rc : 1;
}

int store_snapshots(store_domain *d, json_t **arr, vs_err *err)
{
  pthread_mutex_lock(&d->snaps_lock);
  int rc = d->snaps ? 0 : store_load_snapshots(d, &d->snaps, err);
  *arr = rc ? NULL : json_incref(d->snaps);
  pthread_mutex_unlock(&d->snaps_lock);
  return rc;
}

/* What the index needs of a document as it is written now. */
static json_t *index_fields(json_t *doc)
{
  json_t *f = json_object();
  static const char *const keys[] = {"uuid", "name", "parent", "ctime", "disks"};
  for (size_t i = 0; f && i < 5; i++) {
    json_t *v = json_object_get(doc, keys[i]);
    if (v) json_object_set_new(f, keys[i], json_deep_copy(v));
  }
  return f;
}

int store_write_snapshot(store_domain *d, json_t *doc, vs_err *err)
{
  char name[64];
  int rc = store_doc(d, doc, err); /* never a light document over a whole one */
  if (rc) return rc;
  snprintf(name, sizeof name, "%s.json", jstr(doc, "uuid"));
  store_index_changing(d);
  rc = write_json(d, d->snapdirfd, name, doc, err);
  if (rc) {
    d->index_complete = 0;
  } else if (d->batching) {
    if (!d->batch_docs) d->batch_docs = json_object();
    json_object_set_new(d->batch_docs, name, index_fields(doc));
  } else {
    store_index_written(d, name, doc);
  }
  return rc;
}

int store_remove_snapshot(store_domain *d, const char *uuid, vs_err *err)
{
  char name[64];
  snprintf(name, sizeof name, "%s.json", uuid);
  store_index_changing(d);
  if (unlinkat(d->snapdirfd, name, 0) < 0 && errno != ENOENT)
    return err_set(err, VMSNAP_E_IO, "cannot remove %s/snapshots/%s: %s", d->dir, name,
                   strerror(errno));
  store_index_removed(d, name);
  if (fsync(d->snapdirfd) < 0)
    return err_set(err, VMSNAP_E_IO, "cannot sync %s/snapshots: %s", d->dir, strerror(errno));
  return 0;
}

int store_doc_siblings(json_t *doc, const char *target, const char *backend,
                       store_sibling_fn *fn, void *user)
{
  size_t k;
  json_t *disk;
  json_array_foreach(json_object_get(doc, "disks"), k, disk) {
    const char *t = jstr(disk, "target"), *b = jstr(disk, "backend");
    if (!t || !b || strcmp(t, target) || strcmp(b, backend)) continue;
    json_t *data = json_object_get(disk, "data");
    const char **kv = calloc(2 * json_object_size(data) + 1, sizeof *kv);
    if (!kv) return VMSNAP_E_NOMEM;
    size_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(data, key, v) {
      if (!json_is_string(v)) continue;
      kv[n++] = key;
      kv[n++] = json_string_value(v);
    }
    int rc = fn(user, jstr(doc, "uuid"), jstr(doc, "name"), kv);
    free(kv);
    if (rc) return rc;
  }
  return 0;
}

static json_t *find_by(json_t *arr, const char *key, const char *value)
{
  size_t i;
  json_t *doc;
  json_array_foreach(arr, i, doc) {
    const char *v = jstr(doc, key);
    if (v && value && strcmp(v, value) == 0) return doc;
  }
  return NULL;
}

json_t *store_find_by_name(json_t *arr, const char *name) { return find_by(arr, "name", name); }
json_t *store_find_by_uuid(json_t *arr, const char *uuid) { return find_by(arr, "uuid", uuid); }

int store_list_domains(vmsnap_ctx *ctx, json_t **names, vs_err *err)
{
  char *path = xasprintf("%s/domains", ctx->state_dir);
  DIR *dir = opendir(path);
  *names = json_array();
  if (!dir) {
    int e = errno;
    free(path);
    if (e == ENOENT) return 0;
    return err_set(err, VMSNAP_E_IO, "cannot list domains in %s: %s", ctx->state_dir,
                   strerror(e));
  }
  struct dirent *de;
  while ((de = readdir(dir)))
    if (de->d_name[0] != '.') json_array_append_new(*names, json_string(de->d_name));
  closedir(dir);
  free(path);
  return 0;
}
