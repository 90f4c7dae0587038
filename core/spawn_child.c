/* spawn_child.c — the code that runs in spawn.c's children: the
 * intermediate (clone child, exit signal 0) and, under it, the tool until
 * its execve. See spawn.c for the picture.
 *
 * This runs in a copy of a multithreaded process: only syscalls and
 * async-signal-safe calls, no malloc, no stdio, no locks. Everything it
 * needs was prepared by the parent before the clone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spawn_child.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args, CLONE_PIDFD */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void child_send(int fd, int kind, int value)
{
  spawn_msg m = {kind, value};
  while (write(fd, &m, sizeof m) < 0 && errno == EINTR) {
  }
}

/* fork()-like clone returning a pidfd. Raw syscall: glibc's fork would run
 * atfork handlers and take locks, unsafe in the intermediate; exit_signal 0
 * hides the intermediate from the host's SIGCHLD handling. */
pid_t spawn_clone(int *pidfd, int exit_signal)
{
  struct clone_args a;
  memset(&a, 0, sizeof a);
  a.flags = CLONE_PIDFD;
  a.pidfd = (uint64_t)(uintptr_t)pidfd;
  a.exit_signal = (uint64_t)exit_signal;
  long pid = syscall(SYS_clone3, &a, sizeof a);
#if !defined(__s390__) && !defined(__CRIS__)
  /* clone3 filtered by an old container seccomp profile: clone() has
   * CLONE_PIDFD too (5.2+); the pidfd goes where parent_tid would. */
  if (pid < 0 && errno == ENOSYS)
    pid = syscall(SYS_clone, (unsigned long)(CLONE_PIDFD | exit_signal), 0L, pidfd, 0L, 0L);
#endif
  return (pid_t)pid;
}

static void close_gap(unsigned lo, unsigned hi, long max_fd)
{
  if (lo > hi || close_range(lo, hi, 0) == 0)
    return;
  /* No close_range (kernel < 5.9, or filtered): one by one. */
  for (long fd = lo; fd <= (long)hi && fd < max_fd; fd++)
    close((int)fd);
}

/* Keeps only the fds in c->fd, all moved to >= 3 so the tool's dup2 onto
 * 0..2 cannot clobber one of them. Every other fd is closed: a leaked one
 * (a lock, a host socket) must not live as long as the tool, and the
 * parent's pipe ends must go for its EOF to work. */
static int child_close_fds(spawn_child *c)
{
  int keep[CFD_COUNT] = {0};
  for (int i = 0; i < CFD_COUNT; i++) {
    if (c->fd[i] < 3 && (c->fd[i] = fcntl(c->fd[i], F_DUPFD_CLOEXEC, 3)) < 0)
      return -1;
    int fd = c->fd[i], j = i;
    for (; j > 0 && keep[j - 1] > fd; j--) /* insertion sort */
      keep[j] = keep[j - 1];
    keep[j] = fd;
  }
  unsigned lo = 0;
  for (int i = 0; i < CFD_COUNT; i++) {
    close_gap(lo, (unsigned)keep[i] - 1, c->max_fd);
    lo = (unsigned)keep[i] + 1;
  }
  close_gap(lo, ~0U, c->max_fd);
  return 0;
}

static _Noreturn void tool_main(const spawn_child *c)
{
  sigset_t none;
  sigemptyset(&none);
  /* Its own process group, so a cancel also reaches what the tool started. */
  setpgid(0, 0);
  /* Die with the intermediate: nothing else could stop us or report. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != c->self)
    _exit(127);
  if (dup2(c->fd[CFD_NULL], 0) < 0 || dup2(c->fd[CFD_OUT], 1) < 0 ||
      dup2(c->fd[CFD_ERR], 2) < 0)
    goto fail;
  /* The intermediate keeps every signal blocked; the tool starts with an
   * empty mask (and default dispositions) whatever the host had. */
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(c->path, c->argv, c->envp);
fail:
  child_send(c->fd[CFD_STATUS], MSG_EXEC_ERRNO, errno);
  _exit(127);
}

/* Through the pidfd, and to the tool's process group: both are safe from
 * pid reuse because the tool is not reaped yet (its zombie holds both ids). */
static void signal_tool(int pidfd, pid_t pid, int sig)
{
  syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
  kill(-pid, sig);
}

/* 'T' = SIGTERM, 'K' = SIGKILL; EOF = the library's process is gone. */
static void forward_cancel(struct pollfd *p, int pidfd, pid_t pid)
{
  char b[16];
  ssize_t n = read(p->fd, b, sizeof b);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    signal_tool(pidfd, pid, SIGKILL);
    p->fd = -1; /* poll ignores it from now on */
    return;
  }
  for (ssize_t i = 0; i < n; i++)
    if (b[i] == 'T' || b[i] == 'K')
      signal_tool(pidfd, pid, b[i] == 'T' ? SIGTERM : SIGKILL);
}

static int intermediate_wait(const spawn_child *c, pid_t pid, int pidfd, int *status)
{
  struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN},
                        {.fd = c->fd[CFD_CANCEL], .events = POLLIN}};
  for (;;) {
    int n = poll(p, 2, -1);
    if (n < 0 && errno != EINTR)
      break; /* cannot watch the cancel socket: just wait for the tool */
    if (n > 0 && p[0].revents)
      break;
    if (n > 0 && p[1].revents)
      forward_cancel(&p[1], pidfd, pid);
  }
  pid_t r;
  while ((r = wait4(pid, status, 0, NULL)) < 0 && errno == EINTR) {
  }
  return r < 0 ? -1 : 0;
}

_Noreturn void spawn_intermediate_main(spawn_child *c)
{
  struct sigaction dfl;
  int pidfd = -1, status = 0;
  pid_t pid;

  /* No host handler may run here, and SIGCHLD must not stay SIG_IGN (the
   * kernel would reap the tool and lose its status). SIGKILL, SIGSTOP and
   * glibc's internal signals refuse, which is fine. The mask stays fully
   * blocked (see proc_start), so no signal stops us from reporting. */
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL);
  c->self = getpid();
  if (child_close_fds(c) < 0)
    goto fail;
  /* vfork: the tool borrows this process's memory until its execve, so no
   * page tables are copied (a fork of this copy of the host cost 0.2-0.4
   * ms per tool). We are single-threaded and every signal is blocked, so
   * nothing runs here while it borrows. The tool is our unreaped child:
   * its pidfd cannot name another process. */
  pid = vfork();
  if (pid == 0)
    tool_main(c);
  if (pid < 0)
    goto fail;
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    int e = errno;
    kill(pid, SIGKILL);
    while (wait4(pid, &status, 0, NULL) < 0 && errno == EINTR) {
    }
    errno = e;
    goto fail;
  }
  /* Now only the tool holds the output pipes: EOF means it is done. */
  close(c->fd[CFD_NULL]);
  close(c->fd[CFD_OUT]);
  close(c->fd[CFD_ERR]);
  if (intermediate_wait(c, pid, pidfd, &status) < 0)
    goto fail;
  child_send(c->fd[CFD_STATUS], MSG_STATUS, status);
  _exit(0);
fail:
  child_send(c->fd[CFD_STATUS], MSG_SETUP_ERRNO, errno);
  _exit(127);
}
