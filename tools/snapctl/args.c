/* args.c — per-command option parsing shared by every command. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

int usage_error(const struct command *cmd, const char *fmt, ...)
{
  va_list ap;

  fputs("snapctl: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (cmd)
    fprintf(stderr, "\nTry `snapctl %s --help`.\n", cmd->name);
  else
    fputs("\nTry `snapctl --help`.\n", stderr);
  return SNAPCTL_EXIT_USAGE;
}

/* Reports the option getopt_long rejected with '?'. glibc leaves optopt 0
 * for an unknown long option and sets it to the option's val for a long
 * option given an argument it does not take; else it is the short one. */
int bad_option(const struct command *cmd, const struct option *longopts,
               char **argv)
{
  const char *word = optind > 1 ? argv[optind - 1] : "";

  if (optopt == 0)
    return usage_error(cmd, "unknown option %s", word);
  if (strncmp(word, "--", 2) == 0) {
    size_t len = strcspn(word + 2, "=");
    for (const struct option *o = longopts; o->name; o++)
      if (o->val == optopt && strlen(o->name) == len &&
          strncmp(o->name, word + 2, len) == 0)
        return usage_error(cmd, "option --%s takes no argument", o->name);
  }
  return usage_error(cmd, "unknown option -%c", optopt);
}

static int parse_progress(const char *arg, enum progress_mode *mode)
{
  static const struct { const char *name; enum progress_mode mode; } modes[] = {
    {"auto", PROGRESS_AUTO}, {"bar", PROGRESS_BAR},
    {"json", PROGRESS_JSON}, {"none", PROGRESS_NONE},
  };

  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    if (strcmp(arg, modes[i].name) == 0) {
      *mode = modes[i].mode;
      return 0;
    }
  }
  return -1;
}

/* Handles a global option wherever it appears; returns 0, or -1 after
 * reporting a bad value. Unknown codes are a programming error. */
int args_global(struct snapctl *app, int c, const char *arg)
{
  switch (c) {
  case OPT_JSON:
    app->json = 1;
    return 0;
  case 'v':
    app->verbose = 1;
    return 0;
  case OPT_STATE_DIR:
    app->state_dir = arg;
    return 0;
  case OPT_PLUGIN_DIR:
    app->plugin_dir = arg;
    return 0;
  case OPT_PROGRESS:
    if (parse_progress(arg, &app->progress) == 0)
      return 0;
    usage_error(NULL, "--progress takes auto, bar, json or none, not '%s'", arg);
    return -1;
  default:
    abort();
  }
}

void args_init(struct args *a, struct snapctl *app, const struct command *cmd,
               int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
  *a = (struct args){ .app = app, .cmd = cmd, .argc = argc, .argv = argv,
                      .longopts = longopts };
  /* ':' reports a missing argument apart from an unknown option; no '+',
   * so options may follow the positional arguments (GNU permutation). */
  snprintf(a->shortopts, sizeof(a->shortopts), ":hv%s", shortopts);
  optind = 0; /* glibc: re-initialise fully, the global parse used '+' */
  opterr = 0;
}

/* Returns the next command-specific option code (optarg set as by
 * getopt_long), ARGS_END after the last one, or ARGS_EXIT with a->code set
 * when the command line has been dealt with (help shown, usage error). */
int args_next(struct args *a)
{
  for (;;) {
    int c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts, NULL);
    switch (c) {
    case -1:
      return ARGS_END;
    case 'h':
      command_usage(a->cmd, stdout);
      a->code = SNAPCTL_EXIT_OK;
      return ARGS_EXIT;
    case ':':
      a->code = usage_error(a->cmd, "option %s needs an argument",
                            a->argv[optind - 1]);
      return ARGS_EXIT;
    case '?':
      a->code = bad_option(a->cmd, a->longopts, a->argv);
      return ARGS_EXIT;
    case 'v': case OPT_JSON: case OPT_PROGRESS: case OPT_STATE_DIR:
    case OPT_PLUGIN_DIR:
      if (args_global(a->app, c, optarg) != 0) {
        a->code = SNAPCTL_EXIT_USAGE;
        return ARGS_EXIT;
      }
      continue;
    default:
      return c;
    }
  }
}

/* Checks the number of positional arguments left after the options;
 * returns 0 with *posp pointing at them, or ARGS_EXIT with a->code set. */
int args_positional(struct args *a, int min, int max, char ***posp)
{
  int n = a->argc - optind;

  if (n < min) {
    a->code = usage_error(a->cmd, "missing arguments: snapctl %s %s",
                          a->cmd->name, a->cmd->synopsis);
    return ARGS_EXIT;
  }
  if (n > max) {
    a->code = usage_error(a->cmd, "unexpected argument '%s'",
                          a->argv[optind + max]);
    return ARGS_EXIT;
  }
  *posp = a->argv + optind;
  return 0;
}
