/* qmp_txn.c — merges the QMP transaction actions that plugins return for
 * live disks into ONE `transaction` command, so all disks of a snapshot are
 * taken at the same instant, and hands each plugin the outcome. The qmp
 * domain driver submits it over its single monitor connection. */
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "qmp_txn.h"

json_t *qmp_txn_build(vmsnap_job **jobs, size_t n)
{
  json_t *actions = json_array();
  for (size_t i = 0; i < n; i++) {
    size_t k;
    json_t *a;
    json_array_foreach(jobs[i]->qmp_actions, k, a)
      json_array_append_new(actions, json_pack("{s:O, s:O}", "type", json_object_get(a, "type"),
                                               "data", json_object_get(a, "data")));
  }
  if (json_array_size(actions) == 0) {
    json_decref(actions);
    return NULL;
  }
  return json_pack("{s:s, s:{s:o}}", "execute", "transaction", "arguments", "actions", actions);
}

int qmp_txn_deliver(vmsnap_job **jobs, size_t n, int rc, json_t *reply, vs_err *err)
{
  char *ret = reply ? json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  int first = 0;
  for (size_t i = 0; i < n; i++) {
    vmsnap_job *j = jobs[i];
    if (!json_array_size(j->qmp_actions) || !j->pl->ops.live_done) continue;
    int r = j->pl->ops.live_done(j, &j->info, rc, rc ? NULL : ret);
    if (r && !first) {
      first = r;
      err_set(err, r, "disk %s (backend %s): %s", j->disk.target, j->pl->ops.name,
              j->err.code ? j->err.msg : vmsnap_strerror(r));
    }
  }
  free(ret);
  return first;
}
