/* Reading one setting from the environment, with the one rule every setting
 * follows: a setting that is unset, empty or only blanks is unset (README,
 * Configuration). Leading blanks of a set value are skipped.
 *
 * Settings are read through a getenv-like callback so tests can supply their
 * own table; settings_process_env is the real environment. Which settings
 * exist, and their aliases, is one table: config_settings (core/config.h).
 *
 * Pure functions; thread-safe when the callback is (getenv is, while nobody
 * calls setenv). Returned pointers belong to the callback's storage. */
#ifndef HANDLER_SETTINGS_H
#define HANDLER_SETTINGS_H

#include <stdbool.h>

#include "base/result.h"

typedef const char *(*settings_getenv_fn)(void *ctx, const char *name);

/* getenv() as a settings_getenv_fn (ctx unused). */
const char *settings_process_env(void *ctx, const char *name);

/* The value of `name`, or NULL when unset or blank (or when getenv_fn is NULL). */
HANDLER_NODISCARD const char *settings_get(settings_getenv_fn getenv_fn, void *ctx,
                                           const char *name);

/* The first of `names` (NULL-terminated) that is set; *out_name, when not NULL,
 * is the name it came from (names[0] when none is set). */
HANDLER_NODISCARD const char *settings_first(settings_getenv_fn getenv_fn, void *ctx,
                                             const char *const *names,
                                             const char **out_name);

/* A switch: `fallback` when unset; on/true/yes/1 or off/false/no/0 (any case).
 * Anything else fails with RESULT_INVALID and `err` naming the setting. */
HANDLER_NODISCARD int settings_get_switch(settings_getenv_fn getenv_fn, void *ctx,
                                          const char *name, bool fallback, bool *out,
                                          struct error_info *err);

#endif
