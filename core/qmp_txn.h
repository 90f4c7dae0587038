/* qmp_txn.h — one QMP transaction from every live disk's actions. */
#ifndef VMSNAP_QMP_TXN_H
#define VMSNAP_QMP_TXN_H

#include "job.h"

/* {"execute":"transaction","arguments":{"actions":[…]}} in job order, or
 * NULL when no job added an action. */
json_t *qmp_txn_build(vmsnap_job **jobs, size_t n);
/* Calls live_done of every job that added actions with QEMU's outcome
 * (rc 0 and its "return", or rc < 0). Returns the first plugin error. */
int qmp_txn_deliver(vmsnap_job **jobs, size_t n, int rc, json_t *reply, vs_err *err);

#endif
