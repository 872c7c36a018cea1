/* The processor: one invocation in, one record out.
 *
 * For each POST from the Functions host it parses the invocation payload, the
 * event, checks the workspace is watched, builds the record, asks the enricher
 * (when there is one) to add run details, and hands the record to the exporter.
 * It decides the answer:
 *   - 200 with {"Outputs":{},"Logs":[...],"ReturnValue":null}: the record, or a
 *     rejected-event record (AmlEventRejected), was exported;
 *   - 400 with {"error":{...}}: the body is not an invocation at all;
 *   - 500 with the same shape plus "error": a transient failure upstream (run
 *     history, ingestion) outlasted the retries or the invocation's time budget;
 *     the host fails the invocation and Event Grid delivers the event again.
 *
 * Threading: processor_invoke() runs concurrently on server threads; the
 * processor holds no mutable state of its own. Ownership: the processor borrows
 * everything in its options; they must outlive it. */
#ifndef HANDLER_PROCESSOR_H
#define HANDLER_PROCESSOR_H

#include <stdint.h>

#include "core/config.h"
#include "core/enricher.h"
#include "core/exporter.h"
#include "host/function_app.h"
#include "base/jsonx.h"
#include "host/server.h"

struct processor_options {
  const struct config *config;
  const struct function_app *app;
  struct exporter *exporter;
  struct enricher *enricher; /* NULL: records carry what the event alone says */
};

struct processor;

struct processor *processor_new(const struct processor_options *options);
void processor_free(struct processor *proc);

/* A server_invoke_fn: `ctx` is the processor. */
void processor_invoke(void *ctx, const struct server_request *request,
                      struct server_response *response);

/* Processes one decoded event (or, with `event` NULL, an event that could not be
 * decoded: `decode_error` says why and `raw` is what arrived). Appends a line for
 * the host's log to `logs` (a JSON array). Returns RESULT_OK when a record or a
 * rejected record was exported (*out_rejected, when not NULL, says which),
 * otherwise the transient failure with `err`. */
int processor_process_event(struct processor *proc, const json_t *event,
                            const json_t *raw, const char *decode_error,
                            int64_t deadline_ms, json_t *logs, bool *out_rejected,
                            struct error_info *err);

#endif
