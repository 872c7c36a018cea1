/* Result codes and the human-readable error every module hands back.
 *
 * Functions that can fail return an `int`: RESULT_OK (0) or one of the negative
 * codes below. Where a person will read the reason (bad input, bad config, a
 * refused credential) the function also fills a caller-owned `struct error_info`
 * with the name of the offending field or setting and one sentence; callers pass
 * that sentence on verbatim (a 400 body, a log line, a start-up message).
 * Thread-safe: no shared state. */
#ifndef HANDLER_RESULT_H
#define HANDLER_RESULT_H

#include <stddef.h>

enum result {
  RESULT_OK = 0,
  RESULT_NOMEM = -1,     /* an allocation failed */
  RESULT_INVALID = -2,   /* input or configuration is malformed */
  RESULT_TOOBIG = -3,    /* a size or depth cap was reached */
  RESULT_IO = -4,        /* a local file or socket operation failed */
  RESULT_TRANSIENT = -5, /* upstream failed in a way that may pass: retry later */
  RESULT_PERMANENT = -6, /* upstream refused for good (not found, forbidden) */
  RESULT_TIMEOUT = -7,   /* the deadline passed */
  RESULT_NOTFOUND = -8,  /* the thing asked for does not exist */
  RESULT_DENIED = -9,    /* a credential was refused */
  RESULT_UNSUPPORTED = -10,
  RESULT_CONFLICT = -11, /* the resource exists already, or changed since it was read */
};

/* A static English name for a result code ("invalid input", ...). */
const char *result_str(int result);

struct error_info {
  char field[64];    /* the setting, JSON path or header at fault; may be empty */
  char message[384]; /* one sentence for a person; empty when no error was set */
};

#if defined(__GNUC__)
#define HANDLER_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/* On a function whose result must be looked at: a result code, an allocation,
 * a handle. Ignoring it is a compiler warning (an error with -Werror). */
#define HANDLER_NODISCARD __attribute__((warn_unused_result))
#else
#define HANDLER_PRINTF(fmt, args)
#define HANDLER_NODISCARD
#endif

/* Fill `err` (which may be NULL) and return `result`, so a failing function can
 * `return error_set(err, RESULT_INVALID, "AML_WORKSPACES", "...", ...)`. */
int error_set(struct error_info *err, int result, const char *field, const char *fmt, ...)
    HANDLER_PRINTF(4, 5);

void error_clear(struct error_info *err);

#endif
