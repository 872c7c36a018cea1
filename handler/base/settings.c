/* One setting reader with one blank rule; see settings.h. */
#include "base/settings.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *settings_process_env(void *ctx, const char *name) {
  (void)ctx;
  return getenv(name);
}

const char *settings_get(settings_getenv_fn getenv_fn, void *ctx, const char *name) {
  const char *v = getenv_fn ? getenv_fn(ctx, name) : NULL;
  if (!v)
    return NULL;
  while (isspace((unsigned char)*v))
    v++;
  return *v ? v : NULL;
}

const char *settings_first(settings_getenv_fn getenv_fn, void *ctx,
                           const char *const *names, const char **out_name) {
  if (out_name)
    *out_name = names[0];
  for (size_t i = 0; names[i]; i++) {
    const char *v = settings_get(getenv_fn, ctx, names[i]);
    if (v) {
      if (out_name)
        *out_name = names[i];
      return v;
    }
  }
  return NULL;
}

int settings_get_switch(settings_getenv_fn getenv_fn, void *ctx, const char *name,
                        bool fallback, bool *out, struct error_info *err) {
  static const char *const on[] = {"on", "true", "yes", "1"};
  static const char *const off[] = {"off", "false", "no", "0"};
  const char *v = settings_get(getenv_fn, ctx, name);
  *out = fallback;
  if (!v)
    return RESULT_OK;
  size_t len = strlen(v);
  while (len > 0 && isspace((unsigned char)v[len - 1]))
    len--;
  for (size_t i = 0; i < sizeof on / sizeof *on; i++) {
    if (strlen(on[i]) == len && strncasecmp(v, on[i], len) == 0)
      return *out = true, RESULT_OK;
    if (strlen(off[i]) == len && strncasecmp(v, off[i], len) == 0)
      return *out = false, RESULT_OK;
  }
  return error_set(err, RESULT_INVALID, name,
                   "%s is \"%.20s\"; use on or off (true or false)", name, v);
}
