/* store.h — the metadata store: one JSON document per snapshot under
 * <state>/domains/<domain>/ (dirs 0700, files 0600), the domain's own
 * document (remembered disks, current snapshot), the journal, and a lock.
 *
 * Writes are atomic: temp file + fsync + rename + fsync(dir), so a reader
 * sees the old document or the new one, never half of one. Writers of a
 * domain are serialised by flock on <domain>/lock, held by the open handle.
 */
#ifndef VMSNAP_STORE_H
#define VMSNAP_STORE_H

#include <sys/stat.h>

#include "internal.h"

/* Independent atomic writes made durable together (fs_batch_*): every
 * temporary file is written, then all are flushed, renamed in the order
 * they were written, and each directory flushed once, after the last
 * rename into it, so a journaling filesystem commits them in one go
 * instead of one commit per file. A crash leaves each file old or new on
 * its own: only writes that the journal covers in any combination may
 * share a batch. Since the renames keep their order, the last write in
 * place means every other one is too: it can be an op's commit record. */
#define FS_BATCH_MAX 64
typedef struct fs_batch_item {
  int dirfd;
  char *name;
  int fd; /* the written, not yet flushed temporary file (none: a link) */
  int unnamed; /* fd has no name yet: linked as name when installed */
} fs_batch_item;
typedef struct fs_batch {
  fs_batch_item items[FS_BATCH_MAX];
  size_t n;
  const char *before_last; /* crash point between the last rename and the others */
} fs_batch;

typedef struct store_known store_known; /* store_index.c */
typedef struct store_entry store_entry;

typedef struct store_domain {
  vmsnap_ctx *ctx;
  char *name;     /* the domain key (validated) */
  char *dir;      /* <state>/domains/<name> */
  int dirfd;
  int snapdirfd;  /* <dir>/snapshots */
  int lockfd;     /* -1 when opened read-only */
  json_t *doc;    /* domain.json, or a fresh one; "current" from snapshots/.current */
  int fresh;      /* there was no domain.json: the domain records nothing yet */
  /* What is on disk, so that only what changed is written: domain.json
   * without "current" (NULL: none, or unknown) and .current's target
   * (NULL: no link, or unknown). */
  json_t *doc_written;
  char *current_written;
  fs_batch batch; /* writes held back between store_batch_begin and _commit */
  int batching;
  json_t *batch_docs; /* {file: uuid, name, parent, ctime} of the batch's documents */

  /* snapshots/.index (store_index.c) */
  store_known *known; /* what the index says of each file, sorted by file */
  size_t nknown;
  char *index_text;   /* the index read (known's strings point into it) */
  int index_complete; /* known describes every document file */
  int index_dirty;    /* the index on disk is missing or out of date */
  int index_dropped;  /* out of its name before this session's first change */
  int index_read_ok;  /* known came from an intact index file */
  int index_rewrite;  /* known changed in ways the log does not hold: write it whole */
  int index_aside;    /* the index read waits as .index.w, to be appended to */
  size_t index_records;     /* records appended to the file read */
  size_t index_records_new; /* this session's, in index_log */
  size_t index_head_len;    /* its header line, stamp included */
  uint64_t index_seq;       /* the journal's sequence when it was written */
  char *index_log;          /* this session's records, for appending */
  size_t index_log_len, index_log_cap;
  /* The snapshots directory as the index's writer left it (inode, mtime,
   * ctime): while it is unchanged, no file was added, removed or replaced
   * since, and the index is taken without a look at each file. */
  struct stat index_dirstat;
  int index_stamped;
  store_entry *ents;  /* every document loaded, light or whole */
  size_t nents, capents;
  int all_expanded;
  size_t nwhole;      /* how many of ents are whole */
  size_t nents_before; /* ents when the load in progress began */
  store_entry **ents_by_doc; /* ents sorted by document, for host->siblings */
  int ents_sorted;
  pthread_mutex_t ents_lock; /* host->siblings runs on job threads */
  json_t *snaps;      /* every document, once an op needed them (store_snapshots) */
  pthread_mutex_t snaps_lock;

  /* <dir>/journal (store_journal.c): which slot holds the record in
   * force, its seq, the slot size; read once under the lock. */
  int journal_fd;
  int journal_loaded;
  int journal_cur;
  uint64_t journal_seq;
  size_t journal_slot_size;
} store_domain;

enum { STORE_READ = 0, STORE_WRITE = 1, STORE_CREATE = 2 };

/* Opens a domain. STORE_WRITE takes the domain lock (BUSY when another
 * operation holds it); STORE_CREATE also makes the directories. A domain
 * that was never used is NOT_FOUND unless STORE_CREATE. */
int store_open(vmsnap_ctx *ctx, const char *domain, int mode,
               store_domain **out, vs_err *err);
void store_close(store_domain *d);
/* Removes what store_open made for a domain that still records nothing
 * (no domain.json, no journal, no document): a refused first create
 * leaves no trace. Call before store_close; writers waiting for the lock
 * open the domain afresh. */
void store_forget_fresh(store_domain *d);
/* Removes what a crash inside a batch left uninstalled (recover). */
void store_remove_temps(store_domain *d);
/* Removes domain.json and .current (durably) and makes d fresh again: recover undoing
 * the domain's first create. */
int store_forget_domain_doc(store_domain *d, vs_err *err);
/* The disks domain.json remembers, read without the lock (its writes are
 * atomic): a hint for choosing backends before the domain is opened. NULL
 * when there are none. */
json_t *store_peek_disks(vmsnap_ctx *ctx, const char *domain);
/* Writes what changed of d->doc: "current" as the link snapshots/.current
 * (made durable by the snapshots directory's flush alone: a create writes
 * nothing in the domain directory), the rest as domain.json. */
int store_write_domain(store_domain *d, vs_err *err);

/* Between these, store_write_snapshot and store_write_domain only write
 * temporary files; commit makes them all durable at once, installed in
 * the order written (see fs_batch). Anything that must follow them in
 * time (removing a document, clearing the journal) comes after the
 * commit. */
void store_batch_begin(store_domain *d);
/* The batch's last write is the op's commit record: the crash point
 * (tests) fires once every other write is installed, before it. */
void store_batch_commit_record(store_domain *d, const char *crashpoint_before);
/* Commits the batch when rc is 0, else drops its temporary files;
 * returns the first error. */
int store_batch_end(store_domain *d, int rc, vs_err *err);

/* Every snapshot document of the domain, ordered by creation time. A
 * document may be LIGHT: only uuid, name and parent until store_doc
 * reads the rest (store_write_snapshot does it itself). */
int store_load_snapshots(store_domain *d, json_t **arr, vs_err *err);
/* The snapshot named name, whole, and its children (whole too, ordered by
 * creation time), read alone when the index describes the directory as it
 * is: an op on one snapshot reads its documents, not every one. Returns 1
 * with *arr set (empty when there is no such snapshot), 0 when every
 * document must be loaded instead, or an error. Documents loaded later by
 * the same store are these same objects. */
int store_load_family(store_domain *d, const char *name, json_t **arr, vs_err *err);
/* store_load_snapshots on first need, then the same array again (a new
 * reference): for an op that may need no more than the index tells
 * (store_index_trusted). Thread-safe. */
int store_snapshots(store_domain *d, json_t **arr, vs_err *err);
/* Makes doc (from store_load_snapshots of d) whole; others are left
 * alone. Thread-safe. */
int store_doc(store_domain *d, json_t *doc, vs_err *err);
/* Makes every loaded document whole (list). Thread-safe. */
int store_docs_all(store_domain *d, vs_err *err);
/* host->siblings over docs (from store_load_snapshots of d): fn for every
 * disk of target and backend of every document but self, with its string
 * backend data as NULL-terminated key, value pairs. Light documents are
 * answered from the index, never read. Thread-safe. */
typedef int store_sibling_fn(void *user, const char *uuid, const char *name,
                             const char *const *kv);
int store_siblings(store_domain *d, json_t *docs, const char *self, const char *target,
                   const char *backend, store_sibling_fn *fn, void *user);
/* The same for one whole document. */
int store_doc_siblings(json_t *doc, const char *target, const char *backend,
                       store_sibling_fn *fn, void *user);
int store_write_snapshot(store_domain *d, json_t *doc, vs_err *err);
int store_remove_snapshot(store_domain *d, const char *uuid, vs_err *err);
json_t *store_find_by_name(json_t *arr, const char *name);
json_t *store_find_by_uuid(json_t *arr, const char *uuid);

/* store_journal.c: the intent of the operation in flight. Read gives
 * NOT_FOUND when there is none; write and clear are durable on return. */
int store_journal_read(store_domain *d, json_t **journal, vs_err *err);
int store_journal_write(store_domain *d, json_t *journal, vs_err *err);
int store_journal_clear(store_domain *d, vs_err *err);
/* The clear of an op whose outcome recover tells from the state itself
 * (a create's document in place, a delete's victims gone): written, not
 * waited for. A power cut that loses it makes recover find the op done. */
int store_journal_clear_done(store_domain *d, vs_err *err);
/* NEEDS_RECOVER with a message when a journal is left from a crash. */
int store_check_no_journal(store_domain *d, vs_err *err);
int store_journal_pending(store_domain *d); /* an intent, or a damaged journal */
void store_journal_forget(store_domain *d); /* removes the (cleared) file */
/* The sequence number of the journal's record in force (0: no journal
 * file; UINT64_MAX: unreadable, or a legacy journal.json): changes with
 * every journaled operation, durably. */
uint64_t store_journal_seq(store_domain *d);

/* Names of every domain in the state dir. */
int store_list_domains(vmsnap_ctx *ctx, json_t **names, vs_err *err);

/* store_index.c: the index behind store_load_snapshots. A document as
 * loaded, with the creation time and name it is ordered by (a light one
 * has no ctime until made whole; name lives until the next load). */
typedef struct store_loaded {
  json_t *doc;
  int64_t sec, nsec;
  const char *name;
} store_loaded;
int store_index_load(store_domain *d, store_loaded **docs, size_t *n, vs_err *err);
/* Reads the index and makes no document: 1 when it describes the
 * snapshots directory as it is, so the lookups below answer for every
 * document; 0 when the documents must be loaded to know. */
int store_index_trusted(store_domain *d);
const char *store_index_uuid_named(store_domain *d, const char *name); /* NULL: none */
const char *store_index_name_of(store_domain *d, const char *uuid);    /* NULL: none */
/* store_load_family's documents, unordered: 1, or 0 when the index is
 * not trusted (and nothing is loaded). */
int store_index_family(store_domain *d, const char *name, store_loaded **docs, size_t *n,
                       vs_err *err);
void store_index_changing(store_domain *d); /* before a document changes */
void store_index_written(store_domain *d, const char *file, json_t *doc);
void store_index_removed(store_domain *d, const char *file);
void store_index_save(store_domain *d);     /* a writer, at close */
void store_index_free(store_domain *d);

/* fs helpers */
int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len,
                    mode_t mode, vs_err *err);
int fs_write_json(int dirfd, const char *name, json_t *doc, vs_err *err);
/* name, a symbolic link to target, replaced atomically and durably. */
int fs_write_link(int dirfd, const char *name, const char *target, vs_err *err);
/* Writes the temporary file of name now; fs_batch_commit installs it. */
int fs_batch_json(fs_batch *b, int dirfd, const char *name, json_t *doc, vs_err *err);
int fs_batch_link(fs_batch *b, int dirfd, const char *name, const char *target, vs_err *err);
int fs_batch_commit(fs_batch *b, vs_err *err);
void fs_batch_discard(fs_batch *b); /* removes the temporary files */
int fs_read_json(int dirfd, const char *name, json_t **out, vs_err *err);
/* Removes the temporary files (.<name>.tmp) a crash left in dirfd: only a
 * writer, the lock held, may. */
void fs_remove_temps(int dirfd);
int fs_mkdir_p(const char *path, mode_t mode, vs_err *err);
uint64_t fs_checksum(const char *s, size_t n);

#endif
