/* main.c — snapctl: global options, command dispatch, exit codes. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

#ifndef VMSNAP_VERSION
#define VMSNAP_VERSION "unknown"
#endif

static const struct command *const commands[] = {
  &cmd_plugins, &cmd_create, &cmd_list, &cmd_info,
  &cmd_revert, &cmd_delete, &cmd_recover,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_status_help[] =
  "Exit status:\n"
  "  0  success\n"
  "  1  backend, I/O or other failure\n"
  "  2  usage error or invalid input\n"
  "  3  domain, snapshot, disk or backend not found\n"
  "  4  busy: domain locked or disk in use\n"
  "  5  cancelled (SIGINT, SIGTERM or SIGHUP)\n"
  "  6  not enough space\n"
  "  7  not supported by a backend\n"
  "  8  a half-done operation needs `snapctl recover`\n"
  "  9  already exists\n";

static const char global_options_help[] =
  "Global options (also accepted after COMMAND):\n"
  "  --state-dir DIR     where snapshots are recorded (default: $VMSNAP_STATE_DIR,\n"
  "                      else /var/lib/vmsnap for root, $XDG_STATE_HOME/vmsnap)\n"
  "  --plugin-dir DIR    backend plugins (default: $VMSNAP_PLUGIN_PATH, else the\n"
  "                      plugin dir next to this snapctl, else the built-in one)\n"
  "  --json              print results as JSON on stdout\n"
  "  --progress MODE     auto (a bar when stderr is a terminal), bar, json, none\n"
  "  -v, --verbose       show the library's debug messages\n"
  "  --version           print the version and exit\n"
  "  -h, --help          print this help and exit\n";

static void usage(FILE *f)
{
  fprintf(f, "Usage: snapctl [GLOBAL OPTIONS] COMMAND [ARGS...]\n\n"
             "Take, list, revert and delete snapshots of virtual machines.\n\n"
             "Commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
  fprintf(f, "  %-9s %s\n\n%s\n%s\n", "help", "print the usage of a command",
          global_options_help, exit_status_help);
  fprintf(f, "Run `snapctl COMMAND --help` for a command's options; see snapctl(1).\n");
}

void command_usage(const struct command *cmd, FILE *f)
{
  fprintf(f, "Usage: snapctl [GLOBAL OPTIONS] %s %s\n\n%c%s.\n", cmd->name,
          cmd->synopsis, toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
  if (cmd->options)
    fprintf(f, "\nOptions:\n%s", cmd->options);
  fprintf(f, "\nRun `snapctl --help` for the global options and exit status.\n");
}

int exit_code_for(int rc)
{
  switch (rc) {
  case VMSNAP_OK: return SNAPCTL_EXIT_OK;
  case VMSNAP_E_INVALID: return SNAPCTL_EXIT_USAGE;
  case VMSNAP_E_NOT_FOUND: return SNAPCTL_EXIT_NOT_FOUND;
  case VMSNAP_E_EXISTS: return SNAPCTL_EXIT_EXISTS;
  case VMSNAP_E_BUSY: return SNAPCTL_EXIT_BUSY;
  case VMSNAP_E_CANCELLED: return SNAPCTL_EXIT_CANCELLED;
  case VMSNAP_E_NOSPC: return SNAPCTL_EXIT_NOSPC;
  case VMSNAP_E_UNSUPPORTED: return SNAPCTL_EXIT_UNSUPPORTED;
  case VMSNAP_E_NEEDS_RECOVER: return SNAPCTL_EXIT_NEEDS_RECOVER;
  default: return SNAPCTL_EXIT_FAILURE;
  }
}

static const struct command *find_command(const char *name)
{
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

static int unknown_command(const char *name)
{
  fprintf(stderr, "snapctl: error: unknown command '%s'\n"
                  "Try `snapctl --help` for the list of commands.\n", name);
  return SNAPCTL_EXIT_USAGE;
}

static int run_help(int argc, char **argv)
{
  if (argc < 2) {
    usage(stdout);
    return SNAPCTL_EXIT_OK;
  }
  const struct command *cmd = find_command(argv[1]);
  if (!cmd)
    return unknown_command(argv[1]);
  command_usage(cmd, stdout);
  return SNAPCTL_EXIT_OK;
}

/* Options before COMMAND. "+" stops at the command name so that each
 * command parses the rest with its own table. */
static int parse_global(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = {
    SNAPCTL_GLOBAL_OPTIONS,
    {"version", no_argument, NULL, OPT_VERSION},
    {0},
  };
  int c;

  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:hv", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      usage(stdout);
      return SNAPCTL_EXIT_OK;
    case OPT_VERSION:
      printf("snapctl %s (vmsnap API %d)\n", VMSNAP_VERSION, VMSNAP_API_VERSION);
      return SNAPCTL_EXIT_OK;
    case ':':
      return usage_error(NULL, "option %s needs an argument", argv[optind - 1]);
    case '?':
      return bad_option(NULL, longopts, argv);
    default:
      if (args_global(app, c, optarg) != 0)
        return SNAPCTL_EXIT_USAGE;
    }
  }
  return -1;
}

int main(int argc, char **argv)
{
  struct snapctl app = { .progress = PROGRESS_AUTO, .sigfd = -1 };
  int code = parse_global(&app, argc, argv);

  if (code >= 0)
    return code;
  if (optind >= argc) {
    usage(stderr);
    return SNAPCTL_EXIT_USAGE;
  }
  argc -= optind;
  argv += optind;
  if (strcmp(argv[0], "help") == 0)
    return run_help(argc, argv);
  const struct command *cmd = find_command(argv[0]);
  if (!cmd)
    return unknown_command(argv[0]);
  code = cmd->run(&app, argc, argv);
  app_close(&app);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    /* A reader that went away (`| head`) needs no message. */
    if (errno != EPIPE)
      perror("snapctl: error: writing to stdout");
    if (code == SNAPCTL_EXIT_OK)
      code = SNAPCTL_EXIT_FAILURE;
  }
  return code;
}
