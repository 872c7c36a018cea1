/* The invocation payload the Functions host POSTs for an eventGridTrigger.
 *
 * Body: {"Data": {"<binding>": <event>}, "Metadata": {"data": ..., "sys":
 * {"MethodName", "UtcNow", "RandGuid"}, "RetryContext"?: {...}}}. The event
 * arrives as an object, or as a JSON string holding it (decoded once, and once
 * more when the result is again a string). Metadata is not read: everything the
 * handler needs is in the event.
 *
 * invocation_parse() separates two kinds of bad input: a body that is not an
 * invocation at all (not JSON, not an object, no Data object) fails with
 * RESULT_INVALID and `err` (the server answers 4xx); an invocation whose event
 * cannot be decoded succeeds with `event` NULL and `event_error` saying why (the
 * event is recorded as rejected and acknowledged).
 *
 * Ownership: the struct owns `root` and `event` (new references); strings are
 * borrowed from `root`. invocation_cleanup() releases them. Thread-safe: no shared
 * state. */
#ifndef HANDLER_INVOCATION_H
#define HANDLER_INVOCATION_H

#include "base/jsonx.h"
#include "base/result.h"

/* The cap on the body and nesting the server and parser enforce. An Event Grid
 * event is at most 1 MB; the payload carries it twice (Data and Metadata.data),
 * possibly string-encoded (escaping can double it). */
#define INVOCATION_MAX_BODY (8u * 1024 * 1024)
#define INVOCATION_MAX_DEPTH 64

struct invocation {
  json_t *root;
  json_t *event;     /* decoded event, NULL when it could not be decoded */
  json_t *raw_event; /* Data.<binding> as received (borrowed from root), or NULL */
  struct error_info event_error;
};

/* `binding` names the key under Data; when it is absent and Data has exactly one
 * key, that key is used. */
HANDLER_NODISCARD int invocation_parse(const char *body, size_t len, const char *binding,
                                       struct invocation *out, struct error_info *err);
void invocation_cleanup(struct invocation *inv);

#endif
