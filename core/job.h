/* job.h — one disk of one operation, and the services plugins get. */
#ifndef VMSNAP_JOB_H
#define VMSNAP_JOB_H

#include "internal.h"

struct vmsnap_job {
  vmsnap_op *op;
  size_t index;          /* position in the op's disk list (progress slot) */
  const plugin *pl;
  vmsnap_disk disk;      /* strings point into disk_doc */
  vmsnap_job_info info;
  json_t *disk_doc;      /* {target, source, format, backend, mode, file} */
  json_t *data;          /* backend data: key -> string */
  json_t *others;        /* [{uuid, key, value}] from set_other */
  json_t *siblings;      /* the domain's snapshot documents, for host->siblings */
  json_t *active_doc;    /* the domain's disk doc for this target (disk.active) */
  json_t *qmp_actions;   /* [{type, data}] from qmp_action */
  json_t *entries;       /* LIST results */
  char *object_name;
  const char **options;  /* disk.options: "key", "value"… NULL, into disk_doc */
  vs_err err;
  int rc;
};

/* Builds a job for a disk description (the "disks" entries of a snapshot
 * document); the data object is shared (reference taken). */
vmsnap_job *job_new(vmsnap_op *op, size_t index, const plugin *pl, json_t *disk_doc,
                    json_t *data, vmsnap_job_kind kind, const char *snap_name,
                    const char *snap_uuid, unsigned flags);
void job_free(vmsnap_job *job);

typedef enum job_step {
  STEP_PREPARE, STEP_CREATE, STEP_REMOVE, STEP_REVERT, STEP_REVERT_FINISH,
  STEP_REVERT_ABORT, STEP_LIST,
} job_step;

/* Runs one step of every job, one thread per job (disks in parallel).
 * Jobs whose plugin lacks an optional step succeed. Returns 0 when all
 * succeeded, else the first failing job's code with its message in err,
 * naming the disk. done[i] (if not NULL) tells which jobs succeeded. */
int jobs_run(vmsnap_job **jobs, size_t n, job_step step, int *done, vs_err *err);

#endif
