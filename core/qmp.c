/* qmp.c — QMP transport: connect, greeting, commands, the event queue.
 *
 * QMP is one JSON object per line. QEMU never puts a raw newline inside a
 * message (JSON escapes it in strings), so lines are split on '\n' without
 * a streaming parser. The socket is non-blocking and every wait is a poll()
 * with the time left before a deadline, so no call can hang on a QEMU that
 * stopped answering or on a monitor another client holds. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"

/* query-block on a long chain with many snapshots is megabytes; a message
 * this big is a broken peer, not a reply. */
#define QMP_MAX_MSG (64u << 20)
/* A read returned by read_msg when the deadline passed (no err set). */
#define QMP_TIMEOUT 1

struct qmp_conn {
  int fd;
  char *path;
  int timeout_ms;    /* default for calls given timeout_ms <= 0 */
  int dead;          /* EOF or I/O error: later calls fail at once */
  int in_greeting;   /* a non-JSON line means "not a QMP monitor" */
  char *buf;         /* buf[off..len): received, not yet parsed */
  size_t off, len, cap;
  size_t scanned;    /* buf[off..scanned) holds no '\n' */
  json_t *events;    /* queued events, oldest first */
  unsigned long next_id;
  int version[3];
  char err_class[64];
};

static uint64_t deadline_after(int timeout_ms)
{
  return now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds left, rounded up so a poll never ends just short of it. */
static int ms_left(uint64_t deadline)
{
  uint64_t now = now_ns();
  if (now >= deadline) return 0;
  return (int)((deadline - now + 999999u) / 1000000u);
}

static int conn_timeout(const qmp_conn *c, int timeout_ms)
{
  return timeout_ms > 0 ? timeout_ms : c->timeout_ms;
}

static int dead_err(qmp_conn *c, vs_err *err)
{
  return err_set(err, VMSNAP_E_IO,
                 "QMP %s: the connection to QEMU was lost earlier (did QEMU exit?); reconnect",
                 c->path);
}

/* Marks the connection dead with a message naming what we were waiting for. */
static int conn_fail(qmp_conn *c, vs_err *err, const char *what, const char *why)
{
  c->dead = 1;
  return err_set(err, VMSNAP_E_IO, "QMP %s: %s while waiting for %s", c->path, why, what);
}

/* Waits until fd is ready for `events` or the deadline; 0 ready, QMP_TIMEOUT. */
static int wait_fd(qmp_conn *c, short events, uint64_t deadline, vs_err *err, const char *what)
{
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = events};
    int n = poll(&p, 1, ms_left(deadline));
    if (n > 0) return 0; /* POLLHUP/POLLERR: the read or write reports it */
    if (n == 0) return QMP_TIMEOUT;
    if (errno != EINTR) return conn_fail(c, err, what, strerror(errno));
  }
}

static int send_all(qmp_conn *c, const char *data, size_t n, uint64_t deadline, vs_err *err,
                    const char *what)
{
  while (n > 0) {
    ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
    if (w > 0) {
      data += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_fd(c, POLLOUT, deadline, err, what);
      /* Half a command on the wire would corrupt the next one: give up on
       * the connection. */
      if (rc == QMP_TIMEOUT) return conn_fail(c, err, what, "QEMU stopped reading (hung?)");
      if (rc) return rc;
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET)
      return conn_fail(c, err, what, "QEMU closed the connection (did it exit?)");
    return conn_fail(c, err, what, strerror(errno));
  }
  return 0;
}

/* Parses the first complete line of buf[off..len), if any, into *msg. */
static int take_line(qmp_conn *c, json_t **msg, vs_err *err, const char *what)
{
  if (c->scanned >= c->len) return 0;
  char *start = c->buf + c->off;
  char *nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned);
  if (!nl) {
    c->scanned = c->len;
    return 0;
  }
  size_t n = (size_t)(nl - start);
  while (n > 0 && (start[n - 1] == '\r' || start[n - 1] == ' ')) n--;
  json_error_t jerr;
  json_t *m = n ? json_loadb(start, n, 0, &jerr) : NULL;
  c->off = c->scanned = (size_t)(nl + 1 - c->buf);
  if (n && (!m || !json_is_object(m))) {
    json_decref(m);
    if (c->in_greeting)
      return err_set(err, VMSNAP_E_INVALID,
                     "QMP socket %s: not a QMP monitor: its first line is not JSON (an HMP "
                     "-monitor socket rather than -qmp?)", c->path);
    return conn_fail(c, err, what, "QEMU sent a line that is not a QMP message");
  }
  *msg = m; /* NULL for an empty line: the caller reads on */
  return 0;
}

/* Makes room (dropping parsed bytes first), then reads what is there. */
static int fill_buf(qmp_conn *c, uint64_t deadline, vs_err *err, const char *what)
{
  if (c->off) {
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->scanned -= c->off;
    c->off = 0;
  }
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : 131072;
    if (cap > QMP_MAX_MSG + 65536)
      return conn_fail(c, err, what, "QEMU sent a message larger than 64 MiB");
    char *b = realloc(c->buf, cap);
    if (!b) return err_set(err, VMSNAP_E_NOMEM, "QMP %s: out of memory", c->path);
    c->buf = b;
    c->cap = cap;
  }
  for (;;) {
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r > 0) {
      c->len += (size_t)r;
      return 0;
    }
    if (r == 0) return conn_fail(c, err, what, "QEMU closed the connection (did it exit?)");
    if (errno == EINTR) continue;
    /* QEMU killed with our request unread: the kernel says reset, not EOF. */
    if (errno == ECONNRESET)
      return conn_fail(c, err, what, "QEMU closed the connection (did it exit?)");
    if (errno != EAGAIN && errno != EWOULDBLOCK) return conn_fail(c, err, what, strerror(errno));
    int rc = wait_fd(c, POLLIN, deadline, err, what);
    if (rc) return rc;
  }
}

/* Reads the next message: 0 with *msg (new ref), QMP_TIMEOUT, or an error. */
static int read_msg(qmp_conn *c, uint64_t deadline, json_t **msg, vs_err *err, const char *what)
{
  *msg = NULL;
  if (c->dead) return dead_err(c, err);
  for (;;) {
    int rc = take_line(c, msg, err, what);
    if (rc || *msg) return rc;
    if (c->scanned < c->len) continue; /* an empty line was dropped: more may follow */
    rc = fill_buf(c, deadline, err, what);
    if (rc) return rc;
  }
}

static void queue_event(qmp_conn *c, json_t *ev)
{
  if (json_array_size(c->events) >= QMP_MAX_EVENTS) json_array_remove(c->events, 0);
  json_array_append_new(c->events, ev);
}

/* ---- errors ----------------------------------------------------------- */

/* "lock" as a word: "block" must not count. */
static int has_lock_word(const char *s)
{
  for (const char *p = s; (p = strcasestr(p, "lock")) != NULL; p += 4)
    if (p == s || !((p[-1] | 0x20) >= 'a' && (p[-1] | 0x20) <= 'z')) return 1;
  return 0;
}

/* QEMU reports almost everything as GenericError; the desc tells more. */
static int error_code(const char *cls, const char *desc)
{
  if (strcmp(cls, "DeviceNotFound") == 0) return VMSNAP_E_NOT_FOUND;
  if (strcmp(cls, "CommandNotFound") == 0) return VMSNAP_E_UNSUPPORTED;
  if (strstr(desc, "already exists")) return VMSNAP_E_EXISTS;
  if (has_lock_word(desc) || strstr(desc, "is busy") || strstr(desc, "in use"))
    return VMSNAP_E_BUSY;
  if (strstr(desc, "Cannot find device") || strstr(desc, "not found") ||
      strstr(desc, "No such file") || strstr(desc, "does not exist"))
    return VMSNAP_E_NOT_FOUND;
  return VMSNAP_E_BACKEND;
}

static int reply_error(qmp_conn *c, const char *cmd, json_t *error, vs_err *err)
{
  const char *cls = jstr(error, "class"), *desc = jstr(error, "desc");
  snprintf(c->err_class, sizeof c->err_class, "%s", cls ? cls : "GenericError");
  return err_set(err, error_code(c->err_class, desc ? desc : ""), "QMP %s: %s", cmd,
                 desc ? desc : "QEMU returned an error without a description");
}

/* ---- commands ----------------------------------------------------------- */

/* Reads until the reply with `id`, queueing events. A reply with another id
 * answers a command that timed out earlier: dropped. A reply without an id
 * is ours: QEMU omits it only when it could not parse the request. */
static int wait_reply(qmp_conn *c, const char *cmd, const char *id, uint64_t deadline,
                      int timeout_ms, json_t **ret, vs_err *err)
{
  char what[160];
  snprintf(what, sizeof what, "the reply to %s", cmd);
  for (;;) {
    json_t *m;
    int rc = read_msg(c, deadline, &m, err, what);
    if (rc == QMP_TIMEOUT)
      return err_set(err, VMSNAP_E_IO,
                     "QMP %s: no reply to %s within %d ms (QEMU hung or very busy?); "
                     "the command may still complete", c->path, cmd, timeout_ms);
    if (rc) return rc;
    if (json_object_get(m, "event")) {
      queue_event(c, m);
      continue;
    }
    json_t *mid = json_object_get(m, "id");
    json_t *r = json_object_get(m, "return"), *e = json_object_get(m, "error");
    if ((r || e) && (!mid || (json_is_string(mid) && strcmp(json_string_value(mid), id) == 0))) {
      if (e)
        rc = reply_error(c, cmd, e, err);
      else if (ret)
        *ret = json_incref(r);
      json_decref(m);
      return rc;
    }
    json_decref(m);
  }
}

int qmp_execute(qmp_conn *c, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                vs_err *err)
{
  if (ret) *ret = NULL;
  if (c->dead) {
    json_decref(args);
    return dead_err(c, err);
  }
  if (args && !json_is_object(args)) {
    json_decref(args);
    return err_set(err, VMSNAP_E_INVALID, "QMP %s: arguments must be a JSON object", cmd);
  }
  c->err_class[0] = '\0';
  timeout_ms = conn_timeout(c, timeout_ms);
  uint64_t deadline = deadline_after(timeout_ms);
  char id[32];
  snprintf(id, sizeof id, "vmsnap-%lu", ++c->next_id);
  json_t *m = json_pack("{s:s, s:s}", "execute", cmd, "id", id);
  if (args && m) json_object_set_new(m, "arguments", args);
  else json_decref(args);
  char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
  json_decref(m);
  if (!text) return err_set(err, VMSNAP_E_NOMEM, "QMP %s: out of memory", cmd);
  size_t n = strlen(text);
  text[n] = '\n'; /* replaces the NUL: the line is sent with its length */
  char what[160];
  snprintf(what, sizeof what, "the command %s", cmd);
  int rc = send_all(c, text, n + 1, deadline, err, what);
  free(text);
  return rc ? rc : wait_reply(c, cmd, id, deadline, timeout_ms, ret, err);
}

const char *qmp_error_class(const qmp_conn *c) { return c->err_class; }

/* ---- events -------------------------------------------------------------- */

static int event_matches(json_t *ev, const char *name, const char *key, const char *value)
{
  const char *ev_name = jstr(ev, "event");
  if (name && (!ev_name || strcmp(ev_name, name) != 0)) return 0;
  if (!key) return 1;
  const char *v = jstr(json_object_get(ev, "data"), key);
  return v && strcmp(v, value) == 0;
}

static json_t *take_queued(qmp_conn *c, const char *name, const char *key, const char *value)
{
  size_t i;
  json_t *ev;
  json_array_foreach(c->events, i, ev) {
    if (event_matches(ev, name, key, value)) {
      json_incref(ev);
      json_array_remove(c->events, i);
      return ev;
    }
  }
  return NULL;
}

int qmp_next_event_match(qmp_conn *c, const char *name, const char *key, const char *value,
                         int timeout_ms, json_t **event, vs_err *err)
{
  *event = take_queued(c, name, key, value);
  if (*event) return 0;
  if (c->dead) return dead_err(c, err);
  uint64_t deadline = deadline_after(timeout_ms < 0 ? c->timeout_ms : timeout_ms);
  char what[96];
  snprintf(what, sizeof what, "the event %s", name ? name : "(any)");
  for (;;) {
    json_t *m;
    int rc = read_msg(c, deadline, &m, err, what);
    if (rc == QMP_TIMEOUT) return 0;
    if (rc) return rc;
    if (!json_object_get(m, "event")) { /* a late reply: nobody waits for it */
      json_decref(m);
    } else if (event_matches(m, name, key, value)) {
      *event = m;
      return 0;
    } else {
      queue_event(c, m);
    }
  }
}

int qmp_next_event(qmp_conn *c, const char *name, int timeout_ms, json_t **event, vs_err *err)
{
  return qmp_next_event_match(c, name, NULL, NULL, timeout_ms, event, err);
}

/* ---- connection ------------------------------------------------------------ */

static int connect_errno(const char *path, int e, int timeout_ms, vs_err *err)
{
  if (e == ENOENT)
    return err_set(err, VMSNAP_E_NOT_FOUND,
                   "QMP socket %s does not exist: is QEMU running with -qmp unix:%s,server=on?",
                   path, path);
  if (e == ECONNREFUSED)
    return err_set(err, VMSNAP_E_BUSY,
                   "QMP socket %s: connection refused: nothing listens on it (QEMU exited and "
                   "left a stale socket?)", path);
  if (e == EAGAIN)
    return err_set(err, VMSNAP_E_BUSY,
                   "QMP socket %s: no connection within %d ms: the monitor's queue is full: "
                   "another client (libvirt? libxl?) holds the monitor", path, timeout_ms);
  if (e == ENOTSOCK)
    return err_set(err, VMSNAP_E_INVALID, "%s is not a socket: give QEMU's -qmp socket", path);
  return err_set(err, err_from_errno(e), "QMP socket %s: cannot connect: %s", path, strerror(e));
}

/* Non-blocking connect: a unix socket whose accept queue is full answers
 * EAGAIN (a blocking connect would wait forever): retry until the deadline. */
static int connect_unix(const char *path, uint64_t deadline, int timeout_ms, int *fdp,
                        vs_err *err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return err_set(err, VMSNAP_E_INVALID, "QMP socket path too long (max %zu bytes): %s",
                   sizeof sa.sun_path - 1, path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
      return err_set(err, err_from_errno(errno), "QMP: socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
      *fdp = fd;
      return 0;
    }
    int e = errno;
    close(fd);
    if ((e != EAGAIN && e != EINTR) || ms_left(deadline) == 0)
      return connect_errno(path, e, timeout_ms, err);
    usleep(20000);
  }
}

static int parse_greeting(qmp_conn *c, json_t *m, vs_err *err)
{
  json_t *qemu = json_object_get(json_object_get(json_object_get(m, "QMP"), "version"), "qemu");
  if (!json_is_object(qemu))
    return err_set(err, VMSNAP_E_INVALID,
                   "QMP socket %s: the first message is not a QMP greeting: is it an HMP "
                   "(-monitor) socket rather than -qmp?", c->path);
  c->version[0] = (int)json_integer_value(json_object_get(qemu, "major"));
  c->version[1] = (int)json_integer_value(json_object_get(qemu, "minor"));
  c->version[2] = (int)json_integer_value(json_object_get(qemu, "micro"));
  return 0;
}

static int read_greeting(qmp_conn *c, uint64_t deadline, int timeout_ms, vs_err *err)
{
  json_t *m = NULL;
  c->in_greeting = 1;
  int rc = read_msg(c, deadline, &m, err, "the QMP greeting");
  c->in_greeting = 0;
  if (rc == QMP_TIMEOUT)
    return err_set(err, VMSNAP_E_BUSY,
                   "QMP socket %s: no QMP greeting within %d ms: another client (libvirt? "
                   "libxl?) holds the monitor", c->path, timeout_ms);
  if (rc) return rc;
  rc = parse_greeting(c, m, err);
  json_decref(m);
  return rc;
}

int qmp_open(const char *socket_path, int timeout_ms, qmp_conn **out, vs_err *err)
{
  *out = NULL;
  if (timeout_ms <= 0) timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
  uint64_t deadline = deadline_after(timeout_ms);
  qmp_conn *c = calloc(1, sizeof *c);
  if (c) c->fd = -1;
  if (!c || !(c->path = strdup(socket_path)) || !(c->events = json_array())) {
    qmp_close(c);
    return err_set(err, VMSNAP_E_NOMEM, "QMP: out of memory");
  }
  c->timeout_ms = timeout_ms;
  int rc = connect_unix(socket_path, deadline, timeout_ms, &c->fd, err);
  if (!rc) rc = read_greeting(c, deadline, timeout_ms, err);
  if (!rc) {
    int left = ms_left(deadline);
    rc = qmp_execute(c, "qmp_capabilities", NULL, left > 0 ? left : 1, NULL, err);
  }
  if (rc) {
    qmp_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

void qmp_close(qmp_conn *c)
{
  if (!c) return;
  if (c->fd >= 0) close(c->fd);
  json_decref(c->events);
  free(c->buf);
  free(c->path);
  free(c);
}

int qmp_alive(const qmp_conn *c)
{
  return !c->dead;
}

void qmp_version(const qmp_conn *c, int *major, int *minor, int *micro)
{
  if (major) *major = c->version[0];
  if (minor) *minor = c->version[1];
  if (micro) *micro = c->version[2];
}
