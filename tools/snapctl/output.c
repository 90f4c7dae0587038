/* output.c — what snapctl prints on stdout: aligned tables, sizes and
 * times for people, JSON for programs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapctl.h"

/* Names and descriptions come from metadata files and from storage that
 * other tools wrote: never let them send escape sequences to a terminal.
 * C0 controls, DEL and UTF-8-encoded C1 controls become '?'. */
char *sanitize(const char *s)
{
  char *out = strdup(s ? s : "");

  if (!out)
    return NULL;
  for (unsigned char *p = (unsigned char *)out; *p; p++) {
    if (*p < 0x20 || *p == 0x7f) {
      *p = '?';
    } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
      p[0] = '?';
      p[1] = '?';
      p++;
    }
  }
  return out;
}

/* Display width in columns, counting UTF-8 code points (the tree's box
 * drawing characters are three bytes but one column). */
static size_t text_width(const char *s)
{
  size_t n = 0;

  for (; *s; s++)
    n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

void table_init(struct table *t, size_t ncols, const char *const *headers)
{
  *t = (struct table){ .ncols = ncols < TABLE_MAX_COLS ? ncols : TABLE_MAX_COLS,
                       .headers = headers };
}

int table_add(struct table *t, const char *const *cells)
{
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **grown = realloc(t->cells, cap * t->ncols * sizeof(*grown));
    if (!grown)
      return -1;
    t->cells = grown;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * t->ncols;
  for (size_t c = 0; c < t->ncols; c++) {
    row[c] = sanitize(cells[c]);
    if (!row[c]) {
      while (c-- > 0)
        free(row[c]);
      return -1;
    }
  }
  t->nrows++;
  return 0;
}

static void print_row(const char *const *row, const size_t *widths, size_t ncols, FILE *f)
{
  while (ncols > 1 && !*row[ncols - 1])
    ncols--; /* no trailing blanks for empty last columns */
  for (size_t c = 0; c < ncols; c++) {
    fputs(row[c], f);
    if (c + 1 == ncols)
      break;
    for (size_t w = text_width(row[c]); w < widths[c] + 2; w++)
      fputc(' ', f);
  }
  fputc('\n', f);
}

void table_print(const struct table *t, FILE *f)
{
  size_t widths[TABLE_MAX_COLS] = { 0 };

  for (size_t c = 0; c < t->ncols; c++) {
    widths[c] = text_width(t->headers[c]);
    for (size_t r = 0; r < t->nrows; r++) {
      size_t w = text_width(t->cells[r * t->ncols + c]);
      widths[c] = w > widths[c] ? w : widths[c];
    }
  }
  print_row(t->headers, widths, t->ncols, f);
  for (size_t r = 0; r < t->nrows; r++)
    print_row((const char *const *)t->cells + r * t->ncols, widths, t->ncols, f);
}

void table_free(struct table *t)
{
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->nrows = t->cap = 0;
}

/* Binary units, as qemu-img and lvs print them. */
void fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double)bytes;
  size_t u = 0;

  if (bytes < 1024) {
    snprintf(buf, size, "%u B", (unsigned)bytes);
    return;
  }
  v /= 1024;
  while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
    v /= 1024;
    u++;
  }
  snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* Local time, sortable: YYYY-MM-DD HH:MM:SS. */
void fmt_time(char *buf, size_t size, int64_t sec)
{
  time_t t = (time_t)sec;
  struct tm tm;

  if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf(buf, size, "@%lld", (long long)sec);
}

/* H:MM:SS, or M:SS under an hour. */
void fmt_duration(char *buf, size_t size, double seconds)
{
  unsigned long s = seconds > 0 && seconds < 360000.0 ? (unsigned long)(seconds + 0.5) : 0;

  if (seconds >= 360000.0)
    snprintf(buf, size, ">99h");
  else if (s >= 3600)
    snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
}

/* "vda,vdb": the disk targets of a snapshot; malloc'ed. */
char *disk_targets(const vmsnap_snapshot *s)
{
  size_t n = vmsnap_snapshot_disk_count(s), len = 1;

  for (size_t i = 0; i < n; i++)
    len += strlen(vmsnap_snapshot_disk_target(s, i)) + 1;
  char *out = malloc(len);
  if (!out)
    return NULL;
  out[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(out, ",");
    strcat(out, vmsnap_snapshot_disk_target(s, i));
  }
  return out;
}

/* The stored document of a snapshot, plus what only the list knows: which
 * snapshot is current, and which objects vmsnap did not make. */
json_t *snapshot_json(const vmsnap_snapshot *s)
{
  char *text = vmsnap_snapshot_to_json(s);
  json_error_t err;

  if (!text) {
    msg("error: ", "out of memory converting snapshot %s to JSON", vmsnap_snapshot_name(s));
    return NULL;
  }
  json_t *j = json_loads(text, 0, &err);
  free(text);
  if (!j) {
    msg("error: ", "snapshot %s: the library gave invalid JSON: %s",
        vmsnap_snapshot_name(s), err.text);
    return NULL;
  }
  if (json_is_object(j)) {
    if (!json_object_get(j, "current"))
      json_object_set_new(j, "current", json_boolean(vmsnap_snapshot_is_current(s)));
    if (!json_object_get(j, "foreign"))
      json_object_set_new(j, "foreign", json_boolean(vmsnap_snapshot_is_foreign(s)));
  }
  return j;
}

/* Prints j (consumed) on stdout; returns an exit code. */
int print_json(json_t *j)
{
  if (!j)
    return SNAPCTL_EXIT_FAILURE; /* the caller's failure was reported */
  int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

  json_decref(j);
  if (rc != 0 || fputc('\n', stdout) == EOF) {
    msg("error: ", "cannot write JSON to stdout: %s", strerror(errno));
    return SNAPCTL_EXIT_FAILURE;
  }
  return SNAPCTL_EXIT_OK;
}
