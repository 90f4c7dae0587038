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

#include "internal.h"

typedef struct store_domain {
  vmsnap_ctx *ctx;
  char *name;     /* the domain key (validated) */
  char *dir;      /* <state>/domains/<name> */
  int dirfd;
  int snapdirfd;  /* <dir>/snapshots */
  int lockfd;     /* -1 when opened read-only */
  json_t *doc;    /* domain.json, or a fresh one */
} store_domain;

enum { STORE_READ = 0, STORE_WRITE = 1, STORE_CREATE = 2 };

/* Opens a domain. STORE_WRITE takes the domain lock (BUSY when another
 * operation holds it); STORE_CREATE also makes the directories. A domain
 * that was never used is NOT_FOUND unless STORE_CREATE. */
int store_open(vmsnap_ctx *ctx, const char *domain, int mode,
               store_domain **out, vs_err *err);
void store_close(store_domain *d);
int store_write_domain(store_domain *d, vs_err *err);

/* Every snapshot document of the domain, ordered by creation time. */
int store_load_snapshots(store_domain *d, json_t **arr, vs_err *err);
int store_write_snapshot(store_domain *d, json_t *doc, vs_err *err);
int store_remove_snapshot(store_domain *d, const char *uuid, vs_err *err);
json_t *store_find_by_name(json_t *arr, const char *name);
json_t *store_find_by_uuid(json_t *arr, const char *uuid);

/* The journal: the intent of the operation in flight. */
int store_journal_read(store_domain *d, json_t **journal, vs_err *err);
int store_journal_write(store_domain *d, json_t *journal, vs_err *err);
int store_journal_clear(store_domain *d, vs_err *err);
/* NEEDS_RECOVER with a message when a journal is left from a crash. */
int store_check_no_journal(store_domain *d, vs_err *err);

/* Names of every domain in the state dir. */
int store_list_domains(vmsnap_ctx *ctx, json_t **names, vs_err *err);

/* fs helpers */
int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len,
                    mode_t mode, vs_err *err);
int fs_write_json(int dirfd, const char *name, json_t *doc, vs_err *err);
int fs_read_json(int dirfd, const char *name, json_t **out, vs_err *err);
int fs_mkdir_p(const char *path, mode_t mode, vs_err *err);

#endif
