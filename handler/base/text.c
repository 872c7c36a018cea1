/* String helpers; see text.h. */
#include "base/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *text_format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!out)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(out, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return out;
}

bool text_contains_ci(const char *text, const char *needle) {
  size_t n = strlen(needle);
  for (const char *t = text; t && *t; t++)
    if (strncasecmp(t, needle, n) == 0)
      return true;
  return false;
}
