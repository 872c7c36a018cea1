/* Resource paths; see resource_path.h. */
#include "core/resource_path.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *resource_path_segment(const char **p) {
  const char *start = *p, *end = strchr(start, '/');
  size_t len = end ? (size_t)(end - start) : strlen(start);
  *p = end ? end + 1 : start + len;
  return len ? strndup(start, len) : NULL;
}

/* Consumes the literal segment `word` (case-insensitive) followed by '/'. */
static bool expect_segment(const char **p, const char *word) {
  size_t n = strlen(word);
  if (strncasecmp(*p, word, n) != 0 || (*p)[n] != '/')
    return false;
  *p += n + 1;
  return true;
}

int workspace_id_parse(const char *id, char **out_subscription, char **out_resource_group,
                       char **out_workspace) {
  *out_subscription = *out_resource_group = *out_workspace = NULL;
  if (!id || *id != '/')
    return RESULT_INVALID;
  const char *p = id + 1;
  char *sub = NULL, *rg = NULL, *ws = NULL;
  if (!expect_segment(&p, "subscriptions") || !(sub = resource_path_segment(&p)) ||
      !expect_segment(&p, "resourceGroups") || !(rg = resource_path_segment(&p)) ||
      !expect_segment(&p, "providers") ||
      !expect_segment(&p, "Microsoft.MachineLearningServices") ||
      !expect_segment(&p, "workspaces") || !(ws = resource_path_segment(&p)) ||
      *p != '\0') {
    free(sub);
    free(rg);
    free(ws);
    return RESULT_INVALID;
  }
  *out_subscription = sub;
  *out_resource_group = rg;
  *out_workspace = ws;
  return RESULT_OK;
}
