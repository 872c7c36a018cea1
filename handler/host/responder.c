/* The host protocol: invocation payload -> pipeline -> answer; see responder.h. */
#include "host/responder.h"

#include <stdlib.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "host/invocation.h"
#include "watch/workspace_watch.h"

struct responder {
  struct responder_options options;
};

struct responder *responder_new(const struct responder_options *options) {
  struct responder *resp = calloc(1, sizeof *resp);
  if (resp)
    resp->options = *options;
  return resp;
}

void responder_free(struct responder *resp) {
  free(resp);
}

/* The JSON answer: the host's invocation result shape with `logs` (borrowed),
 * plus "error" on failure. */
static char *answer_body(json_t *logs, const char *error_code,
                         const struct error_info *err) {
  json_t *body =
      logs ? json_pack("{s:{},s:O,s:n}", "Outputs", "Logs", logs, "ReturnValue") : NULL;
  if (body && error_code)
    json_object_set_new(
        body, "error",
        json_pack("{s:s,s:s}", "code", error_code, "message", err->message));
  char *text = body ? jsonx_dump(body) : NULL;
  json_decref(body);
  return text;
}

/* The answer of an event invocation: its one log line, if any. */
static char *invocation_body(const char *log_line, const char *error_code,
                             const struct error_info *err) {
  json_t *logs = json_array();
  if (logs && log_line && *log_line)
    json_array_append_new(logs, json_string(log_line));
  char *text = answer_body(logs, error_code, err);
  json_decref(logs);
  return text;
}

/* A timer invocation: one tick of the workspace watch. */
static void invoke_timer(struct responder *resp, const struct invocation *inv,
                         int64_t deadline_ms, struct server_response *response) {
  struct error_info err;
  error_clear(&err);
  json_t *logs = json_array();
  int r = RESULT_OK;
  if (!resp->options.watch) {
    json_array_append_new(logs, json_string("workspace watch is off: no storage account "
                                            "configured (AzureWebJobsStorage)"));
  } else {
    struct watch_tick_report report;
    r = workspace_watch_tick(resp->options.watch, time_now_ms(), deadline_ms, logs,
                             &report, &err);
    if (json_is_true(jsonx_get_ci(inv->event, "IsPastDue")))
      json_array_append_new(logs, json_string("the timer was past due"));
  }
  response->status = r == RESULT_OK ? 200 : 500;
  response->body = answer_body(logs, r == RESULT_OK ? NULL : "WatchFailed", &err);
  json_decref(logs);
}

static char *bad_request_body(const struct error_info *err) {
  json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", "InvalidInvocation",
                           "message", err->message);
  char *text = body ? jsonx_dump(body) : NULL;
  json_decref(body);
  return text;
}

void responder_invoke(void *ctx, const struct server_request *request,
                      struct server_response *response) {
  struct responder *resp = ctx;
  int64_t deadline_ms = time_mono_ms() + resp->options.invocation_budget_ms;
  const struct function_def *fn = function_app_find(resp->options.app, request->function);
  struct error_info err;
  error_clear(&err);

  struct invocation inv;
  if (invocation_parse(request->body, request->body_len, fn ? fn->binding : NULL, &inv,
                       &err) != RESULT_OK) {
    log_warn("event=invalid_invocation function=%s reason=\"%s\"", request->function,
             err.message);
    response->status = 400;
    response->body = bad_request_body(&err);
    return;
  }

  if (fn && fn->trigger == FUNCTION_TRIGGER_TIMER) {
    invoke_timer(resp, &inv, deadline_ms, response);
    invocation_cleanup(&inv);
    return;
  }

  struct pipeline_outcome outcome;
  int r = pipeline_process(resp->options.pipeline, inv.event,
                           inv.raw_event ? inv.raw_event : inv.root,
                           inv.event_error.message, deadline_ms, &outcome, &err);
  if (r == RESULT_OK) {
    response->status = 200;
    response->body = invocation_body(outcome.summary, NULL, NULL);
  } else {
    response->status = 500;
    response->body = invocation_body(outcome.summary,
                                     r == RESULT_TIMEOUT  ? "DeadlineExceeded"
                                     : r == RESULT_DENIED ? "CredentialRefused"
                                                          : "UpstreamFailure",
                                     &err);
  }
  invocation_cleanup(&inv);
}
