/* run.c — running lvm(8) for a job (host->spawn, argv only), reading its
 * JSON reports, and turning its failures into messages a person can act
 * on. */
#include "lvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines lvm prints on stderr that explain nothing about a failure. */
static int noise(const char *line)
{
  static const char *const skip[] = {
    "WARNING: Sum of all thin volume sizes",
    "WARNING: You have not turned on protection",
    "WARNING: Set activation/thin_pool_autoextend",
    "Run `l",
    NULL,
  };
  for (size_t i = 0; skip[i]; i++)
    if (strstr(line, skip[i])) return 1;
  return 0;
}

/* lvm's stderr, readable: lines trimmed and joined, noise dropped. */
static void clean_tail(const char *tail, char *buf, size_t len)
{
  size_t n = 0;
  buf[0] = '\0';
  for (const char *p = tail; *p;) {
    size_t k = strcspn(p, "\n");
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)k, p);
    p += k;
    if (*p) p++;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s || noise(s)) continue;
    n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? " " : "", s);
    if (n >= len) break;
  }
  if (!buf[0]) snprintf(buf, len, "no message from lvm");
}

int lv_classify(const char *err)
{
  if (strstr(err, "nsufficient free space") || strstr(err, "No space left") ||
      strstr(err, "insufficient free extents") || strstr(err, "Insufficient suitable"))
    return VMSNAP_E_NOSPC;
  if (strstr(err, "already exists")) return VMSNAP_E_EXISTS;
  if (strstr(err, "in use") || strstr(err, "open logical volume") ||
      strstr(err, "is already merging") || strstr(err, "merging snapshot") ||
      strstr(err, "Can't remove open"))
    return VMSNAP_E_BUSY;
  if (strstr(err, "not found") || strstr(err, "Failed to find"))
    return VMSNAP_E_NOT_FOUND;
  return VMSNAP_E_BACKEND;
}

int lv_run_text(const lv_job *j, const char *const argv[], vmsnap_line_fn *line, void *user,
                char **out, char *why, size_t whylen)
{
  static const char *const env[] = {"LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1", NULL};
  vmsnap_spawn_opts opts = {.struct_size = sizeof opts, .line = line, .line_user = user,
                            .capture_stdout = out != NULL, .env_add = env};
  vmsnap_spawn_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  if (out) *out = NULL;
  why[0] = '\0';
  int rc = j->host->spawn(j->job, argv, &opts, &r);
  if (rc < 0 || r.exit_status != 0) {
    free(r.out);
    if (rc < 0) return rc; /* cancelled, not found, could not start (message set) */
    if (r.exit_status < 0) {
      snprintf(why, whylen, "lvm was killed by signal %d", r.term_signal);
      return VMSNAP_E_BACKEND;
    }
    clean_tail(r.err_tail, why, whylen);
    return lv_classify(why);
  }
  if (out) *out = r.out;
  else free(r.out);
  return 0;
}

int lv_run(const lv_job *j, const char *const argv[], vmsnap_line_fn *line, void *user,
           char **out, const char *what, const char *hint)
{
  char why[1200];
  int rc = lv_run_text(j, argv, line, user, out, why, sizeof why);
  return lv_explain(j, rc, why, what, hint);
}

int lv_explain(const lv_job *j, int rc, const char *why, const char *what, const char *hint)
{
  if (rc == 0 || !why[0]) {
    if (rc == VMSNAP_E_NOT_FOUND)
      return j->host->error(j->job, rc, "%s: the lvm command is not on PATH: install lvm2; %s",
                            what, hint);
    return rc;
  }
  const char *extra = rc == VMSNAP_E_NOSPC ? "; the volume group is full: add a physical "
                                             "volume (vgextend) or free some extents"
                      : rc == VMSNAP_E_BUSY ? "; something has the volume open or busy: stop "
                                              "it, or wait for the running merge"
                                            : "";
  return j->host->error(j->job, rc, "%s: %s%s; %s", what, why, extra, hint);
}

int lv_list_vg(const lv_job *j, const char *vg, lv_report *r)
{
  const char *argv[] = {"lvm", "lvs", "-a", "--reportformat", "json", "--units", "b", "--nosuffix",
                        "--config", "report/time_format=\"%s\"", "-o", LV_FIELDS, vg, NULL};
  char *out = NULL, what[1024];
  const char *why;
  snprintf(what, sizeof what, "cannot read the volume group %s with lvm lvs", vg);
  int rc = lv_run(j, argv, NULL, NULL, &out, what, "check it with `lvs`");
  if (rc < 0) return rc;
  if (lv_report_parse(out, r, &why) < 0) {
    free(out);
    return j->host->error(j->job, VMSNAP_E_BACKEND, "%s: %s (an lvm2 older than 2.02.158 "
                          "has no JSON reports: upgrade lvm2)", what, why);
  }
  free(out);
  return 0;
}

int lv_remove_lv(const lv_job *j, const char *vg, const char *name)
{
  char full[260], what[1024];
  snprintf(full, sizeof full, "%s/%s", vg, name);
  snprintf(what, sizeof what, "cannot remove the logical volume %s", full);
  const char *argv[] = {"lvm", "lvremove", "-f", "-y", full, NULL};
  return lv_run(j, argv, NULL, NULL, NULL, what, "run snapctl recover after fixing this");
}
