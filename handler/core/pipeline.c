/* The pipeline: event -> record -> enrichment -> export; see pipeline.h. */
#include "core/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "base/log.h"
#include "core/record.h"
#include "base/timeutil.h"
#include "watch/run_table.h"

struct pipeline {
  struct pipeline_options options;
};

struct pipeline *pipeline_new(const struct pipeline_options *options) {
  struct pipeline *pipe = calloc(1, sizeof *pipe);
  if (pipe)
    pipe->options = *options;
  return pipe;
}

void pipeline_free(struct pipeline *pipe) {
  free(pipe);
}

static int export_one(struct pipeline *pipe, const struct record *rec,
                      int64_t deadline_ms, struct error_info *err) {
  const struct record *records[1] = {rec};
  return exporter_export(pipe->options.exporter, records, 1, deadline_ms, err);
}

static int reject(struct pipeline *pipe, const char *reason, const json_t *raw,
                  int64_t deadline_ms, struct pipeline_outcome *out,
                  struct error_info *err) {
  struct record rec;
  record_init(&rec);
  int r = record_rejected(&rec, reason, raw);
  if (r == RESULT_OK)
    r = export_one(pipe, &rec, deadline_ms, err);
  else
    error_set(err, r, "", "out of memory recording a rejected event");
  const char *id = record_string(&rec, REC_EVENT_ID);
  if (r == RESULT_OK) {
    log_warn("event=rejected event_id=%s reason=\"%s\"", id ? id : "-", reason);
    snprintf(out->summary, sizeof out->summary, "rejected event %s: %s",
             id ? id : "(no id)", reason);
  }
  record_cleanup(&rec);
  return r;
}

/* Adds run details when an enricher is configured; records why not otherwise. */
static int enrich(struct pipeline *pipe, const struct aml_event *ev, struct record *rec,
                  int64_t deadline_ms, struct error_info *err) {
  if (ev->run_kind == RUN_KIND_NONE)
    return record_set_string(rec, REC_ENRICHMENT, "not applicable");
  if (!pipe->options.enricher)
    return record_set_string(rec, REC_ENRICHMENT,
                             "skipped: no Azure credential configured");
  struct enricher *e = pipe->options.enricher;
  return e->enrich(e, ev, rec, deadline_ms, err);
}

/* Exports the record, and with `notice` a copy of it named so, event only. */
static int export_record(struct pipeline *pipe, const struct record *rec,
                         const char *notice, int64_t deadline_ms,
                         struct error_info *err) {
  if (!notice)
    return export_one(pipe, rec, deadline_ms, err);
  struct record copy;
  record_init(&copy);
  int r = record_copy(&copy, rec);
  if (r == RESULT_OK) {
    snprintf(copy.name, sizeof copy.name, "%s", notice);
    copy.shape = RECORD_SHAPE_NOTICE;
    const struct record *records[2] = {rec, &copy};
    r = exporter_export(pipe->options.exporter, records, 2, deadline_ms, err);
  } else {
    error_set(err, r, "", "out of memory copying a record");
  }
  record_cleanup(&copy);
  return r;
}

static int process(struct pipeline *pipe, const json_t *event, const json_t *raw,
                   const char *decode_error, const char *notice, int64_t deadline_ms,
                   struct pipeline_outcome *out, struct error_info *err) {
  out->rejected = true;
  out->summary[0] = '\0';
  if (!event)
    return reject(pipe, decode_error ? decode_error : "no event", raw, deadline_ms, out,
                  err);

  struct aml_event ev;
  struct error_info why;
  error_clear(&why);
  if (event_parse(event, &ev, &why) != RESULT_OK)
    return reject(pipe, why.message, event, deadline_ms, out, err);

  int r;
  struct record rec;
  record_init(&rec);
  if (!config_watches(pipe->options.config, ev.subscription_id, ev.resource_group,
                      ev.workspace)) {
    char reason[512];
    snprintf(reason, sizeof reason,
             "workspace %.64s/%.90s/%.90s is not one of the watched workspaces "
             "(AML_WORKSPACES, or SUBSCRIPTION_ID/AML_RESOURCE_GROUP/AML_WORKSPACE_NAME)",
             ev.subscription_id, ev.resource_group, ev.workspace);
    r = reject(pipe, reason, event, deadline_ms, out, err);
    goto done;
  }

  out->rejected = false;
  if ((r = record_from_event(&rec, &ev)) != RESULT_OK) {
    error_set(err, r, "", "out of memory building the record");
    goto done;
  }
  if ((r = enrich(pipe, &ev, &rec, deadline_ms, err)) != RESULT_OK) {
    log_error("event=enrichment_failed event_id=%s run_id=%s result=\"%s\" reason=\"%s\"",
              ev.id, ev.run_id ? ev.run_id : "-", result_str(r), err ? err->message : "");
    goto done;
  }
  if (pipe->options.runs && (r = run_table_record_event(pipe->options.runs, &ev, &rec,
                                                        deadline_ms, err)) != RESULT_OK) {
    log_error("event=run_table_failed event_id=%s result=\"%s\" reason=\"%s\"", ev.id,
              result_str(r), err ? err->message : "");
    goto done;
  }
  if ((r = export_record(pipe, &rec, notice, deadline_ms, err)) != RESULT_OK) {
    log_error("event=export_failed event_id=%s result=\"%s\" reason=\"%s\"", ev.id,
              result_str(r), err ? err->message : "");
    goto done;
  }

  const char *status = record_string(&rec, REC_STATUS);
  const char *enrichment = record_string(&rec, REC_ENRICHMENT);
  log_info("event=recorded name=%s event_id=%s run_id=%s status=%s enrichment=\"%s\"",
           rec.name, ev.id, ev.run_id ? ev.run_id : "-", status ? status : "-",
           enrichment ? enrichment : "-");
  snprintf(out->summary, sizeof out->summary, "recorded %s for event %s%s%s%s%s",
           rec.name, ev.id, ev.run_id ? " run " : "", ev.run_id ? ev.run_id : "",
           status ? " status " : "", status ? status : "");
done:
  record_cleanup(&rec);
  event_cleanup(&ev);
  return r;
}

int pipeline_process(struct pipeline *pipe, const json_t *event, const json_t *raw,
                     const char *decode_error, int64_t deadline_ms,
                     struct pipeline_outcome *out, struct error_info *err) {
  return process(pipe, event, raw, decode_error, NULL, deadline_ms, out, err);
}

int pipeline_process_reconciled(struct pipeline *pipe, const json_t *event,
                                int64_t deadline_ms, struct pipeline_outcome *out,
                                struct error_info *err) {
  int r = process(pipe, event, event, NULL, "AmlRunReconciled", deadline_ms, out, err);
  if (r == RESULT_OK && out->rejected)
    r = error_set(err, RESULT_INVALID, "", "the reconciled run's event was rejected: %s",
                  out->summary);
  return r;
}
