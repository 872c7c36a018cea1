/* The processor: payload -> event -> record -> enrichment -> export; see
 * processor.h for the answers it gives and why. */
#include "host/processor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "host/invocation.h"
#include "base/log.h"
#include "core/record.h"
#include "base/timeutil.h"

struct processor {
  struct processor_options options;
};

struct processor *processor_new(const struct processor_options *options) {
  struct processor *proc = calloc(1, sizeof *proc);
  if (proc)
    proc->options = *options;
  return proc;
}

void processor_free(struct processor *proc) {
  free(proc);
}

static void add_log(json_t *logs, const char *fmt, ...) HANDLER_PRINTF(2, 3);
static void add_log(json_t *logs, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  json_array_append_new(logs, json_string(line));
}

static int export_one(struct processor *proc, const struct record *rec,
                      int64_t deadline_ms, struct error_info *err) {
  const struct record *records[1] = {rec};
  return exporter_export(proc->options.exporter, records, 1, deadline_ms, err);
}

static int reject(struct processor *proc, const char *reason, const json_t *raw,
                  int64_t deadline_ms, json_t *logs, struct error_info *err) {
  struct record rec;
  record_init(&rec);
  int r = record_rejected(&rec, reason, raw);
  if (r == RESULT_OK)
    r = export_one(proc, &rec, deadline_ms, err);
  else
    error_set(err, r, "", "out of memory recording a rejected event");
  const char *id = record_string(&rec, REC_EVENT_ID);
  if (r == RESULT_OK) {
    log_warn("event=rejected event_id=%s reason=\"%s\"", id ? id : "-", reason);
    add_log(logs, "rejected event %s: %s", id ? id : "(no id)", reason);
  }
  record_cleanup(&rec);
  return r;
}

/* Adds run details when an enricher is configured; records why not otherwise. */
static int enrich(struct processor *proc, const struct aml_event *ev, struct record *rec,
                  int64_t deadline_ms, struct error_info *err) {
  if (ev->run_kind == RUN_KIND_NONE)
    return record_set_string(rec, REC_ENRICHMENT, "not applicable");
  if (!proc->options.enricher)
    return record_set_string(rec, REC_ENRICHMENT,
                             "skipped: no Azure credential configured");
  struct enricher *e = proc->options.enricher;
  return e->enrich(e, ev, rec, deadline_ms, err);
}

int processor_process_event(struct processor *proc, const json_t *event,
                            const json_t *raw, const char *decode_error,
                            int64_t deadline_ms, json_t *logs, bool *out_rejected,
                            struct error_info *err) {
  bool rejected_placeholder;
  bool *rejected = out_rejected ? out_rejected : &rejected_placeholder;
  *rejected = true;
  if (!event)
    return reject(proc, decode_error ? decode_error : "no event", raw, deadline_ms, logs,
                  err);

  struct aml_event ev;
  struct error_info why;
  error_clear(&why);
  if (event_parse(event, &ev, &why) != RESULT_OK)
    return reject(proc, why.message, event, deadline_ms, logs, err);

  int r;
  struct record rec;
  record_init(&rec);
  if (!config_watches(proc->options.config, ev.subscription_id, ev.resource_group,
                      ev.workspace)) {
    char reason[512];
    snprintf(reason, sizeof reason,
             "workspace %.64s/%.90s/%.90s is not one of the watched workspaces "
             "(AML_WORKSPACES, or SUBSCRIPTION_ID/AML_RESOURCE_GROUP/AML_WORKSPACE_NAME)",
             ev.subscription_id, ev.resource_group, ev.workspace);
    r = reject(proc, reason, event, deadline_ms, logs, err);
    goto done;
  }

  *rejected = false;
  if ((r = record_from_event(&rec, &ev)) != RESULT_OK) {
    error_set(err, r, "", "out of memory building the record");
    goto done;
  }
  if ((r = enrich(proc, &ev, &rec, deadline_ms, err)) != RESULT_OK) {
    log_error("event=enrichment_failed event_id=%s run_id=%s result=\"%s\" reason=\"%s\"",
              ev.id, ev.run_id ? ev.run_id : "-", result_str(r), err ? err->message : "");
    goto done;
  }
  if ((r = export_one(proc, &rec, deadline_ms, err)) != RESULT_OK) {
    log_error("event=export_failed event_id=%s result=\"%s\" reason=\"%s\"", ev.id,
              result_str(r), err ? err->message : "");
    goto done;
  }

  const char *status = record_string(&rec, REC_STATUS);
  const char *enrichment = record_string(&rec, REC_ENRICHMENT);
  log_info("event=recorded name=%s event_id=%s run_id=%s status=%s enrichment=\"%s\"",
           rec.name, ev.id, ev.run_id ? ev.run_id : "-", status ? status : "-",
           enrichment ? enrichment : "-");
  add_log(logs, "recorded %s for event %s%s%s%s%s", rec.name, ev.id,
          ev.run_id ? " run " : "", ev.run_id ? ev.run_id : "", status ? " status " : "",
          status ? status : "");
done:
  record_cleanup(&rec);
  event_cleanup(&ev);
  return r;
}

/* The JSON answer: the host's invocation result shape, plus "error" on failure. */
static char *invocation_body(json_t *logs, const char *error_code,
                             const struct error_info *err) {
  json_t *body = json_pack("{s:{},s:O,s:n}", "Outputs", "Logs", logs, "ReturnValue");
  if (body && error_code)
    json_object_set_new(
        body, "error",
        json_pack("{s:s,s:s}", "code", error_code, "message", err->message));
  char *text = body ? jsonx_dump(body) : NULL;
  json_decref(body);
  return text;
}

static char *bad_request_body(const struct error_info *err) {
  json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", "InvalidInvocation",
                           "message", err->message);
  char *text = body ? jsonx_dump(body) : NULL;
  json_decref(body);
  return text;
}

void processor_invoke(void *ctx, const struct server_request *request,
                      struct server_response *response) {
  struct processor *proc = ctx;
  int64_t deadline_ms = time_mono_ms() + proc->options.config->invocation_budget_ms;
  const struct function_def *fn = function_app_find(proc->options.app, request->function);
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

  json_t *logs = json_array();
  int r =
      processor_process_event(proc, inv.event, inv.raw_event ? inv.raw_event : inv.root,
                              inv.event_error.message, deadline_ms, logs, NULL, &err);
  if (r == RESULT_OK) {
    response->status = 200;
    response->body = invocation_body(logs, NULL, NULL);
  } else {
    response->status = 500;
    response->body = invocation_body(logs,
                                     r == RESULT_TIMEOUT  ? "DeadlineExceeded"
                                     : r == RESULT_DENIED ? "CredentialRefused"
                                                          : "UpstreamFailure",
                                     &err);
  }
  json_decref(logs);
  invocation_cleanup(&inv);
}
