/* snaps.c — finding vmsnap's snapshot in an image's snapshot table, and
 * reading the vmsnap mark in a tag. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void q2_snap_date(const q2_snap *s, char *buf, size_t len)
{
  snprintf(buf, len, "%lld.%09lld", (long long)s->date_sec, (long long)s->date_nsec);
}

/* A recorded "date" ("SEC.NSEC") for people: "2024-05-01 10:00:00 UTC". */
void q2_date_text(const char *date, char *buf, size_t len)
{
  time_t t = date ? (time_t)strtoll(date, NULL, 10) : 0;
  struct tm tm;

  if (!t || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf(buf, len, "an unrecorded time");
}

size_t q2_count_tag(const q2_info *inf, const char *tag)
{
  size_t n = 0;
  for (size_t i = 0; i < inf->n; i++) n += strcmp(inf->snaps[i].name, tag) == 0;
  return n;
}

/* "3, 7": the IDs of the snapshots tagged tag, for messages. */
void q2_ids_with_tag(const q2_info *inf, const char *tag, char *buf, size_t len)
{
  size_t n = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < inf->n && n + 1 < len; i++)
    if (strcmp(inf->snaps[i].name, tag) == 0) {
      int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", inf->snaps[i].id);
      n = w < 0 ? n : n + (size_t)w;
    }
}

static int matches(const q2_snap *s, const char *tag, const char *id, const char *date)
{
  char d[48];

  if (strcmp(s->name, tag) != 0 || (id && strcmp(s->id, id) != 0)) return 0;
  q2_snap_date(s, d, sizeof(d));
  return !date || strcmp(d, date) == 0;
}

/* The snapshot a job's data names: tag, and id and date when recorded.
 * Returns how many match (*idx: the first). An ID alone proves nothing
 * (qcow2 hands out a deleted snapshot's ID again), the tag alone neither
 * (tags may repeat); with the date recorded too, a snapshot whose ID
 * changed is still found by tag + date. */
size_t q2_pick(const q2_info *inf, const char *tag, const char *id, const char *date, size_t *idx)
{
  size_t n = 0;

  for (int pass = 0; pass < 2 && n == 0; pass++) {
    if (pass == 1 && !(id && date)) break;
    for (size_t i = 0; i < inf->n; i++)
      if (matches(&inf->snaps[i], tag, pass == 0 ? id : NULL, date) && n++ == 0) *idx = i;
  }
  return n;
}

/* qemu-img 7.2 `snapshot -d` finds its argument by tag only (an ID is not
 * looked up), and takes the first snapshot with that tag in table order.
 * Deleting by tag is therefore right only when ours is that first one and
 * no snapshot has our tag as its ID (a later qemu-img might look IDs up
 * first, as `snapshot -a` already does). */
int q2_first_with_tag(const q2_info *inf, const char *tag, size_t idx)
{
  for (size_t i = 0; i < inf->n; i++)
    if (strcmp(inf->snaps[i].id, tag) == 0) return 0;
  for (size_t i = 0; i < inf->n; i++)
    if (strcmp(inf->snaps[i].name, tag) == 0) return i == idx;
  return 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int is_lower_hex(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* The snapshot name in a tag carrying the vmsnap mark: "vmsnap-" + name,
 * bytes outside [A-Za-z0-9._-] as +XX; a cut name ends in +H and eight hex
 * digits of a hash, and decodes to its start followed by "…". Returns 1 and
 * the name, or 0 for a tag without the mark or not encoded by vmsnap. */
int q2_decode_tag(const char *tag, char *buf, size_t len)
{
  size_t plen = strlen(Q2_MARK_PREFIX), tlen = strlen(tag), n = 0, end = tlen;
  int cut = 0;

  if (tlen <= plen || strncmp(tag, Q2_MARK_PREFIX, plen) != 0) return 0;
  if (tlen >= plen + 10 && strncmp(tag + tlen - 10, "+H", 2) == 0 &&
      is_lower_hex(tag + tlen - 8, 8)) {
    end = tlen - 10;
    cut = 1;
  }
  for (size_t i = plen; i < end; i++) {
    char c = tag[i];
    if (n + 1 >= len) return 0;
    if (c == '+') {
      int hi = i + 2 < end ? hexval(tag[i + 1]) : -1, lo = hi < 0 ? -1 : hexval(tag[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return 0;
      buf[n++] = (char)(hi << 4 | lo);
      i += 2;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-') {
      buf[n++] = c;
    } else {
      return 0;
    }
  }
  if (n == 0) return 0;
  if (cut) {
    if (n + 4 > len) return 0;
    memcpy(buf + n, "\xe2\x80\xa6", 3); /* "…" */
    n += 3;
  }
  buf[n] = '\0';
  return 1;
}

/* A create refuses a tag the image already holds: that snapshot is not
 * vmsnap's (no record owns it), and vmsnap never touches it. */
int q2_refuse_taken_tag(q2_job *j, const q2_info *inf, const char *tag, const char *what)
{
  char ids[256];

  if (!q2_count_tag(inf, tag)) return 0;
  q2_ids_with_tag(inf, tag, ids, sizeof(ids));
  return j->host->error(j->job, VMSNAP_E_EXISTS,
                        "%s: the image already holds a snapshot tagged %s (qcow2 id %s) that "
                        "no recorded vmsnap snapshot owns (its record was deleted, or it was "
                        "made by hand); vmsnap never touches it: choose another snapshot "
                        "name, or delete it yourself if it is not needed",
                        what, tag, ids);
}
