/* domain_qmp.c — the `qmp:/path/to/qmp.sock` domain: a running QEMU.
 *
 * QEMU serves one monitor client at a time, so nothing holds the socket
 * beyond an op: a call connects, does its work and disconnects, except
 * while an op holds the domain (domain_hold, from when it has the
 * domain's lock until it lets it go), when its calls share one connection
 * — a live create made six connections before, each a greeting and a
 * capabilities negotiation. Disks come from query-block and are addressed
 * by node-name (Xen's device models and -blockdev setups leave the device
 * name empty). */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "names.h"
#include "qmp.h"

/* A ref's way to its monitor. The mutex is held for a whole call (or
 * block job): parallel disk jobs of one op take turns, as QEMU would
 * make them do anyway. */
typedef struct qmp_link {
  pthread_mutex_t mu;
  int holding;
  qmp_conn *kept; /* while holding, once a call has connected */
} qmp_link;

static int conn_get(domain_ref *d, qmp_conn **c, vs_err *err)
{
  qmp_link *l = d->priv;
  pthread_mutex_lock(&l->mu);
  if (l->kept) {
    *c = l->kept;
    return 0;
  }
  int rc = qmp_open(d->address, QMP_DEFAULT_TIMEOUT_MS, c, err);
  if (rc) {
    pthread_mutex_unlock(&l->mu);
    err_wrap(err, "domain %s: ", d->key);
    return rc;
  }
  if (l->holding) l->kept = *c;
  return 0;
}

/* A kept connection stays unless it died (the next call reconnects). */
static void conn_put(domain_ref *d, qmp_conn *c)
{
  qmp_link *l = d->priv;
  if (c == l->kept && !qmp_alive(c)) l->kept = NULL;
  if (c != l->kept) qmp_close(c);
  pthread_mutex_unlock(&l->mu);
}

static void qmp_hold(domain_ref *d, int on)
{
  qmp_link *l = d->priv;
  pthread_mutex_lock(&l->mu);
  l->holding = on;
  if (!on && l->kept) {
    qmp_close(l->kept);
    l->kept = NULL;
  }
  pthread_mutex_unlock(&l->mu);
}

static void qmp_dispose(domain_ref *d)
{
  qmp_link *l = d->priv;
  if (!l) return;
  qmp_hold(d, 0);
  pthread_mutex_destroy(&l->mu);
  free(l);
  d->priv = NULL;
}

static int qmp_one(domain_ref *d, const char *cmd, json_t *args, json_t **ret, vs_err *err)
{
  qmp_conn *c;
  int rc = conn_get(d, &c, err);
  if (rc) { json_decref(args); return rc; }
  rc = qmp_execute(c, cmd, args, 0, ret, err);
  conn_put(d, c);
  return rc;
}

/* QEMU holds its disks whatever the guest does: anything but running is
 * reported as paused, never as shutoff (that would invite offline work). */
static int qmp_state(domain_ref *d, const char **state, vs_err *err)
{
  qmp_conn *c;
  char *status = NULL;
  int rc = conn_get(d, &c, err);
  if (rc) return rc;
  rc = qmp_query_status(c, &status, err);
  conn_put(d, c);
  if (!rc) *state = strcmp(status, "running") == 0 ? "running" : "paused";
  free(status);
  return rc;
}

/* A target name from what QEMU says: the device, else the qdev id
 * ("/machine/peripheral/vda/virtio-backend" → "vda"), else the node. */
static char *target_of(json_t *dev, const char *node)
{
  const char *device = jstr(dev, "device"), *qdev = jstr(dev, "qdev");
  char buf[64] = "";
  if (device && *device) snprintf(buf, sizeof buf, "%s", device);
  else if (qdev && strstr(qdev, "/peripheral/")) {
    const char *id = strstr(qdev, "/peripheral/") + strlen("/peripheral/");
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(id, "/"), id);
  } else if (qdev && *qdev && !strchr(qdev, '/')) snprintf(buf, sizeof buf, "%s", qdev);
  else snprintf(buf, sizeof buf, "%s", node);
  for (char *p = buf; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      *p = '_';
  return xstrdup(buf);
}

static int qmp_disks(domain_ref *d, json_t **docs, vs_err *err)
{
  qmp_conn *c;
  json_t *devices = NULL;
  *docs = NULL;
  int rc = conn_get(d, &c, err);
  if (rc) return rc;
  rc = qmp_query_block(c, &devices, err);
  conn_put(d, c);
  if (rc) return rc;
  json_t *out = json_array();
  size_t i;
  json_t *dev;
  json_array_foreach(devices, i, dev) {
    json_t *ins = json_object_get(dev, "inserted");
    const char *node = jstr(ins, "node-name"), *file = jstr(ins, "file");
    /* read-only media (a CD-ROM) and empty drives are not the guest's disks */
    if (!ins || !node || !file || json_is_true(json_object_get(ins, "ro"))) continue;
    char *target = target_of(dev, node);
    json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "target", target,
                                         "source", file, "format", jstr(ins, "drv"),
                                         "node_name", node, "live", 1, "block_device", 0));
    free(target);
  }
  json_decref(devices);
  if (json_array_size(out) == 0) {
    json_decref(out);
    return err_set(err, VMSNAP_E_NOT_FOUND, "domain %s: QEMU serves no writable disk", d->key);
  }
  *docs = out;
  return 0;
}

static int job_cancelled(void *op) { return op_cancelled(op); }
static int always(void *unused) { (void)unused; return 1; }

static int qmp_run_job(domain_ref *d, const char *cmd, json_t *args, int complete_when_ready,
                       vmsnap_op *op, void (*progress)(void *, uint64_t, uint64_t), void *puser,
                       vs_err *err)
{
  char id[64];
  char uuid[37];
  uuid_new(uuid);
  snprintf(id, sizeof id, "vmsnap-%.8s", uuid);
  json_object_set_new(args, "job-id", json_string(id));
  json_object_set_new(args, "auto-dismiss", json_false());
  qmp_conn *c;
  int rc = conn_get(d, &c, err);
  if (rc) { json_decref(args); return rc; }
  rc = qmp_execute(c, cmd, args, 0, NULL, err);
  if (!rc) rc = qmp_wait_job(c, id, job_cancelled, op, progress, puser, err);
  if (rc == QMP_JOB_READY)
    rc = complete_when_ready ? qmp_job_complete(c, id, job_cancelled, op, progress, puser, err)
                             : qmp_wait_job(c, id, always, NULL, progress, puser, err);
  conn_put(d, c);
  return rc;
}

static const domain_driver qmp_driver = {
  .scheme = "qmp",
  .state = qmp_state,
  .disks = qmp_disks,
  .qmp = qmp_one,
  .qmp_job = qmp_run_job,
  .hold = qmp_hold,
  .dispose = qmp_dispose,
};

/* The store key: QEMU's UUID when it has one, else its -name, else the
 * socket path with '/' made '_'. */
static char *key_for(qmp_conn *c, const char *path)
{
  json_t *ret = NULL;
  vs_err ignore = {0};
  char *key = NULL;
  if (qmp_execute(c, "query-uuid", NULL, 0, &ret, &ignore) == 0) {
    const char *u = jstr(ret, "UUID");
    if (u && strcmp(u, "00000000-0000-0000-0000-000000000000") != 0) key = xasprintf("qmp-%s", u);
  }
  json_decref(ret);
  ret = NULL;
  if (!key && qmp_execute(c, "query-name", NULL, 0, &ret, &ignore) == 0 && jstr(ret, "name"))
    key = xasprintf("qmp-%s", jstr(ret, "name"));
  json_decref(ret);
  if (!key) {
    key = xasprintf("qmp%s", path);
    for (char *p = key; key && *p; p++)
      if (*p == '/') *p = '_';
  }
  return key;
}

int domain_qmp_resolve(vmsnap_ctx *ctx, const char *socket_path, domain_ref **out, vs_err *err)
{
  char real[PATH_MAX];
  if (!socket_path || socket_path[0] != '/')
    return err_set(err, VMSNAP_E_INVALID, "qmp:%s: give the absolute path of QEMU's QMP socket "
                   "(qmp:/path/to/qmp.sock)", socket_path ? socket_path : "");
  if (!realpath(socket_path, real)) {
    /* QEMU is gone: its snapshots are still there, as an offline domain. */
    if (domain_find_by_address(ctx, socket_path, out) == 0) return 0;
    return err_set(err, VMSNAP_E_NOT_FOUND, "qmp:%s: no such socket; is QEMU running with "
                   "-qmp unix:%s,server=on,wait=off?", socket_path, socket_path);
  }
  qmp_conn *c;
  int rc = qmp_open(real, QMP_DEFAULT_TIMEOUT_MS, &c, err);
  if (rc) return rc;
  char *key = key_for(c, real);
  qmp_close(c);
  if (!key) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  vs_err kerr = {0};
  if (name_validate(key, "domain key", &kerr)) {
    free(key);
    return err_set(err, VMSNAP_E_INVALID, "qmp:%s: cannot name this QEMU (%s); start it with "
                   "-uuid or -name", socket_path, kerr.msg);
  }
  domain_ref *d = calloc(1, sizeof *d);
  qmp_link *l = calloc(1, sizeof *l);
  if (!d || !l) {
    free(d);
    free(l);
    free(key);
    return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  }
  pthread_mutex_init(&l->mu, NULL);
  d->priv = l;
  d->drv = &qmp_driver;
  d->key = key;
  d->address = xstrdup(real);
  *out = d;
  return 0;
}
