/* progress.c — an operation's progress on stderr: a redrawn bar on a
 * terminal, JSON lines for programs, or nothing.
 *
 * The library logs from its worker threads while the main thread draws the
 * bar, so every write to stderr goes through one lock and first wipes the
 * bar; the next progress update draws it again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "snapctl.h"

#define REDRAW_INTERVAL 0.1  /* seconds: at most ~10 redraws a second */
#define FIRST_DRAW_DELAY 0.3 /* no bar flashing by for a quick operation */
#define RATE_INTERVAL 0.5    /* seconds between rate samples */
#define FIGURES_WIDTH 52     /* "100% 1023.9 MiB / 1023.9 MiB 1023.9 MiB/s  ETA 0:00" */

static struct {
  pthread_mutex_t lock;
  enum progress_mode mode; /* resolved: BAR, JSON or NONE */
  int visible;             /* a bar is on the terminal line now */
  int drawn;               /* drawn at least once for this operation */
  int cancelling;          /* the rest of the bar is the clean-up */
  double start, last_draw, rate_time;
  uint64_t rate_done;
  double rate;             /* bytes/s, smoothed; 0 while unknown */
  char phase[32], disk[64];
  uint64_t done, total;
} bar = { .lock = PTHREAD_MUTEX_INITIALIZER, .mode = PROGRESS_NONE };

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_setup(enum progress_mode mode)
{
  if (mode == PROGRESS_AUTO)
    mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_NONE;
  bar.mode = mode;
}

int progress_shown(void)
{
  return bar.mode != PROGRESS_NONE;
}

void progress_begin(void)
{
  pthread_mutex_lock(&bar.lock);
  bar.visible = bar.drawn = bar.cancelling = 0;
  bar.start = bar.last_draw = bar.rate_time = now();
  bar.rate_done = bar.done = bar.total = 0;
  bar.rate = 0;
  bar.phase[0] = bar.disk[0] = '\0';
  pthread_mutex_unlock(&bar.lock);
}

static void wipe_locked(void)
{
  if (bar.visible)
    fputs("\r\033[K", stderr);
  bar.visible = 0;
}

/* A message line on stderr: "snapctl: <prefix><text>". */
/* Messages quote names the user or other tools chose: sanitised like
 * every other text that reaches the terminal. */
void msg(const char *prefix, const char *fmt, ...)
{
  va_list ap;
  char *text = NULL, *clean;

  va_start(ap, fmt);
  if (vasprintf(&text, fmt, ap) < 0)
    text = NULL;
  va_end(ap);
  clean = sanitize(text ? text : fmt);
  pthread_mutex_lock(&bar.lock);
  wipe_locked();
  fprintf(stderr, "snapctl: %s%s\n", prefix, clean ? clean : "(out of memory)");
  pthread_mutex_unlock(&bar.lock);
  free(text);
  free(clean);
}

static int term_width(void)
{
  struct winsize ws;

  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col < 20)
    return 80;
  return ws.ws_col < 200 ? ws.ws_col : 200; /* a longer bar tells nothing more */
}

/* Exponentially smoothed, so one slow second does not swing the ETA. */
static void update_rate(double t)
{
  double dt = t - bar.rate_time;

  if (bar.done < bar.rate_done) { /* a new phase restarted the count */
    bar.rate_done = bar.done;
    bar.rate_time = t;
    return;
  }
  if (dt < RATE_INTERVAL)
    return;
  double inst = (double)(bar.done - bar.rate_done) / dt;
  bar.rate = bar.rate > 0 ? 0.7 * bar.rate + 0.3 * inst : inst;
  bar.rate_done = bar.done;
  bar.rate_time = t;
}

/* The right-hand side: "42%  1.2 GiB / 3.0 GiB  45.0 MiB/s  ETA 0:41". */
static void format_figures(char *out, size_t size)
{
  char done[32], total[32], rate[32] = "", eta[32] = "";

  fmt_bytes(done, sizeof(done), bar.done);
  if (bar.rate > 0) {
    fmt_bytes(rate, sizeof(rate), (uint64_t)bar.rate);
    strcat(rate, "/s");
  }
  /* Fixed widths, so the bar does not jitter as the figures change. */
  if (bar.total == 0) {
    snprintf(out, size, "%10s  %12s", done, rate);
    return;
  }
  fmt_bytes(total, sizeof(total), bar.total);
  if (bar.rate > 0 && bar.total > bar.done && !bar.cancelling) {
    strcpy(eta, "ETA ");
    fmt_duration(eta + 4, sizeof(eta) - 4, (double)(bar.total - bar.done) / bar.rate);
  }
  snprintf(out, size, "%3u%% %10s / %-10s %12s  %s",
           (unsigned)(bar.done * 100 / bar.total), done, total, rate, eta);
}

static void draw_locked(void)
{
  char label[100], figures[128], line[512];
  int width = term_width() - 1; /* never the last column: it would wrap */

  snprintf(label, sizeof(label), "%s%s%s", bar.cancelling ? "cancelling" : bar.phase,
           bar.disk[0] ? " " : "", bar.disk);
  format_figures(figures, sizeof(figures));
  /* The bar's length does not follow the figures' (the ETA comes and
   * goes): it leaves room for their widest form. */
  int room = width - (int)strlen(label) - FIGURES_WIDTH - 4;
  if (bar.total > 0 && room >= 5) {
    char meter[256];
    int fill = (int)((double)room * (double)bar.done / (double)bar.total);
    if (fill > room)
      fill = room;
    memset(meter, '=', (size_t)fill);
    memset(meter + fill, ' ', (size_t)(room - fill));
    if (fill < room && fill > 0)
      meter[fill - 1] = '>';
    meter[room] = '\0';
    snprintf(line, sizeof(line), "%s [%s] %s", label, meter, figures);
  } else {
    snprintf(line, sizeof(line), "%s  %s", label, figures);
  }
  line[width < (int)sizeof(line) ? width : (int)sizeof(line) - 1] = '\0';
  fprintf(stderr, "\r%s\033[K", line);
  bar.visible = bar.drawn = 1;
}

static void json_line_locked(const vmsnap_progress *p)
{
  json_t *j = json_pack("{s:s?, s:s?, s:I, s:I}", "phase", p->phase, "disk", p->disk,
                        "done", (json_int_t)p->done, "total", (json_int_t)p->total);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

  if (text)
    fprintf(stderr, "%s\n", text);
  free(text);
  json_decref(j);
}

/* The progress closure of every operation (run from vmsnap_ctx_dispatch). */
void progress_update(void *user, vmsnap_op *op, const vmsnap_progress *p)
{
  double t = now();

  pthread_mutex_lock(&bar.lock);
  if (bar.mode == PROGRESS_JSON)
    json_line_locked(p);
  if (bar.mode != PROGRESS_BAR)
    goto out;
  if (p->phase && strcmp(p->phase, bar.phase) != 0)
    snprintf(bar.phase, sizeof(bar.phase), "%s", p->phase);
  if (p->disk)
    snprintf(bar.disk, sizeof(bar.disk), "%s", p->disk);
  bar.done = p->done;
  bar.total = p->total;
  update_rate(t);
  if (t - bar.start >= FIRST_DRAW_DELAY && t - bar.last_draw >= REDRAW_INTERVAL) {
    draw_locked();
    bar.last_draw = t;
  }
out:
  pthread_mutex_unlock(&bar.lock);
}

/* Progress still arrives while an op cleans up after a cancel; say so
 * rather than look as if the cancel was ignored. */
void progress_cancelling(void)
{
  pthread_mutex_lock(&bar.lock);
  bar.cancelling = 1;
  pthread_mutex_unlock(&bar.lock);
}

/* Leaves the final state of the bar on its own line. The library rate-limits
 * progress, so after a success the last update may fall short of 100%. */
void progress_end(int rc)
{
  pthread_mutex_lock(&bar.lock);
  if (bar.mode == PROGRESS_BAR && bar.drawn) {
    if (rc == 0 && bar.total > 0)
      bar.done = bar.total;
    draw_locked();
    fputc('\n', stderr);
    bar.visible = 0;
  }
  pthread_mutex_unlock(&bar.lock);
}
