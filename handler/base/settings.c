/* One setting reader with one blank rule; see settings.h. */
#include "base/settings.h"

#include <ctype.h>
#include <stdlib.h>

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
