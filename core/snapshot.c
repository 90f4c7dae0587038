/* snapshot.c — the public, read-only view of a snapshot document. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

vmsnap_snapshot *snapshot_wrap(json_t *doc)
{
  vmsnap_snapshot *s = calloc(1, sizeof *s);
  if (!s) { json_decref(doc); return NULL; }
  s->doc = doc;
  json_t *disks = json_object_get(doc, "disks");
  s->ndisks = json_array_size(disks);
  s->disk_data = calloc(s->ndisks ? s->ndisks : 1, sizeof *s->disk_data);
  for (size_t i = 0; s->disk_data && i < s->ndisks; i++) {
    json_t *data = json_object_get(json_array_get(disks, i), "data");
    s->disk_data[i] = json_dumps(data ? data : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
  }
  return s;
}

void snapshot_free(vmsnap_snapshot *s)
{
  if (!s) return;
  for (size_t i = 0; s->disk_data && i < s->ndisks; i++) free(s->disk_data[i]);
  free(s->disk_data);
  free(s->parent_name);
  json_decref(s->doc);
  free(s);
}

static json_t *disk(const vmsnap_snapshot *s, size_t i)
{
  return json_array_get(json_object_get(s->doc, "disks"), i);
}

const char *vmsnap_snapshot_name(const vmsnap_snapshot *s) { return jstr(s->doc, "name"); }
const char *vmsnap_snapshot_uuid(const vmsnap_snapshot *s) { return jstr(s->doc, "uuid"); }
const char *vmsnap_snapshot_domain(const vmsnap_snapshot *s) { return jstr(s->doc, "domain"); }
const char *vmsnap_snapshot_parent(const vmsnap_snapshot *s) { return s->parent_name; }
const char *vmsnap_snapshot_memory(const vmsnap_snapshot *s) { return jstr(s->doc, "memory"); }
int vmsnap_snapshot_is_current(const vmsnap_snapshot *s) { return s->current; }
int vmsnap_snapshot_is_foreign(const vmsnap_snapshot *s) { return s->foreign; }
size_t vmsnap_snapshot_disk_count(const vmsnap_snapshot *s) { return s->ndisks; }

const char *vmsnap_snapshot_description(const vmsnap_snapshot *s)
{
  const char *d = jstr(s->doc, "description");
  return d ? d : "";
}

const char *vmsnap_snapshot_state(const vmsnap_snapshot *s)
{
  const char *st = jstr(s->doc, "state");
  return st ? st : "shutoff";
}

void vmsnap_snapshot_ctime(const vmsnap_snapshot *s, int64_t *sec, long *nsec)
{
  json_t *t = json_object_get(s->doc, "ctime");
  if (sec) *sec = json_integer_value(json_object_get(t, "sec"));
  if (nsec) *nsec = (long)json_integer_value(json_object_get(t, "nsec"));
}

const char *vmsnap_snapshot_disk_target(const vmsnap_snapshot *s, size_t i)
{
  return jstr(disk(s, i), "target");
}
const char *vmsnap_snapshot_disk_source(const vmsnap_snapshot *s, size_t i)
{
  return jstr(disk(s, i), "source");
}
const char *vmsnap_snapshot_disk_format(const vmsnap_snapshot *s, size_t i)
{
  return jstr(disk(s, i), "format");
}
const char *vmsnap_snapshot_disk_backend(const vmsnap_snapshot *s, size_t i)
{
  return jstr(disk(s, i), "backend");
}
const char *vmsnap_snapshot_disk_data(const vmsnap_snapshot *s, size_t i)
{
  return i < s->ndisks && s->disk_data ? s->disk_data[i] : NULL;
}

char *vmsnap_snapshot_to_json(const vmsnap_snapshot *s)
{
  json_t *copy = json_deep_copy(s->doc);
  if (!copy) return NULL;
  json_object_set_new(copy, "parent_name",
                      s->parent_name ? json_string(s->parent_name) : json_null());
  json_object_set_new(copy, "current", json_boolean(s->current));
  json_object_set_new(copy, "foreign", json_boolean(s->foreign));
  char *text = json_dumps(copy, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(copy);
  return text;
}
