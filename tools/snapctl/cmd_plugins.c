/* cmd_plugins.c — `snapctl plugins`: the backends the context loaded. */
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

/* Capability names, comma-separated; an unnamed bit (a library newer than
 * this snapctl) shows as "bit-N" rather than disappearing. */
static void caps_text(uint64_t caps, char *buf, size_t size)
{
  size_t len = 0;

  buf[0] = '\0';
  for (unsigned b = 0; b < 64; b++) {
    if (!(caps & (1ull << b)))
      continue;
    const char *name = vmsnap_cap_name(1ull << b);
    char unnamed[16];
    if (!name) {
      snprintf(unnamed, sizeof(unnamed), "bit-%u", b);
      name = unnamed;
    }
    int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", name);
    if (n < 0 || (size_t)n >= size - len)
      break;
    len += (size_t)n;
  }
}

static json_t *caps_json(uint64_t caps)
{
  json_t *arr = json_array();

  for (unsigned b = 0; arr && b < 64; b++) {
    if (!(caps & (1ull << b)))
      continue;
    const char *name = vmsnap_cap_name(1ull << b);
    json_array_append_new(arr, name ? json_string(name) : json_sprintf("bit-%u", b));
  }
  return arr;
}

static json_t *backend_json(const vmsnap_backend_info *b)
{
  return json_pack("{s:s?, s:s?, s:s?, s:s?, s:b, s:s?, s:o}",
                   "name", b->name, "version", b->version,
                   "description", b->description, "path", b->path,
                   "available", b->available != 0,
                   "why_unavailable", b->available ? NULL : b->why_unavailable,
                   "capabilities", caps_json(b->capabilities));
}

/* One block per backend: the capability list is too wide for a table. */
static void backend_print(const vmsnap_backend_info *b)
{
  char caps[1024];
  char *name = sanitize(b->name), *desc = sanitize(b->description);
  char *why = sanitize(b->why_unavailable);

  caps_text(b->capabilities, caps, sizeof(caps));
  printf("%s %s\n", name ? name : "", b->version ? b->version : "");
  if (desc && *desc)
    printf("  %s\n", desc);
  printf("  available:    %s%s%s\n", b->available ? "yes" : "no",
         !b->available && why && *why ? ": " : "", b->available || !why ? "" : why);
  printf("  capabilities: %s\n", *caps ? caps : "(none)");
  printf("  path:         %s\n", b->path ? b->path : "(built in)");
  free(name);
  free(desc);
  free(why);
}

static int list_backends(struct snapctl *app)
{
  size_t n = vmsnap_backend_count(app->ctx);
  json_t *arr = app->json ? json_array() : NULL;

  /* No plugins: the library has already warned, naming the directory. */
  for (size_t i = 0; i < n; i++) {
    vmsnap_backend_info b = { .struct_size = sizeof(b) };
    int rc = vmsnap_backend_get(app->ctx, i, &b);
    if (rc < 0) {
      json_decref(arr);
      return report_failure(NULL, rc);
    }
    if (arr)
      json_array_append_new(arr, backend_json(&b));
    else {
      if (i)
        putchar('\n');
      backend_print(&b);
    }
  }
  return arr ? print_json(arr) : SNAPCTL_EXIT_OK;
}

static int run_plugins(struct snapctl *app, int argc, char **argv)
{
  static const struct option longopts[] = { SNAPCTL_GLOBAL_OPTIONS, {0} };
  struct args a;
  char **pos;
  int c;

  args_init(&a, app, &cmd_plugins, argc, argv, "", longopts);
  while ((c = args_next(&a)) != ARGS_END)
    if (c == ARGS_EXIT)
      return a.code;
  if (args_positional(&a, 0, 0, &pos) != 0)
    return a.code;
  int code = app_open(app);
  return code != SNAPCTL_EXIT_OK ? code : list_backends(app);
}

const struct command cmd_plugins = {
  .name = "plugins",
  .run = run_plugins,
  .synopsis = "",
  .summary = "list the storage backends, their versions and capabilities",
};
