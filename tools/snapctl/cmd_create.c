/* cmd_create.c — `snapctl create`: take a snapshot of a domain. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapctl.h"

enum { OPT_NAME = OPT_COMMAND, OPT_DESCRIPTION, OPT_DISK, OPT_DISK_ONLY,
       OPT_LIVE, OPT_NO_METADATA, OPT_MODE };

struct create_args {
  vmsnap_create_params params;
  vmsnap_disk_spec *disks;
  char **bufs; /* what each parsed disk spec points into */
};

static void create_args_free(struct create_args *c)
{
  for (size_t i = 0; i < c->params.ndisks; i++)
    free(c->bufs[i]);
  free(c->bufs);
  free(c->disks);
}

static int add_disk(struct create_args *c, const char *text)
{
  size_t n = c->params.ndisks;
  vmsnap_disk_spec *disks = realloc(c->disks, (n + 1) * sizeof(*disks));
  if (disks)
    c->disks = disks;
  char **bufs = realloc(c->bufs, (n + 1) * sizeof(*bufs));
  if (bufs)
    c->bufs = bufs;
  if (!disks || !bufs)
    return usage_error(&cmd_create, "out of memory");

  char *errmsg = NULL;
  memset(&c->disks[n], 0, sizeof(c->disks[n]));
  c->bufs[n] = NULL;
  int rc = vmsnap_disk_spec_parse(text, &c->disks[n], &c->bufs[n], &errmsg);
  if (rc < 0) {
    /* The library's message quotes the spec and the expected form. */
    int code = errmsg && *errmsg ? usage_error(&cmd_create, "%s", errmsg)
                                 : usage_error(&cmd_create, "--disk %s: %s", text,
                                               vmsnap_strerror(rc));
    free(errmsg);
    free(c->bufs[n]);
    return code;
  }
  c->params.ndisks = n + 1;
  c->params.disks = c->disks;
  return 0;
}

/* vmsnap never probes a format (a guest can write a qcow2 header into a
 * raw disk), so an undeclared qcow2 file would be copied as raw bytes.
 * Only the user can tell; snapctl only points it out. */
static void hint_qcow2(const vmsnap_disk_spec *d)
{
  unsigned char magic[4];
  struct stat st;

  if (d->format || !d->source)
    return;
  int fd = open(d->source, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      pread(fd, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
      memcmp(magic, "QFI\xfb", 4) == 0)
    msg("hint: ", "%s looks like a qcow2 image but is treated as raw; "
                  "add ,format=qcow2 to --disk if it is one", d->source);
  close(fd);
}

static int start_create(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how,
                        vmsnap_op **opp)
{
  const struct create_args *c = arg;

  return vmsnap_create(ctx, &c->params, how, opp);
}

static int report_created(struct snapctl *app, vmsnap_op *op, const char *domain)
{
  const vmsnap_snapshot *s = vmsnap_op_snapshot_count(op) ? vmsnap_op_snapshot(op, 0) : NULL;

  if (app->json)
    return s ? print_json(snapshot_json(s)) : print_json(json_null());
  if (!s) {
    printf("Created a snapshot of %s (no metadata recorded)\n", domain);
    return SNAPCTL_EXIT_OK;
  }
  char *name = sanitize(vmsnap_snapshot_name(s));
  printf("Created snapshot %s of %s (uuid %s)\n", name ? name : "?", domain,
         vmsnap_snapshot_uuid(s));
  free(name);
  return SNAPCTL_EXIT_OK;
}

static int create(struct snapctl *app, struct create_args *c)
{
  vmsnap_op *op = NULL;

  for (size_t i = 0; i < c->params.ndisks; i++)
    hint_qcow2(&c->disks[i]);
  int code = app_open(app);
  if (code != SNAPCTL_EXIT_OK)
    return code;
  int rc = loop_run(app, start_create, c, &op);
  report_warnings(op);
  code = rc < 0 ? report_failure(op, rc) : report_created(app, op, c->params.domain);
  if (op)
    vmsnap_op_unref(op);
  return code;
}

static int parse_option(struct create_args *c, int opt, const char *arg)
{
  switch (opt) {
  case OPT_NAME: c->params.name = arg; return 0;
  case OPT_DESCRIPTION: c->params.description = arg; return 0;
  case OPT_DISK: return add_disk(c, arg);
  case OPT_DISK_ONLY: c->params.flags |= VMSNAP_CREATE_DISK_ONLY; return 0;
  case OPT_LIVE: c->params.flags |= VMSNAP_CREATE_LIVE; return 0;
  case OPT_NO_METADATA: c->params.flags |= VMSNAP_CREATE_NO_METADATA; return 0;
  case OPT_MODE:
    if (strcmp(arg, "internal") && strcmp(arg, "external"))
      return usage_error(&cmd_create, "--mode takes internal or external");
    c->params.mode = arg;
    return 0;
  default: return usage_error(&cmd_create, "unhandled option");
  }
}

static int run_create(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"description", required_argument, NULL, OPT_DESCRIPTION},
    {"disk", required_argument, NULL, OPT_DISK},
    {"disk-only", no_argument, NULL, OPT_DISK_ONLY},
    {"live", no_argument, NULL, OPT_LIVE},
    {"no-metadata", no_argument, NULL, OPT_NO_METADATA},
    {"mode", required_argument, NULL, OPT_MODE},
    SNAPCTL_GLOBAL_OPTIONS,
    {0},
  };
  struct create_args c = { .params = { .struct_size = sizeof(c.params),
                                       .disk_spec_size = sizeof(vmsnap_disk_spec) } };
  struct args a;
  char **pos = NULL;
  int opt, code = SNAPCTL_EXIT_OK;

  args_init(&a, app, &cmd_create, argc, argv, "", longopts);
  while ((opt = args_next(&a)) != ARGS_END) {
    code = opt == ARGS_EXIT ? a.code : parse_option(&c, opt, optarg);
    if (opt == ARGS_EXIT || code != SNAPCTL_EXIT_OK)
      goto out;
  }
  code = args_positional(&a, 1, 1, &pos) != 0 ? a.code : SNAPCTL_EXIT_OK;
  if (code == SNAPCTL_EXIT_OK) {
    c.params.domain = pos[0];
    code = create(app, &c);
  }
out:
  create_args_free(&c);
  return code;
}

const struct command cmd_create = {
  .name = "create",
  .run = run_create,
  .synopsis = "DOMAIN [--name N] [--description T] [--disk SPEC]... "
              "[--mode internal|external] [--disk-only] [--live] [--no-metadata]",
  .summary = "take a snapshot of a domain",
  .options =
    "  --name N           the snapshot's name (default: the epoch seconds)\n"
    "  --description T    free text kept with the snapshot\n"
    "  --disk SPEC        a disk to snapshot; repeat for each disk. SPEC is\n"
    "                     TARGET=SOURCE[,format=raw|qcow2][,backend=B]\n"
    "                     [,mode=internal|external][,file=F]. An offline\n"
    "                     domain remembers its disks after the first create.\n"
    "                     A file without format= is raw: vmsnap never probes.\n"
    "  --mode M           internal or external, for every disk that names no\n"
    "                     mode= of its own (e.g. the disks of a qmp: domain)\n"
    "  --disk-only        no memory image, even of a running domain\n"
    "  --live             keep the guest running while its memory is saved\n"
    "  --no-metadata      make the storage objects only; record nothing\n",
};
