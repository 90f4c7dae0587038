/* store_index_file.c — the snapshot index on disk (snapshots/.index):
 * its format, reading it into what the store knows of each document file
 * (store_known), and writing it back, in full or by appending what one
 * writer session changed. What the index is for and when it is trusted:
 * store_index.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_index_file.h"

#define INDEX_NAME ".index"
/* Where the index waits while a writer changes documents (see
 * store_index_changing); never read by a loader. */
#define INDEX_ASIDE ".index.w"
#define INDEX_MAGIC "vmsnap-index 4"
/* ino mtime-sec mtime-nsec ctime-sec ctime-nsec journal-seq, fixed width:
 * written in place after the rename. All zero: not recorded. */
#define STAMP_FMT "%020" PRIu64 " %020" PRId64 " %09ld %020" PRId64 " %09ld %020" PRIu64
#define STAMP_LEN 103
/* Below this many documents parsing them all costs about what keeping the
 * index does (its write, and the write-back the next op's fsync pays). */
#define INDEX_MIN_DOCS 32
/* Appended records before the index is written whole again: reading one
 * costs about what a line of the base does. */
#define APPEND_MAX(n) ((n) / 4 > 32 ? (n) / 4 : 32)

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
int known_from_doc(store_known *k, const char *file, const struct stat *st, json_t *doc)
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


void known_clear(store_domain *d)
{
  for (size_t i = 0; i < d->nknown; i++) free(d->known[i].mem);
  free(d->known);
  free(d->index_text);
  d->known = NULL;
  d->index_text = NULL;
  d->nknown = 0;
  d->index_read_ok = 0;
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

/* One appended record, "<sum>\t+<line>" (a file's line, put or
 * replaced) or "<sum>\t-<file>" (removed), applied to d->known; 0 when
 * torn or damaged. */
static int apply_record(store_domain *d, char *rec)
{
  char *tab = strchr(rec, '\t');
  uint64_t sum;
  if (!tab || tab - rec != 16 || sscanf(rec, "%16" SCNx64, &sum) != 1 ||
      fs_checksum(tab + 1, strlen(tab + 1)) != sum)
    return 0;
  store_known k;
  if (tab[1] == '-' && tab[2]) known_drop(d, tab + 2);
  else if (tab[1] == '+' && parse_line(tab + 2, &k)) known_put(d, &k);
  else return 0;
  return 1;
}

void index_file_read(store_domain *d)
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
  size_t n = 0, baselen = 0, size = (size_t)st.st_size;
  uint64_t sum = 0, ino = 0, seq = 0;
  int64_t ms = 0, cs = 0;
  long mns = 0, cns = 0;
  char *nl = strchr(buf, '\n'), *base = nl ? nl + 1 : NULL;
  if (!base || sscanf(buf, INDEX_MAGIC " %zu %zu %" SCNx64 " %" SCNu64 " %" SCNd64 " %ld %" SCNd64
                      " %ld %" SCNu64 "\n", &n, &baselen, &sum, &ino, &ms, &mns, &cs, &cns,
                      &seq) != 9 ||
      baselen > size - (size_t)(base - buf) || fs_checksum(base, baselen) != sum || n > size) {
    free(buf);
    return;
  }
  char *appended = base + baselen;
  store_known *known = calloc(n ? n : 1, sizeof *known);
  size_t i = 0;
  for (char *line = base; known && i < n && line < appended; i++) {
    char *end = memchr(line, '\n', (size_t)(appended - line));
    if (!end) break;
    *end = '\0';
    if (!parse_line(line, &known[i])) break;
    line = end + 1;
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
  /* What writers appended since, in order; one bad record (a torn append)
   * and the index is not used at all. */
  size_t records = 0;
  for (char *rec = appended; *rec; records++) {
    char *end = strchr(rec, '\n');
    if (!end) { known_clear(d); return; }
    *end = '\0';
    if (!apply_record(d, rec)) { known_clear(d); return; }
    rec = end + 1;
  }
  d->index_read_ok = 1;
  d->index_records = records;
  d->index_head_len = (size_t)(base - buf);
  d->index_seq = seq;
  d->index_stamped = ino != 0;
  d->index_dirstat.st_ino = (ino_t)ino;
  d->index_dirstat.st_mtim = (struct timespec){(time_t)ms, mns};
  d->index_dirstat.st_ctim = (struct timespec){(time_t)cs, cns};
}

int index_current(store_domain *d)
{
  struct stat st;
  const struct stat *was = &d->index_dirstat;
  return d->index_stamped && fstat(d->snapdirfd, &st) == 0 && st.st_ino == was->st_ino &&
         st.st_mtim.tv_sec == was->st_mtim.tv_sec && st.st_mtim.tv_nsec == was->st_mtim.tv_nsec &&
         st.st_ctim.tv_sec == was->st_ctim.tv_sec && st.st_ctim.tv_nsec == was->st_ctim.tv_nsec &&
         d->index_seq == store_journal_seq(d);
}

store_known *known_find(store_domain *d, const char *file)
{
  store_known key = {.file = (char *)file};
  return d->nknown ? bsearch(&key, d->known, d->nknown, sizeof key, by_file) : NULL;
}

/* Adds or replaces the record of file (k's strings owned by k->mem),
 * keeping known sorted: a binary search, not a sort per document written. */
void known_put(store_domain *d, store_known *k)
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

void known_drop(store_domain *d, const char *file)
{
  for (size_t i = 0; i < d->nknown; i++)
    if (!strcmp(d->known[i].file, file)) {
      free(d->known[i].mem);
      memmove(&d->known[i], &d->known[i + 1], (d->nknown - i - 1) * sizeof *d->known);
      d->nknown--;
      return;
    }
}

void store_index_changing(store_domain *d)
{
  if (d->index_dropped) return;
  /* Before the first document changes the index leaves its name: a crash
   * from here on leaves no index to trust (the document writes' directory
   * flush makes that durable with them). One read whole and unchanged waits
   * aside for this session's changes to be appended at close. */
  if (d->index_read_ok && !d->index_rewrite &&
      renameat(d->snapdirfd, INDEX_NAME, d->snapdirfd, INDEX_ASIDE) == 0)
    d->index_aside = 1;
  else
    unlinkat(d->snapdirfd, INDEX_NAME, 0);
  d->index_dropped = 1;
  d->index_dirty = 1;
}

/* The index's fields, appended without printf: 500 lines are written
 * when the index is written whole. */
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

/* Room for k's line. */
static size_t line_room(const store_known *k)
{
  return strlen(k->file) + strlen(k->uuid) + strlen(k->name) + strlen(k->disks) +
         (k->parent ? strlen(k->parent) : 0) + 160;
}

/* k's line, ended with end ('\n', or '\0' for a record). */
static char *put_line(char *p, const store_known *k, char end)
{
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
  return put_str(p, k->name, end);
}

/* One change of this session, for appending at close: op '+' with the
 * file's line as it is now, or '-' with the file. */
static void log_record(store_domain *d, char op, const char *file)
{
  store_known *k = op == '+' ? known_find(d, file) : NULL;
  size_t need = 16 + 3 + (k ? line_room(k) : strlen(file) + 1);
  if (op == '+' && !k) { d->index_rewrite = 1; return; }
  if (d->index_log_len + need + 1 > d->index_log_cap) {
    size_t cap = (d->index_log_len + need + 1) * 2;
    char *g = realloc(d->index_log, cap);
    if (!g) { d->index_rewrite = 1; return; }
    d->index_log = g;
    d->index_log_cap = cap;
  }
  char *rec = d->index_log + d->index_log_len, *body = rec + 17, *end;
  body[0] = op;
  end = k ? put_line(body + 1, k, '\0') : put_str(body + 1, file, '\0');
  size_t blen = (size_t)(end - 1 - body);
  char sum[17];
  snprintf(sum, sizeof sum, "%016" PRIx64, fs_checksum(body, blen));
  memcpy(rec, sum, 16);
  rec[16] = '\t';
  body[blen] = '\n';
  d->index_log_len += 17 + blen + 1;
  d->index_records_new++;
}

void store_index_written(store_domain *d, const char *file, json_t *doc)
{
  struct stat st;
  store_known k;
  if (fstatat(d->snapdirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      known_from_doc(&k, file, &st, doc)) {
    known_put(d, &k);
    log_record(d, '+', file);
  } else {
    d->index_complete = 0;
  }
}

void store_index_removed(store_domain *d, const char *file)
{
  known_drop(d, file);
  log_record(d, '-', file);
}

/* The directory as the rename just left it, and the journal's sequence,
 * into the header in place (no new name: the directory stays as stamped).
 * A torn or lost stamp only costs the next loader its look at each file. */
static void put_stamp(store_domain *d, int fd, size_t head_len)
{
  struct stat st;
  char stamp[STAMP_LEN + 1];
  if (fstat(d->snapdirfd, &st) == 0 &&
      snprintf(stamp, sizeof stamp, STAMP_FMT, (uint64_t)st.st_ino, (int64_t)st.st_mtim.tv_sec,
               (long)st.st_mtim.tv_nsec, (int64_t)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec,
               store_journal_seq(d)) == STAMP_LEN)
    (void)!pwrite(fd, stamp, STAMP_LEN, (off_t)(head_len - 1 - STAMP_LEN));
}

static int write_all(int fd, const char *buf, size_t len)
{
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 0;
    buf += w;
    len -= (size_t)w;
  }
  return 1;
}

/* This session's records onto the index kept aside, which takes its name
 * back: a few hundred bytes instead of the whole index. 0: not done (the
 * caller writes it whole). */
static int append_aside(store_domain *d)
{
  if (!d->index_aside || d->index_rewrite ||
      d->index_records + d->index_records_new > APPEND_MAX(d->nknown))
    return 0;
  /* Not O_APPEND: Linux's pwrite appends on such a file, whatever the
   * offset, and the stamp is written in place. */
  int fd = openat(d->snapdirfd, INDEX_ASIDE, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  /* The old stamp out first: were the new one lost, none is left to trust. */
  char zero[STAMP_LEN];
  memset(zero, '0', sizeof zero);
  int ok = pwrite(fd, zero, STAMP_LEN, (off_t)(d->index_head_len - 1 - STAMP_LEN)) == STAMP_LEN &&
           lseek(fd, 0, SEEK_END) >= 0 && write_all(fd, d->index_log, d->index_log_len) &&
           renameat(d->snapdirfd, INDEX_ASIDE, d->snapdirfd, INDEX_NAME) == 0;
  if (ok) put_stamp(d, fd, d->index_head_len);
  close(fd);
  return ok;
}

/* Writes the index of what this writer knows of every file: a temporary
 * file renamed into place, no fsync. */
static void write_whole(store_domain *d)
{
  size_t cap = 256 + d->nknown * 256, len = 0;
  char *buf = malloc(cap);
  for (size_t i = 0; buf && i < d->nknown; i++) {
    const store_known *k = &d->known[i];
    size_t need = line_room(k);
    if (len + need > cap) {
      char *g = realloc(buf, cap = (len + need) * 2);
      if (!g) { free(buf); buf = NULL; break; }
      buf = g;
    }
    len = (size_t)(put_line(buf + len, k, '\n') - buf);
  }
  if (!buf) return;
  char head[300], stamp[STAMP_LEN + 1];
  int sl = snprintf(stamp, sizeof stamp, STAMP_FMT, (uint64_t)0, (int64_t)0, 0L, (int64_t)0, 0L,
                    (uint64_t)0);
  int hl = snprintf(head, sizeof head, INDEX_MAGIC " %zu %zu %016" PRIx64 " %s\n", d->nknown, len,
                    fs_checksum(buf, len), stamp);
  int fd = openat(d->snapdirfd, "." INDEX_NAME ".tmp",
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int ok = fd >= 0 && sl == STAMP_LEN && write_all(fd, head, (size_t)hl) &&
           write_all(fd, buf, len);
  free(buf);
  if (!ok || renameat(d->snapdirfd, "." INDEX_NAME ".tmp", d->snapdirfd, INDEX_NAME) < 0)
    unlinkat(d->snapdirfd, "." INDEX_NAME ".tmp", 0);
  else
    put_stamp(d, fd, (size_t)hl);
  if (fd >= 0) close(fd);
}

void store_index_save(store_domain *d)
{
  if (d->lockfd < 0) return;
  int keep = d->index_complete && d->nknown >= INDEX_MIN_DOCS;
  int appended = keep && d->index_dirty && append_aside(d);
  /* One aside and not appended to: this session's, or a crash's (its
   * session did not trust the index, so it is dirty). Removed before the
   * new index is stamped with the directory as it is. */
  if (d->index_dirty && !appended) unlinkat(d->snapdirfd, INDEX_ASIDE, 0);
  if (keep && d->index_dirty && !appended) write_whole(d);
  free(d->index_log);
  d->index_log = NULL;
  d->index_log_len = d->index_log_cap = 0;
}
