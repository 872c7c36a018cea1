/* Logging: one line per event, `key=value`, tagged with the invocation id.
 *
 * The Functions host logs our stdout as Information and our stderr as Error
 * (Warning when the line contains "warn"), so debug/info lines go to stdout and
 * warn/error lines to stderr. Lines are written whole under one lock, so
 * concurrent invocations never interleave, and control characters coming from
 * input are escaped so input cannot forge a log line. The level is checked before
 * anything is formatted. Secrets never reach a log line: callers mask them with
 * log_mask() first.
 *
 * Start-up: log_hold() keeps debug and info lines back (warnings and errors still
 * go out at once) until log_release_after() writes one line and then the held
 * ones in their order, so the line that says the handler listens, and how long
 * that took, is its first. At most LOG_HOLD_MAX lines are held; further ones are
 * written at once.
 *
 * Threading: every function is thread-safe. log_set_invocation() sets a
 * thread-local context that later lines of that thread carry. */
#ifndef HANDLER_LOG_H
#define HANDLER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/result.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Parses "debug", "info", "warn", "error", "off" (case-insensitive).
 * Returns -1 for anything else. */
int log_level_parse(const char *name);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Tag this thread's following lines with `invocation_id` (copied; NULL clears). */
void log_set_invocation(const char *invocation_id);

/* Writes `level=<lvl> [invocation_id=<id>] <formatted message>` as one line. */
void log_write(enum log_level level, const char *fmt, ...) HANDLER_PRINTF(2, 3);

#define log_debug(...)                                                                   \
  do {                                                                                   \
    if (log_enabled(LOG_DEBUG))                                                          \
      log_write(LOG_DEBUG, __VA_ARGS__);                                                 \
  } while (0)
#define log_info(...)                                                                    \
  do {                                                                                   \
    if (log_enabled(LOG_INFO))                                                           \
      log_write(LOG_INFO, __VA_ARGS__);                                                  \
  } while (0)
#define log_warn(...)                                                                    \
  do {                                                                                   \
    if (log_enabled(LOG_WARN))                                                           \
      log_write(LOG_WARN, __VA_ARGS__);                                                  \
  } while (0)
#define log_error(...)                                                                   \
  do {                                                                                   \
    if (log_enabled(LOG_ERROR))                                                          \
      log_write(LOG_ERROR, __VA_ARGS__);                                                 \
  } while (0)

#define LOG_HOLD_MAX 64

/* Holds debug and info lines from now on (see the top of this file). */
void log_hold(void);

/* Writes one info line (`fmt`, like log_write; skipped when info is off), then
 * every held line, and stops holding. Without a hold, just writes the line. */
void log_release_after(const char *fmt, ...) HANDLER_PRINTF(1, 2);

/* Writes the held lines and stops holding (start-up failed). */
void log_release(void);

/* Writes `line` plus a newline to stdout under the log lock (records of the
 * console exporter go through here so they never interleave with log lines). */
void log_stdout_line(const char *line);

/* Writes into `out` a masked form of a secret that is safe to log: its first four
 * characters and its length ("abcd...(36 chars)"), or "(empty)". */
void log_mask(const char *secret, char *out, size_t out_size);

/* Redirect output (tests). NULL restores stdout/stderr. Not thread-safe. */
void log_set_streams(FILE *out, FILE *err);

#endif
