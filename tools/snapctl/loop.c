/* loop.c — runs one operation the way an event-loop host does: the
 * context queues completions and progress (VMSNAP_CTX_HOST_DISPATCH), and
 * this thread polls the context's fd next to a signalfd, so Ctrl-C turns
 * into a clean vmsnap_op_cancel instead of killing the process mid-write.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "snapctl.h"

/* When the context has no fd, dispatch on a timer instead. */
#define FALLBACK_POLL_MS 100

struct wait_state {
  int finished;    /* set by on_done; both run on this thread */
  int rc;
  int interrupts;  /* signals seen so far */
};

static void on_done(void *user, vmsnap_op *op, int rc)
{
  struct wait_state *w = user;

  w->finished = 1;
  w->rc = rc;
}

/* First signal: cancel and keep waiting, since the op has to clean up
 * (create leaves nothing behind). Second: say it is still going. Third:
 * the user insists; leave now — the journal lets `recover` finish. */
static void on_signal(int sigfd, vmsnap_op *op, struct wait_state *w)
{
  struct signalfd_siginfo si;

  while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    w->interrupts++;
    if (w->interrupts == 1) {
      msg("", "cancelling… (the operation cleans up)");
      vmsnap_op_cancel(op);
      progress_cancelling();
    } else if (w->interrupts == 2) {
      msg("", "still cleaning up; interrupt once more to quit without waiting "
              "(then run `snapctl recover`)");
    } else {
      msg("", "quitting before the clean-up finished; run `snapctl recover`");
      _exit(SNAPCTL_EXIT_CANCELLED);
    }
  }
}

static int wait_for(struct snapctl *app, vmsnap_op *op, struct wait_state *w)
{
  struct pollfd pfd[2] = {
    { .fd = vmsnap_ctx_get_fd(app->ctx), .events = POLLIN },
    { .fd = app->sigfd, .events = POLLIN },
  };
  int timeout = pfd[0].fd >= 0 ? -1 : FALLBACK_POLL_MS;

  while (!w->finished) {
    int n = poll(pfd, 2, timeout);
    if (n < 0 && errno != EINTR) {
      msg("error: ", "poll: %s", strerror(errno));
      return -1;
    }
    if (n > 0 && (pfd[1].revents & POLLIN))
      on_signal(app->sigfd, op, w);
    if (pfd[0].fd < 0 || (n > 0 && pfd[0].revents))
      vmsnap_ctx_dispatch(app->ctx);
  }
  return 0;
}

/* Starts an operation through `start` and runs the event loop until it is
 * done. Returns its result; *opp receives the op (NULL if none was made),
 * to read results, message and warnings, and to release with unref. */
int loop_run(struct snapctl *app, snapctl_start_fn *start, void *arg,
             vmsnap_op **opp)
{
  struct wait_state w = { 0 };
  /* Unasked, progress costs nothing: the worker does not wake this
   * thread for events that would only be dropped. */
  vmsnap_how how = {
    .struct_size = sizeof(how),
    .done = { .fn = on_done, .user = &w },
    .progress = { .fn = progress_shown() ? progress_update : NULL },
  };

  *opp = NULL;
  progress_begin();
  int rc = start(app->ctx, arg, &how, opp);
  if (rc < 0)
    return rc; /* did not start: on_done never runs */
  if (!*opp) {
    msg("error: ", "the library started an operation but returned no handle");
    return VMSNAP_E_INVALID;
  }
  if (wait_for(app, *opp, &w) != 0) {
    vmsnap_op_cancel(*opp);
    w.rc = vmsnap_op_wait(*opp);
  }
  progress_end(w.rc);
  return w.rc;
}

/* Warnings the op collected, whatever its result. */
void report_warnings(vmsnap_op *op)
{
  const char *text;

  if (!op)
    return;
  for (size_t i = 0; (text = vmsnap_op_warning(op, i)) != NULL; i++)
    msg("note: ", "%s", text);
}

/* Prints why the op failed and returns the exit code for it. */
int report_failure(vmsnap_op *op, int rc)
{
  const char *text = op ? vmsnap_op_message(op) : NULL;

  if (!text || !*text)
    text = vmsnap_strerror(rc);
  msg("error: ", "%s", text);
  if (rc == VMSNAP_E_NEEDS_RECOVER && !strstr(text, "recover"))
    msg("hint: ", "run `snapctl recover` to finish or roll back the "
                  "half-done operation, then try again");
  return exit_code_for(rc);
}
