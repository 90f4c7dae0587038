/* spawn_child.h — what spawn.c shares with the code that runs in its
 * children (spawn_child.c): the fds they keep, what they report, and the
 * two entry points. Private to the core. */
#ifndef VMSNAP_SPAWN_CHILD_H
#define VMSNAP_SPAWN_CHILD_H

#include <stdint.h>
#include <sys/types.h>

/* Children -> parent on the status pipe; 8-byte writes are atomic. */
enum { MSG_STATUS = 1, MSG_EXEC_ERRNO, MSG_SETUP_ERRNO };
typedef struct spawn_msg {
  int32_t kind, value;
} spawn_msg;

/* The fds the intermediate keeps; it closes every other one. */
enum { CFD_NULL, CFD_OUT, CFD_ERR, CFD_CANCEL, CFD_STATUS, CFD_COUNT };

/* What the children use, prepared by the parent (they get a copy). */
typedef struct spawn_child {
  const char *path;
  char *const *argv;
  char *const *envp;
  int fd[CFD_COUNT];
  long max_fd; /* without close_range */
  pid_t self;  /* the intermediate's pid, for the tool's parent check */
} spawn_child;

/* fork()-like clone returning a pidfd; exit_signal 0 makes a "clone"
 * child the host's SIGCHLD handling never sees. */
pid_t spawn_clone(int *pidfd, int exit_signal);
/* The intermediate: runs c->path under it, reports on c->fd[CFD_STATUS],
 * forwards cancels, never returns. Called in the child of spawn_clone with
 * every signal blocked. */
_Noreturn void spawn_intermediate_main(spawn_child *c);

#endif
