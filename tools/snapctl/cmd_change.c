/* cmd_change.c — `snapctl revert`, `delete` and `recover`: the commands
 * that change a domain's existing snapshots. */
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

enum { OPT_RUNNING = OPT_COMMAND, OPT_PAUSED, OPT_FORCE, OPT_CHILDREN,
       OPT_CHILDREN_ONLY, OPT_METADATA_ONLY };

struct change {
  const char *domain; /* NULL for recover: every domain */
  const char *name;
  unsigned flags;
};

static int start_revert(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how, vmsnap_op **opp)
{
  const struct change *ch = arg;

  return vmsnap_revert(ctx, ch->domain, ch->name, ch->flags, how, opp);
}

static int start_delete(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how, vmsnap_op **opp)
{
  const struct change *ch = arg;

  return vmsnap_delete(ctx, ch->domain, ch->name, ch->flags, how, opp);
}

static int start_recover(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how, vmsnap_op **opp)
{
  const struct change *ch = arg;

  return vmsnap_recover(ctx, ch->domain, how, opp);
}

/* Runs the change; on success confirm() prints what happened. */
static int change(struct snapctl *app, struct change *ch, snapctl_start_fn *start,
                  int (*confirm)(struct snapctl *, vmsnap_op *, const struct change *))
{
  vmsnap_op *op = NULL;
  int code = app_open(app);

  if (code != SNAPCTL_EXIT_OK)
    return code;
  int rc = loop_run(app, start, ch, &op);
  report_warnings(op);
  code = rc < 0 ? report_failure(op, rc) : confirm(app, op, ch);
  if (op)
    vmsnap_op_unref(op);
  return code;
}

/* Parses options into flags through a command's option→flag table and
 * checks the positional count. Returns 0 or an exit code. */
struct flag_opt { int opt; unsigned flag; };

static int parse_change(struct args *a, const struct flag_opt *table, size_t ntable,
                        struct change *ch, int npos, char ***posp)
{
  int c;

  while ((c = args_next(a)) != ARGS_END) {
    if (c == ARGS_EXIT)
      return a->code;
    for (size_t i = 0; i < ntable; i++)
      if (table[i].opt == c)
        ch->flags |= table[i].flag;
  }
  return args_positional(a, npos, npos, posp) == 0 ? 0 : a->code;
}

/* ---- revert -------------------------------------------------------- */

static int confirm_revert(struct snapctl *app, vmsnap_op *op, const struct change *ch)
{
  const vmsnap_snapshot *s = vmsnap_op_snapshot_count(op) ? vmsnap_op_snapshot(op, 0) : NULL;

  if (app->json)
    return print_json(s ? snapshot_json(s) : json_null());
  /* Only a hypervisor domain (qmp:, xen:) has a running state to lose. */
  int shut_off = s && !vmsnap_snapshot_memory(s) && strchr(ch->domain, ':');
  printf("Reverted %s to snapshot %s%s\n", ch->domain, ch->name,
         shut_off ? " (disks only: the domain is left shut off)" : "");
  return SNAPCTL_EXIT_OK;
}

static int run_revert(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = {
    {"running", no_argument, NULL, OPT_RUNNING},
    {"paused", no_argument, NULL, OPT_PAUSED},
    {"force", no_argument, NULL, OPT_FORCE},
    SNAPCTL_GLOBAL_OPTIONS,
    {0},
  };
  static const struct flag_opt flags[] = {
    {OPT_RUNNING, VMSNAP_REVERT_RUNNING}, {OPT_PAUSED, VMSNAP_REVERT_PAUSED},
    {OPT_FORCE, VMSNAP_REVERT_FORCE},
  };
  struct change ch = { 0 };
  struct args a;
  char **pos;

  args_init(&a, app, &cmd_revert, argc, argv, "", longopts);
  int code = parse_change(&a, flags, sizeof(flags) / sizeof(flags[0]), &ch, 2, &pos);
  if (code != 0)
    return code;
  if ((ch.flags & VMSNAP_REVERT_RUNNING) && (ch.flags & VMSNAP_REVERT_PAUSED))
    return usage_error(&cmd_revert, "--running and --paused exclude each other");
  ch.domain = pos[0];
  ch.name = pos[1];
  return change(app, &ch, start_revert, confirm_revert);
}

const struct command cmd_revert = {
  .name = "revert",
  .run = run_revert,
  .synopsis = "DOMAIN NAME [--running|--paused] [--force]",
  .summary = "roll a domain back to a snapshot",
  .options =
    "  --running   resume the guest from the snapshot's memory\n"
    "  --paused    restore the memory but leave the guest paused\n"
    "  --force     revert even when the domain's disks or memory size no\n"
    "              longer match the snapshot, or a disk is in use\n",
};

/* ---- delete -------------------------------------------------------- */

static int confirm_delete(struct snapctl *app, vmsnap_op *op, const struct change *ch)
{
  if (app->json)
    return SNAPCTL_EXIT_OK; /* nothing to show; the exit status says it */
  if (ch->flags & VMSNAP_DELETE_CHILDREN_ONLY)
    printf("Deleted the children of snapshot %s of %s", ch->name, ch->domain);
  else if (ch->flags & VMSNAP_DELETE_CHILDREN)
    printf("Deleted snapshot %s of %s and its children", ch->name, ch->domain);
  else
    printf("Deleted snapshot %s of %s", ch->name, ch->domain);
  printf("%s\n", ch->flags & VMSNAP_DELETE_METADATA_ONLY
                     ? " from the metadata (storage objects kept)" : "");
  return SNAPCTL_EXIT_OK;
}

static int run_delete(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = {
    {"children", no_argument, NULL, OPT_CHILDREN},
    {"children-only", no_argument, NULL, OPT_CHILDREN_ONLY},
    {"metadata-only", no_argument, NULL, OPT_METADATA_ONLY},
    SNAPCTL_GLOBAL_OPTIONS,
    {0},
  };
  static const struct flag_opt flags[] = {
    {OPT_CHILDREN, VMSNAP_DELETE_CHILDREN},
    {OPT_CHILDREN_ONLY, VMSNAP_DELETE_CHILDREN_ONLY},
    {OPT_METADATA_ONLY, VMSNAP_DELETE_METADATA_ONLY},
  };
  struct change ch = { 0 };
  struct args a;
  char **pos;

  args_init(&a, app, &cmd_delete, argc, argv, "", longopts);
  int code = parse_change(&a, flags, sizeof(flags) / sizeof(flags[0]), &ch, 2, &pos);
  if (code != 0)
    return code;
  if ((ch.flags & VMSNAP_DELETE_CHILDREN) && (ch.flags & VMSNAP_DELETE_CHILDREN_ONLY))
    return usage_error(&cmd_delete, "--children and --children-only exclude each other");
  ch.domain = pos[0];
  ch.name = pos[1];
  return change(app, &ch, start_delete, confirm_delete);
}

const struct command cmd_delete = {
  .name = "delete",
  .run = run_delete,
  .synopsis = "DOMAIN NAME [--children|--children-only] [--metadata-only]",
  .summary = "delete a snapshot (its children move up to its parent)",
  .options =
    "  --children        delete the snapshot and every snapshot below it\n"
    "  --children-only   delete only the snapshots below it\n"
    "  --metadata-only   forget the snapshot but keep its storage objects\n",
};

/* ---- recover ------------------------------------------------------- */

static int confirm_recover(struct snapctl *app, vmsnap_op *op, const struct change *ch)
{
  if (!app->json)
    printf("Recovery finished for %s\n", ch->domain ? ch->domain : "every domain");
  return SNAPCTL_EXIT_OK;
}

static int run_recover(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = { SNAPCTL_GLOBAL_OPTIONS, {0} };
  struct change ch = { 0 };
  struct args a;
  char **pos;
  int c;

  args_init(&a, app, &cmd_recover, argc, argv, "", longopts);
  while ((c = args_next(&a)) != ARGS_END)
    if (c == ARGS_EXIT)
      return a.code;
  if (args_positional(&a, 0, 1, &pos) != 0)
    return a.code;
  ch.domain = a.argc - optind == 1 ? pos[0] : NULL;
  return change(app, &ch, start_recover, confirm_recover);
}

const struct command cmd_recover = {
  .name = "recover",
  .run = run_recover,
  .synopsis = "[DOMAIN]",
  .summary = "finish or roll back half-done operations (default: every domain)",
};
