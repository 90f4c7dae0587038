/* app.c — the library context: where plugins come from, where the
 * library's log goes, and the signal set-up that must precede it. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapctl.h"

#ifndef SNAPCTL_PLUGIN_REL
#define SNAPCTL_PLUGIN_REL "../lib/vmsnap/plugins"
#endif

/* The plugin dir at the same relative place from this binary as at build
 * time: works from the build tree and from any install prefix without
 * the user setting anything. Returns a malloc'ed path or NULL. */
static char *plugin_dir_near_binary(void)
{
  char exe[PATH_MAX], joined[PATH_MAX + sizeof(SNAPCTL_PLUGIN_REL) + 1];
  struct stat st;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

  if (n <= 0)
    return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash)
    return NULL;
  *slash = '\0';
  snprintf(joined, sizeof(joined), "%s/%s", exe, SNAPCTL_PLUGIN_REL);
  if (stat(joined, &st) != 0 || !S_ISDIR(st.st_mode))
    return NULL;
  return realpath(joined, NULL);
}

static const char *resolve_plugin_dir(struct snapctl *app)
{
  const char *env = getenv("VMSNAP_PLUGIN_PATH");

  if (app->plugin_dir)
    return app->plugin_dir;
  if (env && *env)
    return env;
  app->plugin_dir_buf = plugin_dir_near_binary();
  if (app->plugin_dir_buf && app->verbose)
    msg("debug: ", "plugins from %s (next to the snapctl binary)",
        app->plugin_dir_buf);
  return app->plugin_dir_buf; /* NULL: the library's built-in default */
}

/* Runs on whichever thread logs, worker threads included. */
static void log_to_stderr(void *user, int level, const char *message)
{
  static const char *const prefix[] = {
    [VMSNAP_LOG_ERROR] = "error: ", [VMSNAP_LOG_WARN] = "warning: ",
    [VMSNAP_LOG_INFO] = "", [VMSNAP_LOG_DEBUG] = "debug: ",
  };

  if (level < VMSNAP_LOG_ERROR || level > VMSNAP_LOG_DEBUG)
    level = VMSNAP_LOG_DEBUG;
  msg(prefix[level], "%s", message);
}

/* Blocks the signals that cancel an operation, before any library thread
 * exists so that every worker inherits the mask and the signals can only
 * arrive through the signalfd, in the event loop.
 *
 * SIGPIPE is blocked too but not watched: `snapctl create … 2>&1 | head`
 * must not kill snapctl in the middle of a create (that leaves a journal
 * for `recover`); a write to a closed pipe fails with EPIPE instead. */
static int block_signals(struct snapctl *app)
{
  sigset_t set;

  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (err == 0)
    err = pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (err != 0) {
    msg("error: ", "cannot block signals: %s", strerror(err));
    return -1;
  }
  app->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (app->sigfd < 0) {
    msg("error: ", "cannot create a signalfd: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Makes the context for a command whose arguments are good; returns an
 * exit code (SNAPCTL_EXIT_OK on success). */
int app_open(struct snapctl *app)
{
  vmsnap_config config = {
    .struct_size = sizeof(config),
    .state_dir = app->state_dir,
    .log = log_to_stderr,
    .log_level = app->verbose ? VMSNAP_LOG_DEBUG : VMSNAP_LOG_WARN,
    .flags = VMSNAP_CTX_HOST_DISPATCH,
  };
  char *errmsg = NULL;

  progress_setup(app->progress);
  if (block_signals(app) != 0)
    return SNAPCTL_EXIT_FAILURE;
  config.plugin_path = resolve_plugin_dir(app);
  int rc = vmsnap_ctx_new(&app->ctx, &config, &errmsg);
  if (rc < 0) {
    app->ctx = NULL;
    msg("error: ", "%s", errmsg && *errmsg ? errmsg : vmsnap_strerror(rc));
    free(errmsg);
    return exit_code_for(rc);
  }
  return SNAPCTL_EXIT_OK;
}

void app_close(struct snapctl *app)
{
  if (app->ctx)
    vmsnap_ctx_free(app->ctx);
  app->ctx = NULL;
  if (app->sigfd >= 0)
    close(app->sigfd);
  app->sigfd = -1;
  free(app->plugin_dir_buf);
  app->plugin_dir_buf = NULL;
}
