/* snapctl.h — what the files of the snapctl CLI share.
 *
 * snapctl is written only against the public client API (vmsnap/vmsnap.h),
 * so it doubles as the first user of that API: every operation runs
 * asynchronously through the host-dispatch event loop (loop.c), exactly as
 * a libvirt-style host would drive libvmsnap.
 */
#ifndef SNAPCTL_H
#define SNAPCTL_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <vmsnap/vmsnap.h>

/* Exit status; documented in `snapctl --help` and snapctl(1). */
enum {
  SNAPCTL_EXIT_OK = 0,
  SNAPCTL_EXIT_FAILURE = 1,       /* backend, I/O or other failure */
  SNAPCTL_EXIT_USAGE = 2,         /* usage error or invalid input */
  SNAPCTL_EXIT_NOT_FOUND = 3,
  SNAPCTL_EXIT_BUSY = 4,          /* domain locked, disk in use */
  SNAPCTL_EXIT_CANCELLED = 5,
  SNAPCTL_EXIT_NOSPC = 6,
  SNAPCTL_EXIT_UNSUPPORTED = 7,
  SNAPCTL_EXIT_NEEDS_RECOVER = 8,
  SNAPCTL_EXIT_EXISTS = 9,
};

enum progress_mode { PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_JSON, PROGRESS_NONE };

struct snapctl {
  /* From the command line (global options, also accepted after CMD). */
  const char *state_dir;
  const char *plugin_dir;
  int json;
  enum progress_mode progress;
  int verbose;
  /* Set up by app_open() once the command line is known to be good. */
  vmsnap_ctx *ctx;
  int sigfd;             /* signalfd for SIGINT, SIGTERM, SIGHUP; -1 if none */
  char *plugin_dir_buf;  /* the plugin dir snapctl found by itself */
};

struct command {
  const char *name;
  int (*run)(struct snapctl *app, int argc, char **argv);
  const char *synopsis; /* arguments after the command name */
  const char *summary;  /* one line for `snapctl --help` */
  const char *options;  /* the command's options, preformatted; may be NULL */
};

extern const struct command cmd_plugins, cmd_create, cmd_list, cmd_info,
    cmd_revert, cmd_delete, cmd_recover;

/* main.c */
int exit_code_for(int rc);
void command_usage(const struct command *cmd, FILE *f);

/* args.c — per-command option parsing. Every command also accepts the
 * global options, so `snapctl list demo --json` works as people type it. */
enum {
  OPT_JSON = 0x100,
  OPT_PROGRESS,
  OPT_STATE_DIR,
  OPT_PLUGIN_DIR,
  OPT_VERSION,
  OPT_COMMAND, /* first code free for a command's own long options */
};

#define SNAPCTL_GLOBAL_OPTIONS                                  \
  {"help", no_argument, NULL, 'h'},                             \
  {"json", no_argument, NULL, OPT_JSON},                        \
  {"progress", required_argument, NULL, OPT_PROGRESS},          \
  {"verbose", no_argument, NULL, 'v'},                          \
  {"state-dir", required_argument, NULL, OPT_STATE_DIR},        \
  {"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR}

enum { ARGS_END = -1, ARGS_EXIT = -2 };

struct args {
  struct snapctl *app;
  const struct command *cmd;
  int argc;
  char **argv;
  const struct option *longopts;
  char shortopts[32];
  int code; /* exit code once args_next returned ARGS_EXIT */
};

void args_init(struct args *a, struct snapctl *app, const struct command *cmd,
               int argc, char **argv, const char *shortopts,
               const struct option *longopts);
int args_next(struct args *a);
int args_global(struct snapctl *app, int c, const char *arg);
int args_positional(struct args *a, int min, int max, char ***posp);
int bad_option(const struct command *cmd, const struct option *longopts,
               char **argv);
int usage_error(const struct command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* app.c — the library context and what must happen before it exists. */
int app_open(struct snapctl *app);
void app_close(struct snapctl *app);

/* loop.c — runs one operation through the host-dispatch event loop. */
typedef int snapctl_start_fn(vmsnap_ctx *ctx, void *arg, const vmsnap_how *how,
                             vmsnap_op **opp);
int loop_run(struct snapctl *app, snapctl_start_fn *start, void *arg,
             vmsnap_op **opp);
void report_warnings(vmsnap_op *op);
int report_failure(vmsnap_op *op, int rc);

/* progress.c — progress on stderr, and the lock that keeps other stderr
 * messages (the library's logger runs on worker threads) off the bar. */
void progress_setup(enum progress_mode mode);
void progress_begin(void);
int progress_shown(void); /* a bar or JSON lines: else progress is not asked for */
vmsnap_progress_fn progress_update;
void progress_cancelling(void);
void progress_end(int rc);
void msg(const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* tree.c — calls row() for each snapshot in parent/child order, with the
 * "│  └─ " to draw in front of its name. */
int tree_walk(const vmsnap_snapshot *const *snaps, size_t n,
              int (*row)(void *user, const char *prefix, const vmsnap_snapshot *s),
              void *user);

/* output.c — tables, units, times and JSON on stdout. */
#define TABLE_MAX_COLS 16

struct table {
  size_t ncols;
  const char *const *headers;
  char **cells; /* row-major, sanitized copies */
  size_t nrows, cap;
};

void table_init(struct table *t, size_t ncols, const char *const *headers);
int table_add(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);
void fmt_bytes(char *buf, size_t size, uint64_t bytes);
void fmt_time(char *buf, size_t size, int64_t sec);
void fmt_duration(char *buf, size_t size, double seconds);
char *sanitize(const char *s);
char *disk_targets(const vmsnap_snapshot *s);
json_t *snapshot_json(const vmsnap_snapshot *s);
int print_json(json_t *j);

#endif /* SNAPCTL_H */
