/* qemu_img.c — running qemu-img for a job, reading its JSON, and turning
 * its failures into messages a person can act on; reading the snapshot
 * table and checking the image in-process (image.c) instead, where it can. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The image for qemu-img, format forced and no backing chain opened:
 * json:{"driver":"qcow2","backing":null,"file":{"driver":"file","filename":P}} */
static char *make_spec(const char *image, int is_block)
{
  json_t *o = json_pack("{s:s, s:n, s:{s:s, s:s}}", "driver", "qcow2", "backing", "file", "driver",
                        is_block ? "host_device" : "file", "filename", image);
  char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  char *spec = NULL;

  json_decref(o);
  if (text && asprintf(&spec, "json:%s", text) < 0) spec = NULL;
  free(text);
  return spec;
}

/* Resolves the image: the one recorded in the backend data ("image": an
 * internal snapshot's), else where the disk is now (an external snapshot's
 * disk moves on when a live one makes a new active image), else the
 * disk's source. Returns 0, 1 when it does not exist and
 * missing_ok (no message), or an error. */
int q2_job_init(q2_job *j, vmsnap_job *job, const vmsnap_job_info *info, int missing_ok)
{
  const vmsnap_host *h = info->host;
  const char *want = h->get(job, "image");
  struct stat sb;

  memset(j, 0, sizeof(*j));
  j->job = job;
  j->host = h;
  j->info = info;
  const vmsnap_disk *d = info->disk;
  if (!want && d->struct_size >= offsetof(vmsnap_disk, active) + sizeof(d->active)) want = d->active;
  if (!want) want = d->source;
  if (!realpath(want, j->image) || stat(j->image, &sb) < 0) {
    int err = errno;
    if (err == ENOENT && missing_ok) return 1;
    return h->error(job, err == ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND,
                    "cannot access the qcow2 image %s: %s; check the disk's path%s", want,
                    strerror(err), err == ENOENT ? " (was the image moved or deleted?)" : "");
  }
  if (!S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode))
    return h->error(job, VMSNAP_E_UNSUPPORTED,
                    "%s is neither a regular file nor a block device; the qcow2 backend "
                    "takes qcow2 images in files or on block devices",
                    j->image);
  j->is_block = S_ISBLK(sb.st_mode);
  j->spec = make_spec(j->image, j->is_block);
  /* jansson takes UTF-8 only, and qemu-img's json: names need it. */
  if (!j->spec)
    return h->error(job, VMSNAP_E_INVALID,
                    "cannot name %s to qemu-img: its path is not valid UTF-8 (or memory ran "
                    "out); give the image a UTF-8 path",
                    j->image);
  return 0;
}

/* A job like j on another image of the same disk (a layer of its chain). */
int q2_job_rebind(q2_job *sub, const q2_job *j, const char *image)
{
  struct stat sb;

  *sub = *j;
  sub->spec = NULL;
  snprintf(sub->image, sizeof(sub->image), "%s", image);
  if (stat(image, &sb) < 0) {
    int err = errno;
    return j->host->error(j->job, err == ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND,
                          "cannot access the qcow2 image %s: %s", image, strerror(err));
  }
  sub->is_block = S_ISBLK(sb.st_mode);
  sub->spec = make_spec(sub->image, sub->is_block);
  return sub->spec ? 0 : j->host->error(j->job, VMSNAP_E_INVALID,
                                        "cannot name %s to qemu-img: its path is not valid "
                                        "UTF-8",
                                        image);
}

void q2_job_dispose(q2_job *j)
{
  free(j->spec);
  j->spec = NULL;
}

/* Runs qemu-img; 0 when it ran (see r->exit_status), else the spawn error
 * (VMSNAP_E_CANCELLED when the op was cancelled). Free r->out. */
int q2_run(q2_job *j, const char *const argv[], int capture, vmsnap_spawn_result *r)
{
  static const char *const env[] = {"LC_ALL=C", NULL};
  vmsnap_spawn_opts opts = {.struct_size = sizeof(opts), .capture_stdout = capture, .env_add = env};

  memset(r, 0, sizeof(*r));
  r->struct_size = sizeof(*r);
  return j->host->spawn(j->job, argv, &opts, r);
}

/* qemu-img's stderr, readable: our json: spec shown as the plain path, the
 * "qemu-img: " prefixes dropped, lines joined, ends trimmed. */
static void clean_tail(const q2_job *j, const char *tail, char *buf, size_t len)
{
  size_t n = 0, slen = strlen(j->spec);
  const char *p = tail;

  while (*p && n + 1 < len) {
    if (strncmp(p, j->spec, slen) == 0) {
      n += (size_t)snprintf(buf + n, len - n, "%s", j->image);
      if (n >= len) n = len - 1;
      p += slen;
    } else if ((p == tail || p[-1] == '\n') && strncmp(p, "qemu-img: ", 10) == 0) {
      p += 10;
    } else if (*p == '\n' || *p == '\r') {
      if (n > 0 && buf[n - 1] != ' ') buf[n++] = ' ';
      p++;
    } else {
      buf[n++] = *p++;
    }
  }
  while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
  buf[n] = '\0';
  if (n == 0) snprintf(buf, len, "no message from qemu-img");
}

static int classify(const char *why)
{
  if (strstr(why, "lock") &&
      (strstr(why, "Failed to get") || strstr(why, "Is another process using")))
    return VMSNAP_E_BUSY;
  if (strstr(why, "not in qcow2 format")) return VMSNAP_E_INVALID;
  if (strstr(why, "No space left on device")) return VMSNAP_E_NOSPC;
  if (strstr(why, "No such file or directory")) return VMSNAP_E_NOT_FOUND;
  return VMSNAP_E_BACKEND;
}

static int not_qcow2(q2_job *j, const char *what, const char *why, const char *hint)
{
  return j->host->error(j->job, VMSNAP_E_INVALID,
                        "%s: %s is not a qcow2 image (%s), yet the disk is declared "
                        "format=qcow2; if it is a raw image, declare it with format=raw "
                        "(vmsnap never guesses a format); %s",
                        what, j->image, why, hint);
}

static int in_use(q2_job *j, const char *what, const char *why, const char *hint)
{
  return j->host->error(j->job, VMSNAP_E_BUSY,
                        "%s: %s is in use by another process (a running QEMU?): %s; stop "
                        "that process, or snapshot the disk through the hypervisor that "
                        "runs it; %s",
                        what, j->image, why, hint);
}

/* what: "cannot take snapshot X of IMG"; hint: what to do about it. */
int q2_tool_error(q2_job *j, const vmsnap_spawn_result *r, const char *what, const char *hint)
{
  char why[sizeof(r->err_tail) + PATH_MAX];

  if (r->exit_status < 0)
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: qemu-img was killed by signal %d; %s",
                          what, r->term_signal, hint);
  clean_tail(j, r->err_tail, why, sizeof(why));
  switch (classify(why)) {
  case VMSNAP_E_BUSY:
    return in_use(j, what, why, hint);
  case VMSNAP_E_INVALID:
    return not_qcow2(j, what, why, hint);
  case VMSNAP_E_NOSPC:
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "%s: %s; free some space on the filesystem of %s; %s", what, why,
                          j->image, hint);
  case VMSNAP_E_NOT_FOUND:
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND, "%s: %s; %s", what, why, hint);
  default:
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: %s; %s", what, why, hint);
  }
}

static char *dup_str(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  return strdup(s ? s : "");
}

static int parse_info(const char *text, q2_info *out)
{
  json_t *root = json_loads(text ? text : "", 0, NULL);
  json_t *snaps, *s;
  size_t i;

  if (!json_is_object(root)) {
    json_decref(root);
    return -1;
  }
  out->virtual_size = (uint64_t)json_integer_value(json_object_get(root, "virtual-size"));
  out->cluster_size = (uint64_t)json_integer_value(json_object_get(root, "cluster-size"));
  json_t *data = json_object_get(json_object_get(root, "format-specific"), "data");
  out->corrupt = json_is_true(json_object_get(data, "corrupt"));
  if (json_is_string(json_object_get(root, "backing-filename")))
    out->backing = dup_str(root, "backing-filename");
  if (json_is_string(json_object_get(root, "backing-filename-format")))
    out->backing_fmt = dup_str(root, "backing-filename-format");
  snaps = json_object_get(root, "snapshots");
  out->snaps = calloc(json_array_size(snaps) + 1, sizeof(*out->snaps));
  if (!out->snaps) {
    json_decref(root);
    return -1;
  }
  json_array_foreach(snaps, i, s)
  {
    q2_snap *q = &out->snaps[out->n++];
    q->id = dup_str(s, "id");
    q->name = dup_str(s, "name");
    q->vm_state_size = (uint64_t)json_integer_value(json_object_get(s, "vm-state-size"));
    q->date_sec = json_integer_value(json_object_get(s, "date-sec"));
    q->date_nsec = json_integer_value(json_object_get(s, "date-nsec"));
    if (!q->id || !q->name) {
      json_decref(root);
      return -1;
    }
  }
  json_decref(root);
  return 0;
}

/* qemu-img info: the snapshot table and a few facts. force_share (-U)
 * reads an image a running QEMU holds (list only: it changes nothing). */
static int info_by_qemu_img(q2_job *j, int force_share, const char *what, const char *hint,
                            q2_info *out)
{
  const char *argv[] = {"qemu-img",
                        "info",
                        "--output=json",
                        "-f",
                        "qcow2",
                        force_share ? "-U" : j->spec,
                        force_share ? j->spec : NULL,
                        NULL};
  vmsnap_spawn_result r;
  char ctx[PATH_MAX + 256];
  int rc;

  memset(out, 0, sizeof(*out));
  rc = q2_run(j, argv, 1, &r);
  snprintf(ctx, sizeof(ctx), "%s: qemu-img info", what);
  if (rc == 0 && r.exit_status != 0)
    rc = q2_tool_error(j, &r, ctx, hint);
  else if (rc == 0 && parse_info(r.out, out) < 0) {
    q2_info_free(out);
    rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s printed no JSON vmsnap can read for %s; check that qemu-img "
                        "works (qemu-img info -f qcow2 %s); %s",
                        ctx, j->image, j->image, hint);
  }
  free(r.out);
  return rc;
}

/* The first ERROR line of qemu-img check's stderr, as an example. */
static void first_error(const q2_job *j, const char *tail, char *buf, size_t len)
{
  const char *e = strstr(tail, "ERROR");
  size_t n = e ? strcspn(e, "\n") : 0;

  if (!e)
    snprintf(buf, len, "no detail");
  else
    snprintf(buf, len, "%.*s", (int)(n < 200 ? n : 200), e);
}

/* qemu-img check: an image qemu-img info still reads may be truncated or
 * damaged, and a snapshot written into it would make it worse. Leaked
 * clusters are harmless. end_offset (may be NULL): the image's end. */
static int check_by_qemu_img(q2_job *j, const char *what, uint64_t *end_offset)
{
  const char *argv[] = {"qemu-img", "check", "--output=json", "-f", "qcow2", j->spec, NULL};
  vmsnap_spawn_result r;
  char ctx[PATH_MAX + 256], example[256];
  int rc = q2_run(j, argv, 1, &r);
  json_t *root = NULL;

  if (rc < 0) goto out;
  root = json_loads(r.out ? r.out : "", 0, NULL);
  json_int_t corruptions = json_integer_value(json_object_get(root, "corruptions"));
  json_int_t errors = json_integer_value(json_object_get(root, "check-errors"));
  json_int_t leaks = json_integer_value(json_object_get(root, "leaks"));
  if (end_offset)
    *end_offset = (uint64_t)json_integer_value(json_object_get(root, "image-end-offset"));
  snprintf(ctx, sizeof(ctx), "%s: qemu-img check", what);
  switch (r.exit_status) {
  case 0:
    break;
  case 3: /* leaked clusters only: wasted space, no harm */
    j->host->log(j->job, VMSNAP_LOG_INFO,
                 "%s has %lld leaked cluster(s); `qemu-img check -r leaks -f qcow2 %s` "
                 "reclaims them",
                 j->image, (long long)leaks, j->image);
    break;
  case 2:
    first_error(j, r.err_tail, example, sizeof(example));
    rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                        "%s: %s is damaged (truncated or corrupt): qemu-img check found %lld "
                        "corruption(s), e.g. \"%s\"; nothing was changed; inspect it with "
                        "`qemu-img check -f qcow2 %s`, then restore it from a backup or "
                        "repair it (`-r all`, after copying it)",
                        what, j->image, (long long)corruptions, example, j->image);
    break;
  case 1:
    if (json_is_object(root)) {
      first_error(j, r.err_tail, example, sizeof(example));
      rc = j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: qemu-img check could not read all of %s (%lld error(s), e.g. "
                          "\"%s\"); nothing was changed; the image may be truncated or "
                          "unreadable: check it with `qemu-img check -f qcow2 %s`",
                          what, j->image, (long long)errors, example, j->image);
      break;
    }
    /* it could not even open the image */
    __attribute__((fallthrough));
  default:
    rc = q2_tool_error(j, &r, ctx, "nothing was changed");
  }
out:
  json_decref(root);
  free(r.out);
  return rc;
}

/* ---- in-process: image.c ----------------------------------------------- */

/* The snapshot table and the checks are read by image.c, not qemu-img (a
 * qemu-img start costs ~5 ms, its check walks every snapshot). qemu-img
 * still decides when image.c cannot: the image cannot be opened (its
 * error messages and their classification stay the same), or it has a
 * version or feature image.c does not know (a newer qemu-img may).
 *
 * force_share: the image may be one a running QEMU holds. Reading it is
 * safe (read-only, no lock taken, as qemu-img info -U), but QEMU may be
 * rewriting the snapshot table meanwhile (it writes the new table, then
 * the header pointing to it): a torn read looks damaged, so it is read
 * once more before it is called damaged. Without force_share the image is
 * refused as qemu-img info would refuse it: while another process holds
 * QEMU's lock on it for writing. */

#define Q2_IMG_BUSY (-100)

/* One read of the image: its info, and the cheap check when check is set
 * (1: always, 2: unless QEMU marked it corrupt, which the caller reports).
 * A Q2_IMG_* code, or Q2_IMG_BUSY; why says why. */
static int inspect(q2_job *j, int force_share, int check, q2_info *out, uint64_t *end_offset,
                   char *why, size_t len)
{
  q2_image img;
  int rc;

  for (int tries = 0;; tries++) {
    memset(out, 0, sizeof(*out));
    rc = q2_image_open(&img, j->image, why, len);
    if (rc == 0 && !force_share && q2_image_in_use(&img)) {
      snprintf(why, len, "another process holds QEMU's lock on it for writing");
      rc = Q2_IMG_BUSY;
    }
    if (rc == 0) rc = q2_image_info(&img, out, why, len);
    if (rc == 0 && (check == 1 || (check == 2 && !out->corrupt))) {
      if ((rc = q2_image_check(&img, why, len)) == 0 && end_offset)
        *end_offset = q2_image_end(&img);
      if (rc == 0 && out->dirty)
        j->host->log(j->job, VMSNAP_LOG_INFO,
                     "%s was not closed cleanly (lazy refcounts); qemu-img repairs its "
                     "refcounts when it opens it",
                     j->image);
    }
    if (rc < 0) q2_info_free(out);
    q2_image_close(&img);
    if (rc != Q2_IMG_DAMAGED || !force_share || tries > 0) return rc;
  }
}

/* An inspect failure as the op's error. hint NULL: a check's failure
 * (nothing was changed; restore or repair it). */
static int inspect_error(q2_job *j, int rc, const char *what, const char *why, const char *hint)
{
  switch (rc) {
  case Q2_IMG_BUSY:
    return in_use(j, what, why, hint ? hint : "nothing was changed");
  case Q2_IMG_NOT_QCOW2:
    return not_qcow2(j, what, why, hint ? hint : "nothing was changed");
  case Q2_IMG_DAMAGED:
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s: %s is damaged (truncated or corrupt): %s; %sinspect it with "
                          "`qemu-img check -f qcow2 %s`, then restore it from a backup or "
                          "repair it (`-r all`, after copying it)%s%s",
                          what, j->image, why, hint ? "" : "nothing was changed; ", j->image,
                          hint ? "; " : "", hint ? hint : "");
  default: /* Q2_IMG_NOMEM */
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: %s; %s", what, why,
                          hint ? hint : "nothing was changed");
  }
}

/* Cannot open or read it, or a format image.c does not read: qemu-img's. */
static int use_qemu_img(int rc)
{
  return rc == Q2_IMG_IO || rc == Q2_IMG_UNSUPPORTED;
}

int q2_info_read(q2_job *j, int force_share, const char *what, const char *hint, q2_info *out)
{
  char why[512];
  int rc = inspect(j, force_share, 0, out, NULL, why, sizeof(why));

  if (rc == 0) return 0;
  if (use_qemu_img(rc)) return info_by_qemu_img(j, force_share, what, hint, out);
  return inspect_error(j, rc, what, why, hint);
}

/* Whether the image is intact enough to take or apply a snapshot: a
 * cheap stand-in for qemu-img check (see q2_image_check): the header,
 * every table inside the file, every cluster the active L1 maps inside
 * the file, and QEMU's corrupt mark. Refcounts are not counted, so leaks
 * and refcount errors go unnoticed (QEMU repairs those itself when it
 * opens an image marked dirty). */
int q2_check(q2_job *j, const char *what, uint64_t *end_offset)
{
  char why[512];
  q2_info inf;
  int rc = inspect(j, 0, 1, &inf, end_offset, why, sizeof(why));

  if (rc == 0) q2_info_free(&inf);
  if (rc == 0) return 0;
  if (use_qemu_img(rc)) return check_by_qemu_img(j, what, end_offset);
  return inspect_error(j, rc, what, why, NULL);
}

/* q2_info_read and q2_check in one read of the image, for prepare. An
 * image QEMU marked corrupt is returned unchecked, with inf->corrupt set
 * (the caller refuses it). */
int q2_info_check(q2_job *j, const char *what, q2_info *out, uint64_t *end_offset)
{
  char why[512];
  int rc = inspect(j, 0, 2, out, end_offset, why, sizeof(why));

  if (rc == 0) return 0;
  if (!use_qemu_img(rc)) return inspect_error(j, rc, what, why, NULL);
  if ((rc = info_by_qemu_img(j, 0, what, "nothing was changed", out)) < 0 || out->corrupt)
    return rc;
  return check_by_qemu_img(j, what, end_offset);
}

/* ---- qemu-img snapshot ---------------------------------------------------- */

/* qemu-img snapshot FLAG ARG IMAGE (-c TAG, -a ID, -d TAG). */
int q2_snapshot_cmd(q2_job *j, const char *flag, const char *arg, const char *what,
                    const char *hint)
{
  const char *argv[] = {"qemu-img", "snapshot", "-q", flag, arg, j->spec, NULL};
  vmsnap_spawn_result r;
  int rc = q2_run(j, argv, 0, &r);

  if (rc == 0 && r.exit_status != 0) rc = q2_tool_error(j, &r, what, hint);
  free(r.out);
  return rc;
}
