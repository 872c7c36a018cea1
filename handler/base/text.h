/* Small string helpers that several modules need: a formatted string on the
 * heap, and a case-insensitive substring test.
 *
 * Pure functions, thread-safe. text_format's result is malloc'd; the caller
 * frees it. */
#ifndef HANDLER_TEXT_H
#define HANDLER_TEXT_H

#include <stdbool.h>

#include "base/result.h"

/* printf into a new string; NULL when out of memory (or on a bad format). */
HANDLER_NODISCARD char *text_format(const char *fmt, ...) HANDLER_PRINTF(1, 2);

/* Whether `needle` occurs in `text`, ignoring ASCII case. A NULL text holds
 * nothing. */
bool text_contains_ci(const char *text, const char *needle);

#endif
