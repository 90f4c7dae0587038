/* tree.c — the parent/child order of a snapshot list, for `list --tree`.
 *
 * The list comes in creation order; the tree keeps siblings in that order.
 * Parents are matched by name. A parent missing from the list (filtered
 * out, or metadata damaged) makes its child a root, and a parent cycle
 * (damaged metadata) is broken rather than looped on.
 */
#include <stdlib.h>
#include <string.h>

#include "snapctl.h"

struct tree {
  size_t n;
  const vmsnap_snapshot *const *snaps;
  size_t *by_name;      /* indices sorted by name, for the parent lookup */
  long *first_child, *next_sibling, *parent;
};

static const vmsnap_snapshot *const *sort_snaps; /* qsort has no user arg */

static int cmp_name(const void *a, const void *b)
{
  return strcmp(vmsnap_snapshot_name(sort_snaps[*(const size_t *)a]),
                vmsnap_snapshot_name(sort_snaps[*(const size_t *)b]));
}

static long find(const struct tree *t, const char *name)
{
  size_t lo = 0, hi = t->n;

  while (name && lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, vmsnap_snapshot_name(t->snaps[t->by_name[mid]]));
    if (c == 0)
      return (long)t->by_name[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return -1;
}

static int tree_build(struct tree *t)
{
  t->by_name = malloc((t->n + 1) * sizeof(*t->by_name));
  t->first_child = malloc((t->n + 1) * sizeof(long));
  t->next_sibling = malloc((t->n + 1) * sizeof(long));
  t->parent = malloc((t->n + 1) * sizeof(long));
  if (!t->by_name || !t->first_child || !t->next_sibling || !t->parent)
    return -1;
  for (size_t i = 0; i < t->n; i++) {
    t->by_name[i] = i;
    t->first_child[i] = t->next_sibling[i] = -1;
  }
  sort_snaps = t->snaps;
  qsort(t->by_name, t->n, sizeof(*t->by_name), cmp_name);
  /* Backwards, prepending, so that siblings end up in creation order. */
  for (size_t i = t->n; i-- > 0;) {
    long p = find(t, vmsnap_snapshot_parent(t->snaps[i]));
    t->parent[i] = p == (long)i ? -1 : p;
    if (t->parent[i] >= 0) {
      t->next_sibling[i] = t->first_child[p];
      t->first_child[p] = (long)i;
    }
  }
  return 0;
}

static void tree_free(struct tree *t)
{
  free(t->by_name);
  free(t->first_child);
  free(t->next_sibling);
  free(t->parent);
}

struct frame {
  long node;
  size_t depth;
  int last; /* the last of its siblings: drawn with └─ */
};

struct walk {
  struct tree *t;
  struct frame *stack;
  size_t top;
  char *last_at;   /* per depth: the ancestor there was a last child */
  char *visited;
  size_t *order, *depth, count;
  char *is_last;
};

/* Depth-first from one root, without recursion: a long external chain
 * is a deep tree. */
static void walk_from(struct walk *w, long root)
{
  w->stack[w->top++] = (struct frame){ root, 0, 1 };
  while (w->top) {
    struct frame e = w->stack[--w->top];
    if (w->visited[e.node])
      continue;
    w->visited[e.node] = 1;
    w->order[w->count] = (size_t)e.node;
    w->depth[w->count] = e.depth;
    w->is_last[w->count++] = (char)e.last;
    size_t nchildren = 0;
    for (long c = w->t->first_child[e.node]; c >= 0; c = w->t->next_sibling[c])
      nchildren++;
    /* Pushed in reverse so that the first child is popped first. */
    size_t k = w->top + nchildren;
    for (long c = w->t->first_child[e.node]; c >= 0; c = w->t->next_sibling[c]) {
      k--;
      w->stack[k] = (struct frame){ c, e.depth + 1, k == w->top };
    }
    w->top += nchildren;
  }
}

/* The "│  ├─ " in front of entry i of the walk; malloc'ed. */
static char *prefix_for(struct walk *w, size_t i)
{
  size_t d = w->depth[i];
  char *out = malloc(d * 8 + 1), *p = out;

  if (!out)
    return NULL;
  w->last_at[d] = w->is_last[i];
  for (size_t k = 1; k <= d; k++) {
    const char *piece = k < d ? (w->last_at[k] ? "   " : "│  ")
                              : (w->last_at[k] ? "└─ " : "├─ ");
    p = stpcpy(p, piece);
  }
  *p = '\0';
  return out;
}

/* Calls row(prefix, snapshot) for each snapshot in tree order. */
int tree_walk(const vmsnap_snapshot *const *snaps, size_t n,
              int (*row)(void *user, const char *prefix, const vmsnap_snapshot *s),
              void *user)
{
  struct tree t = { .n = n, .snaps = snaps };
  struct walk w = { .t = &t };
  int rc = -1;

  w.stack = malloc((2 * n + 1) * sizeof(*w.stack));
  w.last_at = calloc(n + 1, 1);
  w.visited = calloc(n + 1, 1);
  w.order = malloc((n + 1) * sizeof(size_t));
  w.depth = malloc((n + 1) * sizeof(size_t));
  w.is_last = malloc(n + 1);
  if (tree_build(&t) != 0 || !w.stack || !w.last_at || !w.visited || !w.order ||
      !w.depth || !w.is_last)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (t.parent[i] < 0)
      walk_from(&w, (long)i);
  for (size_t i = 0; i < n; i++) /* what only a parent cycle reaches */
    if (!w.visited[i])
      walk_from(&w, (long)i);
  for (size_t i = 0; i < w.count; i++) {
    char *prefix = prefix_for(&w, i);
    if (!prefix || row(user, prefix, snaps[w.order[i]]) != 0) {
      free(prefix);
      goto out;
    }
    free(prefix);
  }
  rc = 0;
out:
  tree_free(&t);
  free(w.stack);
  free(w.last_at);
  free(w.visited);
  free(w.order);
  free(w.depth);
  free(w.is_last);
  return rc;
}
