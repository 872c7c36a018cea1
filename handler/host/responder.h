/* The Functions host protocol: one POST from the host in, one answer out.
 *
 * For each POST it parses the invocation payload (host/invocation), runs the
 * event through the pipeline (core/pipeline) and answers:
 *   - 200 with {"Outputs":{},"Logs":[...],"ReturnValue":null}: the record, or a
 *     rejected-event record (AmlEventRejected), was exported;
 *   - 400 with {"error":{...}}: the body is not an invocation at all;
 *   - 500 with the same shape plus "error": a transient failure upstream (run
 *     history, ingestion) outlasted the retries or the invocation's time budget;
 *     the host fails the invocation and Event Grid delivers the event again.
 * A timerTrigger function (workspace_watch) runs one tick of the workspace watch
 * instead: 200 with the tick's lines in Logs (also when the watch is off, which
 * the Logs say), 500 when storage or run history failed.
 * The protocol is described in docs/protocols.md.
 *
 * Threading: responder_invoke() runs concurrently on server threads; the
 * responder holds no mutable state of its own. Ownership: the responder borrows
 * everything in its options; they must outlive it. */
#ifndef HANDLER_RESPONDER_H
#define HANDLER_RESPONDER_H

#include "base/result.h"
#include "core/pipeline.h"
#include "host/function_app.h"
#include "host/server.h"

struct workspace_watch;

struct responder_options {
  const struct function_app *app;
  struct pipeline *pipeline;
  int invocation_budget_ms;      /* the deadline of one invocation, from its arrival */
  struct workspace_watch *watch; /* answers timer invocations; NULL: watch off */
};

struct responder;

HANDLER_NODISCARD struct responder *
responder_new(const struct responder_options *options);
void responder_free(struct responder *resp);

/* A server_invoke_fn: `ctx` is the responder. */
void responder_invoke(void *ctx, const struct server_request *request,
                      struct server_response *response);

#endif
