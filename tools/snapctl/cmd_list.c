/* cmd_list.c — `snapctl list` and `snapctl info`: reading snapshots. */
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

enum { OPT_TREE = OPT_COMMAND, OPT_ROOTS, OPT_LEAVES };

struct query {
  const char *domain;
  const char *name;  /* info */
  unsigned flags;    /* list: VMSNAP_LIST_* */
  int tree;
};

static int start_list(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how, vmsnap_op **opp)
{
  const struct query *q = arg;

  return vmsnap_list(ctx, q->domain, q->flags, how, opp);
}

static int start_get(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how, vmsnap_op **opp)
{
  const struct query *q = arg;

  return vmsnap_get(ctx, q->domain, q->name, how, opp);
}

/* NAME column: "s1*" for the current snapshot, "(foreign)" for objects
 * another tool made. */
static void name_cell(char *buf, size_t size, const char *prefix, const vmsnap_snapshot *s)
{
  snprintf(buf, size, "%s%s%s%s", prefix, vmsnap_snapshot_name(s),
           vmsnap_snapshot_is_current(s) ? "*" : "",
           vmsnap_snapshot_is_foreign(s) ? " (foreign)" : "");
}

static int add_row(struct table *t, const char *prefix, const vmsnap_snapshot *s, int with_parent)
{
  char name[1024], created[64];
  int64_t sec;
  long nsec;
  const char *parent = vmsnap_snapshot_parent(s);
  char *disks = disk_targets(s);

  if (!disks)
    return -1;
  name_cell(name, sizeof(name), prefix, s);
  vmsnap_snapshot_ctime(s, &sec, &nsec);
  fmt_time(created, sizeof(created), sec);
  const char *state = vmsnap_snapshot_state(s) ? vmsnap_snapshot_state(s) : "-";
  const char *desc = vmsnap_snapshot_description(s);
  const char *cells[] = { name, created, state, parent ? parent : "-", disks, desc };
  const char *tree_cells[] = { name, created, state, disks, desc };
  int rc = table_add(t, with_parent ? cells : tree_cells);
  free(disks);
  return rc;
}

static int add_tree_row(void *user, const char *prefix, const vmsnap_snapshot *s)
{
  return add_row(user, prefix, s, 0);
}

static int print_list(struct snapctl *app, vmsnap_op *op, const struct query *q)
{
  static const char *const headers[] = { "NAME", "CREATED", "STATE", "PARENT", "DISKS", "DESCRIPTION" };
  static const char *const tree_headers[] = { "NAME", "CREATED", "STATE", "DISKS", "DESCRIPTION" };
  size_t n = vmsnap_op_snapshot_count(op);
  const vmsnap_snapshot **snaps = calloc(n + 1, sizeof(*snaps));
  struct table t;
  int rc = 0;

  if (!snaps)
    return report_failure(NULL, VMSNAP_E_NOMEM);
  for (size_t i = 0; i < n; i++)
    snaps[i] = vmsnap_op_snapshot(op, i);
  if (app->json) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
      if (json_array_append_new(arr, snapshot_json(snaps[i])) != 0) {
        json_decref(arr);
        arr = NULL;
      }
    }
    free(snaps);
    return print_json(arr);
  }
  if (n == 0) {
    free(snaps);
    printf("No snapshots of %s.\n", q->domain);
    return SNAPCTL_EXIT_OK;
  }
  table_init(&t, q->tree ? 5 : 6, q->tree ? tree_headers : headers);
  if (q->tree)
    rc = tree_walk(snaps, n, add_tree_row, &t);
  for (size_t i = 0; !q->tree && rc == 0 && i < n; i++)
    rc = add_row(&t, "", snaps[i], 1);
  if (rc == 0)
    table_print(&t, stdout);
  table_free(&t);
  free(snaps);
  return rc == 0 ? SNAPCTL_EXIT_OK : report_failure(NULL, VMSNAP_E_NOMEM);
}

/* Runs a read operation, then hands its result to print. */
static int query(struct snapctl *app, struct query *q, snapctl_start_fn *start,
                 int (*print)(struct snapctl *, vmsnap_op *, const struct query *))
{
  vmsnap_op *op = NULL;
  int code = app_open(app);

  if (code != SNAPCTL_EXIT_OK)
    return code;
  int rc = loop_run(app, start, q, &op);
  report_warnings(op);
  code = rc < 0 ? report_failure(op, rc) : print(app, op, q);
  if (op)
    vmsnap_op_unref(op);
  return code;
}

static int run_list(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = {
    {"tree", no_argument, NULL, OPT_TREE},
    {"roots", no_argument, NULL, OPT_ROOTS},
    {"leaves", no_argument, NULL, OPT_LEAVES},
    SNAPCTL_GLOBAL_OPTIONS,
    {0},
  };
  struct query q = { 0 };
  struct args a;
  char **pos;
  int c;

  args_init(&a, app, &cmd_list, argc, argv, "", longopts);
  while ((c = args_next(&a)) != ARGS_END) {
    if (c == ARGS_EXIT)
      return a.code;
    if (c == OPT_TREE)
      q.tree = 1;
    else if (c == OPT_ROOTS)
      q.flags |= VMSNAP_LIST_ROOTS;
    else if (c == OPT_LEAVES)
      q.flags |= VMSNAP_LIST_LEAVES;
  }
  if (q.flags == (VMSNAP_LIST_ROOTS | VMSNAP_LIST_LEAVES))
    return usage_error(&cmd_list, "--roots and --leaves exclude each other");
  if (args_positional(&a, 1, 1, &pos) != 0)
    return a.code;
  q.domain = pos[0];
  return query(app, &q, start_list, print_list);
}

const struct command cmd_list = {
  .name = "list",
  .run = run_list,
  .synopsis = "DOMAIN [--tree] [--roots|--leaves]",
  .summary = "list the snapshots of a domain (* marks the current one)",
  .options =
    "  --tree      draw the parent/child tree\n"
    "  --roots     only snapshots without a parent\n"
    "  --leaves    only snapshots without children\n",
};

/* ---- info ---------------------------------------------------------- */

static void field_at(int indent, int width, const char *key, const char *value)
{
  char *clean = sanitize(value);

  printf("%*s%-*s %s\n", indent, "", width, key, clean ? clean : "?");
  free(clean);
}

static void field(const char *key, const char *value)
{
  field_at(0, 12, key, value);
}

/* What the backend says of the snapshot's object now (space it takes, how
 * full an LVM snapshot is), when it said anything. */
static void print_status(json_t *disk)
{
  json_t *st = json_object_get(disk, "status"), *used = json_object_get(st, "used");
  const char *note = json_string_value(json_object_get(st, "note"));
  char text[512], size[32] = "";
  if (!st) return;
  if (json_is_integer(used)) fmt_bytes(size, sizeof size, (uint64_t)json_integer_value(used));
  snprintf(text, sizeof text, "%s%s%s%s", size[0] ? size : "", size[0] ? " used" : "",
           size[0] && note && *note ? "; " : "", note ? note : "");
  if (text[0]) field_at(4, 8, "status:", text);
}

static void print_disk(const vmsnap_snapshot *s, size_t i, json_t *disk)
{
  const char *format = vmsnap_snapshot_disk_format(s, i);
  const char *backend = vmsnap_snapshot_disk_backend(s, i);
  const char *data = vmsnap_snapshot_disk_data(s, i);

  char *target = sanitize(vmsnap_snapshot_disk_target(s, i));

  printf("  %s\n", target ? target : "?");
  free(target);
  field_at(4, 8, "source:", vmsnap_snapshot_disk_source(s, i));
  field_at(4, 8, "format:", format ? format : "-");
  field_at(4, 8, "backend:", backend ? backend : "-");
  field_at(4, 8, "data:", data ? data : "{}");
  print_status(disk);
}

static int print_info(struct snapctl *app, vmsnap_op *op, const struct query *q)
{
  if (vmsnap_op_snapshot_count(op) == 0)
    return report_failure(NULL, VMSNAP_E_NOT_FOUND);
  const vmsnap_snapshot *s = vmsnap_op_snapshot(op, 0);
  if (app->json)
    return print_json(snapshot_json(s));

  char created[64];
  int64_t sec;
  long nsec;
  const char *parent = vmsnap_snapshot_parent(s), *memory = vmsnap_snapshot_memory(s);
  const char *state = vmsnap_snapshot_state(s), *desc = vmsnap_snapshot_description(s);
  vmsnap_snapshot_ctime(s, &sec, &nsec);
  fmt_time(created, sizeof(created), sec);
  field("Name:", vmsnap_snapshot_name(s));
  field("UUID:", vmsnap_snapshot_uuid(s));
  field("Domain:", vmsnap_snapshot_domain(s));
  field("Created:", created);
  field("State:", state ? state : "-");
  field("Parent:", parent ? parent : "-");
  field("Current:", vmsnap_snapshot_is_current(s) ? "yes" : "no");
  field("Foreign:", vmsnap_snapshot_is_foreign(s) ? "yes (not made by vmsnap)" : "no");
  field("Description:", desc && *desc ? desc : "-");
  field("Memory:", memory ? memory : "- (disk-only)");
  printf("Disks:\n");
  json_t *whole = snapshot_json(s), *disks = json_object_get(whole, "disks");
  for (size_t i = 0; i < vmsnap_snapshot_disk_count(s); i++)
    print_disk(s, i, json_array_get(disks, i));
  json_decref(whole);
  return SNAPCTL_EXIT_OK;
}

static int run_info(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = { SNAPCTL_GLOBAL_OPTIONS, {0} };
  struct query q = { 0 };
  struct args a;
  char **pos;
  int c;

  args_init(&a, app, &cmd_info, argc, argv, "", longopts);
  while ((c = args_next(&a)) != ARGS_END)
    if (c == ARGS_EXIT)
      return a.code;
  if (args_positional(&a, 2, 2, &pos) != 0)
    return a.code;
  q.domain = pos[0];
  q.name = pos[1];
  return query(app, &q, start_get, print_info);
}

const struct command cmd_info = {
  .name = "info",
  .run = run_info,
  .synopsis = "DOMAIN NAME",
  .summary = "show every field of one snapshot, disk by disk",
};
