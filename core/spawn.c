/* spawn.c — runs helper programs (qemu-img, lvm…); the contract is in spawn.h.
 *
 *   caller thread ──clone3(exit_signal 0, pidfd)──> intermediate ──vfork──> tool
 *     reads stdout/stderr/status pipes             waits for the tool,      execve()
 *     writes 'T'/'K' on the cancel socket          forwards T/K as signals
 *
 * Why an intermediate: libvmsnap lives in daemons that own SIGCHLD. A host
 * that calls waitpid(-1) or sets SIGCHLD to SIG_IGN would reap a direct child
 * and lose its status. A child with exit signal 0 is a "clone" child: no
 * SIGCHLD, no auto-reaping, invisible to waitpid(-1) without __WALL. The tool's
 * status travels over a pipe, so even a host that reaps with __WALL only
 * takes the intermediate's (meaningless) status. Signals reach the tool from
 * its real parent while it is unreaped: no pid-reuse race.
 *
 * The children's code (intermediate and tool, async-signal-safe only) is
 * in spawn_child.c; here is the parent's side: finding the program,
 * preparing everything the children need before the clone, reading the
 * output, cancel, and the result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spawn.h"
#include "spawn_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
  SPAWN_LINE_MAX = 64 * 1024, /* longer lines are cut, the rest dropped */
  SPAWN_POLL_MS = 50,         /* how often ctl->cancelled is asked */
  SPAWN_GRACE_MS = 3000,      /* SIGTERM -> SIGKILL by default */
  SPAWN_READ_CHUNK = 16 * 1024,
  SPAWN_MAX_FD = 1 << 20, /* bound for closing fds one by one */
};

/* Used when PATH is unset; root's tools (lvm) live in sbin. */
#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* One output pipe of the tool, split into lines. */
typedef struct spawn_stream {
  int fd;
  bool is_err;
  char *line; /* SPAWN_LINE_MAX + 1 */
  size_t len;
} spawn_stream;

/* The parent's side of one run. */
typedef struct spawn_state {
  const vmsnap_spawn_opts *opts; /* may be NULL */
  const spawn_ctl *ctl;          /* may be NULL */
  vmsnap_spawn_result *res;
  spawn_stream s[2]; /* stdout, stderr */
  size_t out_len, out_size;
  int status_fd, cancel_fd, pidfd;
  bool have_status, nomem, cancelled, killed;
  int wait_status, exec_errno, setup_errno, poll_errno, helper_signal;
  int64_t next_check, cancel_at;
} spawn_state;

/* ---- small helpers ------------------------------------------------------ */

static int spawn_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int spawn_err(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
  if (errbuf && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *errno_str(int e, char *buf, size_t len)
{
  return strerror_r(e, buf, len); /* GNU variant: thread-safe */
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- finding the program, building the environment (parent) ------------ */

static bool is_executable(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *spawn_find_program(const char *name)
{
  if (!name || !*name)
    return NULL;
  if (strchr(name, '/'))
    return is_executable(name) ? strdup(name) : NULL;
  /* secure_getenv: in a setuid host the caller's PATH must not pick the tool. */
  const char *path = secure_getenv("PATH");
  if (!path || !*path)
    path = SPAWN_DEFAULT_PATH;
  size_t nlen = strlen(name);
  for (const char *dir = path;;) {
    const char *end = strchrnul(dir, ':');
    size_t dlen = (size_t)(end - dir);
    /* Empty and relative entries mean the current directory: never. */
    if (dlen > 0 && dir[0] == '/') {
      char *full = malloc(dlen + nlen + 2);
      if (!full)
        return NULL;
      memcpy(full, dir, dlen);
      full[dlen] = '/';
      memcpy(full + dlen + 1, name, nlen + 1);
      if (is_executable(full))
        return full;
      free(full);
    }
    if (!*end)
      return NULL;
    dir = end + 1;
  }
}

static bool env_replaced(const char *entry, const char *const *add)
{
  size_t klen = strcspn(entry, "=");
  for (; add && *add; add++)
    if (strncmp(*add, entry, klen) == 0 && (*add)[klen] == '=')
      return true;
  return false;
}

/* The host's environment with the K=V entries of add on top. Only pointers
 * are copied; built before the clone because the children cannot malloc. */
static char **env_build(const char *const *add)
{
  char **env = environ;
  size_t n = 0, k = 0, j = 0;
  for (; env && env[n]; n++) {
  }
  for (; add && add[k]; k++) {
  }
  char **envp = calloc(n + k + 1, sizeof *envp);
  if (!envp)
    return NULL;
  for (size_t i = 0; i < n && env[i]; i++)
    if (!env_replaced(env[i], add))
      envp[j++] = env[i];
  for (size_t i = 0; i < k; i++)
    envp[j++] = (char *)add[i];
  return envp;
}

static bool env_valid(const char *const *add)
{
  for (; add && *add; add++)
    if ((*add)[0] == '=' || !strchr(*add, '='))
      return false;
  return true;
}

/* ---- starting (parent) -------------------------------------------------- */

/* Parent ends into st, child ends into c->fd. All O_CLOEXEC: another thread
 * of the host may fork+exec meanwhile. */
static int channels_open(spawn_child *c, spawn_state *st)
{
  int out[2], err[2], sts[2], cx[2];
  if ((c->fd[CFD_NULL] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
      pipe2(out, O_CLOEXEC) < 0)
    return -1;
  st->s[0].fd = out[0], c->fd[CFD_OUT] = out[1];
  if (pipe2(err, O_CLOEXEC) < 0)
    return -1;
  st->s[1].fd = err[0], c->fd[CFD_ERR] = err[1];
  if (pipe2(sts, O_CLOEXEC) < 0)
    return -1;
  st->status_fd = sts[0], c->fd[CFD_STATUS] = sts[1];
  /* A socket, not a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE in the
   * host when the intermediate is already gone. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cx) < 0)
    return -1;
  st->cancel_fd = cx[0], c->fd[CFD_CANCEL] = cx[1];
  /* Only our read ends are non-blocking; the tool's stdout stays blocking. */
  if (fcntl(st->s[0].fd, F_SETFL, O_NONBLOCK) < 0 ||
      fcntl(st->s[1].fd, F_SETFL, O_NONBLOCK) < 0 ||
      fcntl(st->status_fd, F_SETFL, O_NONBLOCK) < 0)
    return -1;
  return 0;
}

static int proc_start(spawn_child *c, spawn_state *st)
{
  sigset_t all, old;
  pid_t pid;
  int e;

  /* Every signal blocked across the clone, as posix_spawn does: a host
   * handler must never run in the intermediate (it could act on the host's
   * inherited fds, e.g. its self-pipe). The caller's mask is restored at
   * once; a signal arriving meanwhile stays pending, nothing is lost. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = spawn_clone(&st->pidfd, 0);
  if (pid == 0)
    spawn_intermediate_main(c);
  e = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (int i = 0; i < CFD_COUNT; i++)
    close_fd(&c->fd[i]);
  errno = e;
  return pid < 0 ? -1 : 0;
}

/* ---- reading the output (parent) --------------------------------------- */

/* The last lines of stderr that fit: whole lines are dropped from the
 * front; a single line too long keeps its end. Lines are trimmed. */
static void tail_add(char *tail, size_t size, const char *line, size_t n)
{
  while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
    n--;
  while (n > 0 && (*line == ' ' || *line == '\t'))
    line++, n--;
  if (n == 0)
    return;
  size_t cap = size - 1, len = strlen(tail);
  if (n > cap)
    line += n - cap, n = cap;
  while (len > 0 && len + 1 + n > cap) {
    char *nl = memchr(tail, '\n', len);
    size_t drop = nl ? (size_t)(nl - tail) + 1 : len;
    memmove(tail, tail + drop, len - drop);
    len -= drop;
  }
  if (len > 0)
    tail[len++] = '\n';
  memcpy(tail + len, line, n);
  tail[len + n] = '\0';
}

static void line_emit(spawn_state *st, spawn_stream *s)
{
  const vmsnap_spawn_opts *o = st->opts;
  const spawn_ctl *ctl = st->ctl;
  uint64_t done = 0, total = 0;

  if (s->len == 0)
    return;
  s->line[s->len] = '\0';
  if (o && o->line && o->line(o->line_user, s->line, &done, &total) == 1 && ctl &&
      ctl->progress)
    ctl->progress(ctl->progress_user, done, total);
  if (s->is_err)
    tail_add(st->res->err_tail, sizeof st->res->err_tail, s->line, s->len);
  s->len = 0;
}

/* Lines end at '\n' or '\r' (qemu-img -p redraws its progress with '\r').
 * A line longer than SPAWN_LINE_MAX is cut; the rest of it is dropped. */
static void line_feed(spawn_state *st, spawn_stream *s, const char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\n' || buf[i] == '\r')
      line_emit(st, s);
    else if (s->len < SPAWN_LINE_MAX)
      s->line[s->len++] = buf[i];
  }
}

static bool out_append(spawn_state *st, const char *buf, size_t n)
{
  vmsnap_spawn_result *r = st->res;
  if (st->out_len + n + 1 > st->out_size) {
    size_t size = st->out_size ? st->out_size : 4096;
    while (size < st->out_len + n + 1) {
      if (size > SIZE_MAX / 2)
        return false;
      size *= 2;
    }
    char *p = realloc(r->out, size);
    if (!p)
      return false;
    r->out = p, st->out_size = size;
  }
  memcpy(r->out + st->out_len, buf, n);
  st->out_len += n;
  r->out[st->out_len] = '\0';
  return true;
}

/* > 0: got data; 0: nothing now, or EOF (then the fd is closed). */
static ssize_t stream_read(spawn_state *st, spawn_stream *s)
{
  char buf[SPAWN_READ_CHUNK];
  ssize_t n = read(s->fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n <= 0) {
    line_emit(st, s); /* a last line without '\n' */
    close_fd(&s->fd);
    return 0;
  }
  if (!s->is_err && st->opts && st->opts->capture_stdout && !out_append(st, buf, (size_t)n))
    st->nomem = true;
  line_feed(st, s, buf, (size_t)n);
  return n;
}

static void status_read(spawn_state *st)
{
  spawn_msg m[4];
  ssize_t n = read(st->status_fd, m, sizeof m);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    close_fd(&st->status_fd);
    return;
  }
  for (size_t i = 0; i < (size_t)n / sizeof *m; i++) {
    if (m[i].kind == MSG_STATUS)
      st->have_status = true, st->wait_status = m[i].value;
    else if (m[i].kind == MSG_EXEC_ERRNO)
      st->exec_errno = m[i].value;
    else if (m[i].kind == MSG_SETUP_ERRNO)
      st->setup_errno = m[i].value;
  }
}

/* ---- cancel and the main loop (parent) ---------------------------------- */

static void cancel_send(spawn_state *st, char what)
{
  if (st->cancel_fd >= 0)
    (void)send(st->cancel_fd, &what, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void cancel_check(spawn_state *st)
{
  const spawn_ctl *ctl = st->ctl;
  int64_t now = mono_ms();

  if (!st->cancelled) {
    if (!ctl || !ctl->cancelled || now < st->next_check)
      return;
    st->next_check = now + SPAWN_POLL_MS;
    if (!ctl->cancelled(ctl->cancel_user))
      return;
    st->cancelled = true, st->cancel_at = now;
    cancel_send(st, 'T');
  } else if (!st->killed &&
             now - st->cancel_at >= (ctl->grace_ms > 0 ? ctl->grace_ms : SPAWN_GRACE_MS)) {
    st->killed = true;
    cancel_send(st, 'K');
  }
}

static void run_loop(spawn_state *st)
{
  while (!st->have_status && st->status_fd >= 0 && !st->nomem) {
    struct pollfd p[3];
    spawn_stream *who[2];
    int k = 0, n;
    for (int i = 0; i < 2; i++)
      if (st->s[i].fd >= 0)
        who[k] = &st->s[i], p[k++] = (struct pollfd){.fd = st->s[i].fd, .events = POLLIN};
    p[k] = (struct pollfd){.fd = st->status_fd, .events = POLLIN};
    n = poll(p, (nfds_t)k + 1, SPAWN_POLL_MS);
    if (n < 0 && errno != EINTR) {
      st->poll_errno = errno;
      return;
    }
    for (int i = 0; n > 0 && i < k; i++)
      if (p[i].revents)
        stream_read(st, who[i]);
    if (n > 0 && p[k].revents)
      status_read(st);
    cancel_check(st);
  }
  if (st->nomem)
    return;
  /* The tool is reaped, so all it wrote is in the pipes. No waiting for
   * EOF: a background child it left behind may hold them open. */
  for (int i = 0; i < 2; i++) {
    while (st->s[i].fd >= 0 && stream_read(st, &st->s[i]) > 0) {
    }
    line_emit(st, &st->s[i]);
  }
}

static void proc_reap(spawn_state *st)
{
  siginfo_t si;
  /* EOF on the cancel socket: if the tool still runs (we gave up on it),
   * the intermediate SIGKILLs it and ends. */
  close_fd(&st->cancel_fd);
  memset(&si, 0, sizeof si);
  /* ECHILD: a host waiting with __WALL took it; the status came by pipe. */
  while (waitid(P_PIDFD, (id_t)st->pidfd, &si, WEXITED | __WALL) < 0 && errno == EINTR) {
  }
  if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
    st->helper_signal = si.si_status;
  close_fd(&st->pidfd);
}

static int run_result(spawn_state *st, const char *name, const char *path, char *errbuf,
                      size_t errlen)
{
  vmsnap_spawn_result *r = st->res;
  char eb[128];
  if (st->have_status && WIFEXITED(st->wait_status))
    r->exit_status = WEXITSTATUS(st->wait_status), r->term_signal = 0;
  else if (st->have_status && WIFSIGNALED(st->wait_status))
    r->exit_status = -1, r->term_signal = WTERMSIG(st->wait_status);
  if (st->nomem)
    return spawn_err(errbuf, errlen, VMSNAP_E_NOMEM, "%s: out of memory reading its output",
                     name);
  if (st->setup_errno || st->exec_errno)
    return spawn_err(errbuf, errlen, VMSNAP_E_BACKEND, "%s: cannot %s %s: %s", name,
                     st->exec_errno ? "execute" : "start", path,
                     errno_str(st->exec_errno ? st->exec_errno : st->setup_errno, eb, sizeof eb));
  if (st->cancelled)
    return spawn_err(errbuf, errlen, VMSNAP_E_CANCELLED, "%s: cancelled", name);
  if (st->poll_errno)
    return spawn_err(errbuf, errlen, VMSNAP_E_BACKEND, "%s: cannot watch it: %s", name,
                     errno_str(st->poll_errno, eb, sizeof eb));
  if (!st->have_status)
    return spawn_err(errbuf, errlen, VMSNAP_E_BACKEND,
                     "%s: the process watching it died (signal %d); its status is unknown",
                     name, st->helper_signal);
  return 0;
}

/* ---- spawn_run ----------------------------------------------------------- */

static int spawn_exec(const char *path, const char *const argv[], char **envp,
                      spawn_state *st, char *errbuf, size_t errlen)
{
  spawn_child c = {.path = path, .argv = (char *const *)argv, .envp = envp};
  char eb[128];
  int rc;

  c.max_fd = sysconf(_SC_OPEN_MAX);
  if (c.max_fd < 0 || c.max_fd > SPAWN_MAX_FD)
    c.max_fd = SPAWN_MAX_FD;
  for (int i = 0; i < CFD_COUNT; i++)
    c.fd[i] = -1;
  if (channels_open(&c, st) < 0 || proc_start(&c, st) < 0) {
    rc = spawn_err(errbuf, errlen, VMSNAP_E_BACKEND, "%s: cannot start it: %s", argv[0],
                   errno_str(errno, eb, sizeof eb));
  } else {
    run_loop(st);
    proc_reap(st);
    rc = run_result(st, argv[0], path, errbuf, errlen);
  }
  for (int i = 0; i < CFD_COUNT; i++)
    close_fd(&c.fd[i]);
  return rc;
}

static int spawn_prepare_run(const char *path, const char *const argv[], char **envp,
                             const vmsnap_spawn_opts *opts, const spawn_ctl *ctl,
                             vmsnap_spawn_result *result, char *errbuf, size_t errlen)
{
  spawn_state st = {.opts = opts, .ctl = ctl, .res = result};
  int rc;

  st.status_fd = st.cancel_fd = st.pidfd = -1;
  st.s[0].fd = st.s[1].fd = -1;
  st.s[1].is_err = true;
  st.s[0].line = malloc(SPAWN_LINE_MAX + 1);
  st.s[1].line = malloc(SPAWN_LINE_MAX + 1);
  if (!st.s[0].line || !st.s[1].line ||
      (opts && opts->capture_stdout && !out_append(&st, "", 0)))
    rc = spawn_err(errbuf, errlen, VMSNAP_E_NOMEM, "%s: out of memory", argv[0]);
  else
    rc = spawn_exec(path, argv, envp, &st, errbuf, errlen);
  close_fd(&st.s[0].fd);
  close_fd(&st.s[1].fd);
  close_fd(&st.status_fd);
  close_fd(&st.cancel_fd);
  close_fd(&st.pidfd); /* only set if the clone failed halfway */
  free(st.s[0].line);
  free(st.s[1].line);
  return rc;
}

int spawn_run(const char *const argv[], const vmsnap_spawn_opts *opts,
              const spawn_ctl *ctl, vmsnap_spawn_result *result,
              char *errbuf, size_t errlen)
{
  const char *const *env_add = opts ? opts->env_add : NULL;
  char *path;
  char **envp;
  int rc;

  if (errbuf && errlen > 0)
    errbuf[0] = '\0';
  if (!result)
    return spawn_err(errbuf, errlen, VMSNAP_E_INVALID, "spawn: no result given");
  result->exit_status = -1, result->term_signal = 0;
  result->out = NULL, result->err_tail[0] = '\0';
  if (!argv || !argv[0] || !argv[0][0])
    return spawn_err(errbuf, errlen, VMSNAP_E_INVALID, "spawn: no program given");
  if (!env_valid(env_add))
    return spawn_err(errbuf, errlen, VMSNAP_E_INVALID,
                     "%s: environment entries must look like NAME=value", argv[0]);
  /* Resolved here: the children must not search PATH (no malloc there). */
  if (!(path = spawn_find_program(argv[0])))
    return spawn_err(errbuf, errlen, VMSNAP_E_NOT_FOUND,
                     strchr(argv[0], '/') ? "%s: no such executable file"
                                          : "%s: not found on PATH (install the package "
                                            "that provides it)",
                     argv[0]);
  if (!(envp = env_build(env_add)))
    rc = spawn_err(errbuf, errlen, VMSNAP_E_NOMEM, "%s: out of memory", argv[0]);
  else
    rc = spawn_prepare_run(path, argv, envp, opts, ctl, result, errbuf, errlen);
  free(envp);
  free(path);
  return rc;
}
