/* engine.h — pieces the operations share. */
#ifndef VMSNAP_ENGINE_H
#define VMSNAP_ENGINE_H

#include "domain.h"
#include "job.h"
#include "store.h"

/* Jobs for every disk of a snapshot document; each job's data is the
 * disk's "data" object (shared, so host->set lands in the document). */
int jobs_for_snapshot(vmsnap_op *op, json_t *doc, json_t *snaps, vmsnap_job_kind kind,
                      unsigned flags, vmsnap_job ***jobsp, size_t *np, vs_err *err);
void jobs_free(vmsnap_job **jobs, size_t n);

/* Applies the set_other updates of jobs to the snapshot documents in
 * snaps and writes the changed ones, after recording them in the journal
 * (journal may be NULL when there is none). */
int apply_other_updates(store_domain *sd, json_t *snaps, vmsnap_job **jobs, size_t n,
                        json_t *journal, vs_err *err);
/* Applies [{uuid, target, key, value}] (idempotent; recover uses it). */
int apply_updates(store_domain *sd, json_t *snaps, json_t *updates, vs_err *err);

/* The result of create or revert: doc, now current. */
vmsnap_snapshot *snapshot_result(json_t *doc, json_t *snaps);
/* The same with the parent's name known already. */
vmsnap_snapshot *snapshot_result_named(json_t *doc, const char *parent_name);
/* {uuid: document} over an array of snapshot documents. */
json_t *snapshots_by_uuid(json_t *snaps);
/* A result snapshot for the user, with parent name (looked up in by_uuid,
 * from snapshots_by_uuid) and current flag. */
vmsnap_snapshot *snapshot_for_result(json_t *doc, json_t *by_uuid, const char *current_uuid);

json_t *journal_new(const char *op, json_t *snapshot_doc);
struct inuse_check;
/* Writes the journal, then waits for the in-use scan that ran meanwhile
 * (*inuse, taken; NULL: none): nothing on storage changes before its
 * verdict, and a refusal clears the journal again. */
int journal_begin(store_domain *sd, json_t *journal, struct inuse_check **inuse, vs_err *err);
/* Opens the domain for writing and refuses when a journal is pending.
 * *snapsp gets every document, or with family (a snapshot name) only that
 * snapshot's and its children's when the index can tell (*family_only). */
int open_for_write(vmsnap_op *op, const char *family, domain_ref **domp, store_domain **sdp,
                   json_t **snapsp, int *family_only);
/* Undoes open_for_write: lets the monitor go, then the domain's lock. */
void close_for_write(vmsnap_op *op, domain_ref *dom, store_domain *sd);
int snapshot_has_children(json_t *snaps, const char *uuid);
/* The snapshot named name, made whole; NULL with err set when none. */
json_t *find_snapshot(store_domain *sd, json_t *snaps, const char *domain, const char *name,
                      vs_err *err);

/* Removes one snapshot's storage objects (unless metadata_only), re-parents
 * its children, moves "current", removes its document. Idempotent. */
int delete_one(vmsnap_op *op, store_domain *sd, json_t *snaps, int family_only,
               json_t *journal, const char *uuid, unsigned job_flags, int metadata_only,
               vs_err *err);

#endif
