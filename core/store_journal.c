/* store_journal.c — the journal: the intent of the operation in flight,
 * durable before the op changes anything, cleared at its commit point
 * (without waiting for the disk when recover can tell from the state that
 * the op is done: store_journal_clear_done).
 *
 * Every op writes it at least twice (the intent, the clear), so it costs
 * what a write costs on the op's critical path. A new file each time (temp
 * + fsync + rename + fsync of the directory, then unlink + fsync to clear)
 * took about 0.9 ms here; an overwrite in place of blocks already on disk
 * and one fdatasync takes about 0.1 ms, since nothing but the data changes.
 *
 * So <domain>/journal is a file of two equal slots, made once (atomically,
 * zero-filled, so later writes never allocate) and then only overwritten.
 * A slot is a 64-byte text header
 *     vmsnap-journal 1 <seq> <len> <sum>
 * and len bytes of JSON after it; len 0 is a clear. The record in force is
 * the valid slot (header parses, checksum matches) with the higher seq; a
 * write always goes to the OTHER slot with seq + 1. A crash that tears a
 * write damages only the slot being written, so the record before it
 * stays in force: a torn intent reads as "no journal" (the op had not
 * started: it waits for the write to be durable), a torn clear as the
 * intent (recover runs, finding the op done or undone).
 *
 * A record that outgrows its slot, or a missing or damaged file, makes the
 * file anew with bigger slots (the atomic way). A journal.json left by an
 * older vmsnap is still read and honoured until it is cleared. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define JOURNAL_NAME "journal"
#define LEGACY_NAME "journal.json"
#define HDR_LEN 64
#define HDR_MAGIC "vmsnap-journal 1"
#define MIN_SLOT (64u << 10)
#define MAX_SLOT (64u << 20)

typedef struct slot_record {
  uint64_t seq;
  uint32_t len;
  int valid;
} slot_record;

static uint64_t record_sum(uint64_t seq, const char *body, size_t len)
{
  return fs_checksum(body, len) ^ (seq * 0x9e3779b97f4a7c15ull);
}

static void format_header(char hdr[HDR_LEN], uint64_t seq, const char *body, size_t len)
{
  int n = snprintf(hdr, HDR_LEN, HDR_MAGIC " %016" PRIx64 " %08zx %016" PRIx64, seq, len,
                   record_sum(seq, body, len));
  memset(hdr + n, ' ', HDR_LEN - 1 - (size_t)n);
  hdr[HDR_LEN - 1] = '\n';
}

/* Reads the slot at off; *body (malloc'd, NUL-terminated) only for a
 * valid record with a body. */
static slot_record read_slot(int fd, off_t off, size_t slot, char **body)
{
  slot_record r = {0};
  char hdr[HDR_LEN + 1];
  uint64_t sum;
  unsigned len;
  *body = NULL;
  if (pread(fd, hdr, HDR_LEN, off) != HDR_LEN) return r;
  hdr[HDR_LEN] = '\0';
  if (sscanf(hdr, HDR_MAGIC " %16" SCNx64 " %8x %16" SCNx64, &r.seq, &len, &sum) != 3 ||
      len > slot - HDR_LEN)
    return r;
  char *b = malloc((size_t)len + 1);
  if (!b || (len && pread(fd, b, len, off + HDR_LEN) != (ssize_t)len)) {
    free(b);
    return r;
  }
  b[len] = '\0';
  if (record_sum(r.seq, b, len) != sum) {
    free(b);
    return r;
  }
  r.len = len;
  r.valid = 1;
  if (len) *body = b;
  else free(b);
  return r;
}

/* Finds the record in force. 0 with *text NULL: no journal (a clear, or no
 * file); text is the pending intent otherwise. */
static int journal_load(store_domain *d, char **text, vs_err *err)
{
  *text = NULL;
  if (d->journal_fd < 0) {
    int rw = d->lockfd >= 0 ? O_RDWR : O_RDONLY; /* only writers write */
    d->journal_fd = openat(d->dirfd, JOURNAL_NAME, rw | O_CLOEXEC | O_NOFOLLOW);
    if (d->journal_fd < 0) {
      if (errno == ENOENT) return (d->journal_loaded = 1, 0);
      return err_set(err, err_from_errno(errno), "cannot open %s/" JOURNAL_NAME ": %s", d->dir,
                     strerror(errno));
    }
  }
  struct stat st;
  if (fstat(d->journal_fd, &st) < 0 || st.st_size < 2 * HDR_LEN || st.st_size % 2 ||
      st.st_size / 2 > MAX_SLOT)
    goto damaged;
  size_t slot = (size_t)st.st_size / 2;
  char *body[2];
  slot_record r[2] = {read_slot(d->journal_fd, 0, slot, &body[0]),
                      read_slot(d->journal_fd, (off_t)slot, slot, &body[1])};
  if (!r[0].valid && !r[1].valid) goto damaged;
  int cur = !r[0].valid || (r[1].valid && r[1].seq > r[0].seq);
  free(body[!cur]);
  d->journal_slot_size = slot;
  d->journal_cur = cur;
  d->journal_seq = r[cur].seq;
  d->journal_loaded = 1;
  *text = body[cur];
  return 0;
damaged:
  /* Both slots bad cannot come from a crash (one write touches one slot):
   * someone else changed the file. Its intent, if any, is lost to us. */
  return err_set(err, VMSNAP_E_IO,
                 "%s/" JOURNAL_NAME " is damaged (no valid record): an interrupted operation "
                 "cannot be told apart from none; check the domain's disks and snapshots, then "
                 "remove the file", d->dir);
}

/* Makes the file anew, the record in slot 0 and slot 1 empty. */
static int journal_rebuild(store_domain *d, uint64_t seq, const char *text, size_t len,
                           vs_err *err)
{
  size_t slot = MIN_SLOT;
  while (slot < HDR_LEN + len && slot < MAX_SLOT) slot *= 2;
  if (slot < HDR_LEN + len)
    return err_set(err, VMSNAP_E_INVALID, "the journal record (%zu bytes) exceeds %u bytes", len,
                   MAX_SLOT - HDR_LEN);
  char *file = calloc(2, slot);
  if (!file) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  format_header(file, seq, text, len);
  memcpy(file + HDR_LEN, text, len);
  int rc = fs_write_atomic(d->dirfd, JOURNAL_NAME, file, 2 * slot, 0600, err);
  free(file);
  if (rc) return rc;
  if (d->journal_fd >= 0) close(d->journal_fd);
  d->journal_fd = openat(d->dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (d->journal_fd < 0)
    return err_set(err, err_from_errno(errno), "cannot open %s/" JOURNAL_NAME ": %s", d->dir,
                   strerror(errno));
  d->journal_slot_size = slot;
  d->journal_cur = 0;
  d->journal_seq = seq;
  d->journal_loaded = 1;
  return 0;
}

/* Writes a record (len 0: a clear) as the one in force; durably unless
 * the caller's outcome needs no record (store_journal_clear_done). */
static int journal_put(store_domain *d, const char *text, size_t len, int durable, vs_err *err)
{
  if (!d->journal_loaded) { /* the lock is held: what was read stays true */
    char *pending = NULL;
    int rc = journal_load(d, &pending, err);
    free(pending);
    if (rc) return rc;
  }
  if (!len && d->journal_fd < 0) return 0; /* never written: nothing to clear */
  uint64_t seq = d->journal_seq + 1;
  if (d->journal_fd < 0 || d->journal_slot_size == 0 || HDR_LEN + len > d->journal_slot_size)
    return journal_rebuild(d, seq, text, len, err);
  char *rec = malloc(HDR_LEN + len);
  if (!rec) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  format_header(rec, seq, text, len);
  memcpy(rec + HDR_LEN, text, len);
  int next = !d->journal_cur;
  ssize_t w = pwrite(d->journal_fd, rec, HDR_LEN + len, (off_t)(next * d->journal_slot_size));
  int e = errno;
  free(rec);
  if (w == (ssize_t)(HDR_LEN + len) && (!durable || fdatasync(d->journal_fd) == 0)) {
    d->journal_cur = next;
    d->journal_seq = seq;
    return 0;
  }
  if (w >= 0) e = w == (ssize_t)(HDR_LEN + len) ? errno : EIO;
  /* The slot written is in an unknown state, the one in force is intact. */
  return err_set(err, err_from_errno(e), "cannot write %s/" JOURNAL_NAME ": %s", d->dir,
                 strerror(e));
}

static int legacy_present(store_domain *d)
{
  return faccessat(d->dirfd, LEGACY_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_journal_read(store_domain *d, json_t **journal, vs_err *err)
{
  *journal = NULL;
  if (legacy_present(d)) return fs_read_json(d->dirfd, LEGACY_NAME, journal, err);
  char *text = NULL;
  int rc = journal_load(d, &text, err);
  if (rc) return rc;
  if (!text) return VMSNAP_E_NOT_FOUND;
  json_error_t je;
  *journal = json_loads(text, 0, &je);
  free(text);
  if (!*journal)
    return err_set(err, VMSNAP_E_IO, "%s/" JOURNAL_NAME ": %s (line %d)", d->dir, je.text,
                   je.line);
  return 0;
}

int store_journal_write(store_domain *d, json_t *journal, vs_err *err)
{
  char *text = json_dumps(journal, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return err_set(err, VMSNAP_E_NOMEM, "cannot encode the journal");
  int rc = journal_put(d, text, strlen(text), 1, err);
  free(text);
  return rc;
}

static int journal_clear(store_domain *d, int durable, vs_err *err)
{
  if (legacy_present(d)) {
    if (unlinkat(d->dirfd, LEGACY_NAME, 0) < 0 && errno != ENOENT)
      return err_set(err, VMSNAP_E_IO, "cannot remove %s/" LEGACY_NAME ": %s", d->dir,
                     strerror(errno));
    if (fsync(d->dirfd) < 0)
      return err_set(err, VMSNAP_E_IO, "cannot sync %s: %s", d->dir, strerror(errno));
  }
  return journal_put(d, "", 0, durable, err);
}

int store_journal_clear(store_domain *d, vs_err *err)
{
  return journal_clear(d, 1, err);
}

/* Not waiting saves a flush on the op's path (~0.1 ms here). Nothing can
 * get ahead of the clear: the next record written to this file, which
 * any op's intent is, flushes the file and so the clear with it. */
int store_journal_clear_done(store_domain *d, vs_err *err)
{
  return journal_clear(d, 0, err);
}

int store_journal_pending(store_domain *d)
{
  json_t *j = NULL;
  int rc = store_journal_read(d, &j, &(vs_err){0});
  json_decref(j);
  return rc != VMSNAP_E_NOT_FOUND;
}

int store_check_no_journal(store_domain *d, vs_err *err)
{
  json_t *j = NULL;
  int rc = store_journal_read(d, &j, err);
  if (rc == VMSNAP_E_NOT_FOUND) return 0;
  if (rc) return rc;
  const char *op = jstr(j, "op");
  const char *snap = jstr(json_object_get(j, "snapshot"), "name");
  err_set(err, VMSNAP_E_NEEDS_RECOVER,
          "domain %s has an interrupted %s%s%s%s: run 'snapctl recover %s' to finish or roll "
          "it back first", d->name, op ? op : "operation", snap ? " of snapshot '" : "",
          snap ? snap : "", snap ? "'" : "", d->name);
  json_decref(j);
  return err->code;
}

uint64_t store_journal_seq(store_domain *d)
{
  if (legacy_present(d)) return UINT64_MAX;
  if (!d->journal_loaded) {
    char *text = NULL;
    if (journal_load(d, &text, &(vs_err){0})) return UINT64_MAX;
    free(text);
  }
  return d->journal_seq;
}

void store_journal_forget(store_domain *d)
{
  if (d->journal_fd >= 0) close(d->journal_fd);
  d->journal_fd = -1;
  unlinkat(d->dirfd, JOURNAL_NAME, 0);
}
