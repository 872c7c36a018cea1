/* The workspace watch's tick; see workspace_watch.h for what it reports. */
#include "watch/workspace_watch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aml/aml_client.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "core/pipeline.h"

#define PAGE 1000
#define PURGE_PER_TICK 100
#define PURGE_PAGES 10
/* A check is started only with this much of the tick's budget left. */
#define CHECK_RESERVE_MS 1500

struct workspace_watch {
  struct watch_options o;
  pthread_mutex_t lock;
};

struct workspace_watch *workspace_watch_new(const struct watch_options *options) {
  struct workspace_watch *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->o = *options;
  pthread_mutex_init(&w->lock, NULL);
  return w;
}

void workspace_watch_free(struct workspace_watch *w) {
  if (!w)
    return;
  pthread_mutex_destroy(&w->lock);
  free(w);
}

static void add_log(json_t *logs, const char *fmt, ...) HANDLER_PRINTF(2, 3);
static void add_log(json_t *logs, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (logs)
    json_array_append_new(logs, json_string(line));
}

/* Waiting states and Running can be reported stuck. */
static bool stuckable(const char *status) {
  return run_status_is_waiting(status) || strcasecmp(status, "Running") == 0;
}

/* The threshold of a status in ms; 0 = not checked. Other open states
 * (Finalizing, CancelRequested, Paused, ...) are never reported stuck, but are
 * checked after the waiting threshold, so a lost terminal event is found. */
static int64_t threshold_ms(const struct config *cfg, const char *status) {
  if (strcasecmp(status, "Running") == 0)
    return (int64_t)cfg->stuck_running_hours * 3600 * 1000;
  return (int64_t)cfg->stuck_waiting_minutes * 60 * 1000;
}

/* Every open entity (*out_all, a new array), or the failure with err;
 * *out_complete false when the deadline stopped the listing. */
static int list_open(struct table_client *tc, int64_t deadline_ms, bool *out_complete,
                     json_t **out_all, struct error_info *err) {
  json_t *all = json_array();
  struct table_continuation cont = {0};
  *out_complete = true;
  *out_all = NULL;
  if (!all)
    return error_set(err, RESULT_NOMEM, "", "out of memory listing runs");
  do {
    if (time_mono_ms() >= deadline_ms - CHECK_RESERVE_MS) {
      *out_complete = false;
      break;
    }
    json_t *page = NULL;
    int r = table_client_query(tc, "Open eq true", PAGE, &cont, deadline_ms, &page, err);
    if (r == RESULT_TIMEOUT) {
      error_clear(err);
      *out_complete = false;
      break;
    }
    if (r == RESULT_OK && json_array_extend(all, page) != 0)
      r = error_set(err, RESULT_NOMEM, "", "out of memory listing runs");
    json_decref(page);
    if (r != RESULT_OK) {
      json_decref(all);
      table_continuation_cleanup(&cont);
      return r;
    }
  } while (cont.next_partition_key || cont.next_row_key);
  table_continuation_cleanup(&cont);
  *out_all = all;
  return RESULT_OK;
}

/* Candidates first: never reported for their status, then least recently
 * checked, then longest in their status. */
static int candidate_order(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  bool rx = strcasecmp(run_entity_string(x, "StuckReported"),
                       run_entity_string(x, "Status")) == 0;
  bool ry = strcasecmp(run_entity_string(y, "StuckReported"),
                       run_entity_string(y, "Status")) == 0;
  if (rx != ry)
    return rx ? 1 : -1;
  int c = strcmp(run_entity_string(x, "CheckedAt"), run_entity_string(y, "CheckedAt"));
  if (c)
    return c;
  return strcmp(run_entity_string(x, "Since"), run_entity_string(y, "Since"));
}

/* Copies the run's keys from an entity into a notice record. */
static int notice_from_entity(struct record *rec, const json_t *e, const char *name) {
  static const struct {
    const char *key;
    enum record_field field;
  } map[] = {{"RunId", REC_RUN_ID},
             {"Status", REC_STATUS},
             {"ExperimentId", REC_EXPERIMENT_ID},
             {"ExperimentName", REC_EXPERIMENT_NAME},
             {"RunType", REC_RUN_TYPE},
             {"PipelineRunId", REC_PIPELINE_RUN_ID},
             {"ComputeTarget", REC_TARGET},
             {"Subscription", REC_SUBSCRIPTIONS},
             {"ResourceGroup", REC_RESOURCE_GROUP},
             {"Workspace", REC_WORKSPACE}};
  snprintf(rec->name, sizeof rec->name, "%s", name);
  rec->shape = RECORD_SHAPE_NOTICE;
  const char *kind = run_entity_string(e, "RunKind");
  rec->run_kind = strcmp(kind, "pipeline") == 0 ? RUN_KIND_PIPELINE
                  : strcmp(kind, "step") == 0   ? RUN_KIND_STEP
                                                : RUN_KIND_PLAIN;
  for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
    const char *v = run_entity_string(e, map[i].key);
    if (*v && record_set_string(rec, map[i].field, v) != RESULT_OK)
      return RESULT_NOMEM;
  }
  return RESULT_OK;
}

static int export_records(struct workspace_watch *w, struct record *const *recs, size_t n,
                          int64_t deadline_ms, struct error_info *err) {
  return exporter_export(w->o.exporter, (const struct record *const *)recs, n,
                         deadline_ms, err);
}

/* A copy of `e` with string `key` set (and more pairs, NULL-terminated). */
static json_t *with(const json_t *e, ...) {
  json_t *copy = json_deep_copy(e);
  va_list ap;
  va_start(ap, e);
  for (const char *k; copy && (k = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    json_object_set_new(copy, k, json_string(v));
  }
  va_end(ap);
  return copy;
}

/* Undoes a claim: the entity as it was, over the claim's ETag (best effort). */
static void undo(struct workspace_watch *w, const json_t *before, const char *claim_etag,
                 int64_t deadline_ms) {
  struct error_info ignored;
  table_client_replace(run_table_client(w->o.runs), before, claim_etag,
                       deadline_ms + 2000, NULL, &ignored);
}

static int report_stuck(struct workspace_watch *w, const json_t *e, int64_t now_ms,
                        int64_t since_ms, int64_t limit_ms, int64_t deadline_ms,
                        json_t *logs, bool *out_reported, struct error_info *err) {
  const char *status = run_entity_string(e, "Status");
  char now[40];
  time_format_iso8601(now_ms, now, sizeof now);
  *out_reported = false;
  json_t *claim = with(e, "StuckReported", status, "CheckedAt", now, NULL);
  char *etag = NULL;
  int r = claim ? table_client_replace(run_table_client(w->o.runs), claim,
                                       run_entity_string(e, "odata.etag"), deadline_ms,
                                       &etag, err)
                : RESULT_NOMEM;
  json_decref(claim);
  if (r == RESULT_CONFLICT || r == RESULT_NOTFOUND) {
    log_info("event=watch_claim_lost run_id=%s", run_entity_string(e, "RunId"));
    free(etag);
    return RESULT_OK; /* another tick or instance got there first */
  }
  if (r != RESULT_OK) {
    free(etag);
    return r;
  }
  struct record rec;
  record_init(&rec);
  r = notice_from_entity(&rec, e, "AmlRunStuck");
  if (r == RESULT_OK && record_set_string(&rec, REC_STUCK_STATUS, status) != RESULT_OK)
    r = RESULT_NOMEM;
  record_set_number(&rec, REC_STUCK_FOR_MS, (double)(now_ms - since_ms));
  record_set_number(&rec, REC_THRESHOLD_MS, (double)limit_ms);
  struct record *recs[1] = {&rec};
  if (r == RESULT_OK)
    r = export_records(w, recs, 1, deadline_ms, err);
  if (r != RESULT_OK) {
    undo(w, e, etag, deadline_ms);
  } else {
    *out_reported = true;
    log_warn("event=run_stuck run_id=%s status=%s stuck_for_ms=%lld threshold_ms=%lld",
             run_entity_string(e, "RunId"), status, (long long)(now_ms - since_ms),
             (long long)limit_ms);
    add_log(logs, "run %s stuck in %s for %lld min", run_entity_string(e, "RunId"),
            status, (long long)((now_ms - since_ms) / 60000));
  }
  record_cleanup(&rec);
  free(etag);
  return r;
}

/* A RunStatusChanged event for the run's final state, from run history. */
static json_t *reconciled_event(const json_t *e, const json_t *run, const char *status,
                                int64_t now_ms) {
  char topic[700], subject[600], time_text[40], id[40];
  uint8_t hash[32];
  const char *run_id = run_entity_string(e, "RunId");
  const char *exp = run_entity_string(e, "ExperimentId");
  if (!*exp)
    exp =
        jsonx_string_ci(run, "experimentId") ? jsonx_string_ci(run, "experimentId") : "";
  snprintf(topic, sizeof topic,
           "/subscriptions/%s/resourceGroups/%s/providers/"
           "Microsoft.MachineLearningServices/workspaces/%s",
           run_entity_string(e, "Subscription"), run_entity_string(e, "ResourceGroup"),
           run_entity_string(e, "Workspace"));
  snprintf(subject, sizeof subject, "experiments/%s/runs/%s", exp, run_id);
  int64_t end_ms;
  const char *end = jsonx_string_ci(run, "endTimeUtc");
  time_format_iso8601(end && time_parse_iso8601_ms(end, &end_ms) ? end_ms : now_ms,
                      time_text, sizeof time_text);
  /* The same run and status always give the same event id. */
  char seed[1500];
  snprintf(seed, sizeof seed, "reconciled/%s/%s/%s", topic, run_id, status);
  crypto_sha256(seed, strlen(seed), hash);
  char hex[65];
  crypto_hex(hash, 16, hex);
  snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
           hex + 20);
  const char *run_type = jsonx_string_ci(run, "runType");
  json_t *tags = jsonx_get_ci(run, "tags"), *props = jsonx_get_ci(run, "properties");
  json_t *data = json_object();
  if (!data || jsonx_set_string(data, "experimentId", exp) ||
      jsonx_set_string(data, "experimentName", run_entity_string(e, "ExperimentName")) ||
      jsonx_set_string(data, "runId", run_id) ||
      jsonx_set_string(data, "runType",
                       run_type ? run_type : run_entity_string(e, "RunType")) ||
      json_object_set_new(data, "runTags",
                          json_is_object(tags) ? json_deep_copy(tags) : json_object()) ||
      json_object_set_new(data, "runProperties",
                          json_is_object(props) ? json_deep_copy(props)
                                                : json_object()) ||
      jsonx_set_string(data, "runStatus", status)) {
    json_decref(data);
    return NULL;
  }
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "id", id, "topic", topic,
                   "subject", subject, "eventType",
                   "Microsoft.MachineLearningServices.RunStatusChanged", "eventTime",
                   time_text, "data", data, "dataVersion", "2", "metadataVersion", "1");
}

static int reconcile(struct workspace_watch *w, const json_t *e, const json_t *run,
                     const char *status, int64_t now_ms, int64_t deadline_ms,
                     json_t *logs, bool *out_done, struct error_info *err) {
  char now[40];
  time_format_iso8601(now_ms, now, sizeof now);
  *out_done = false;
  json_t *event = reconciled_event(e, run, status, now_ms);
  json_t *closed = with(e, "Status", status, "ClosedAt", now, "CheckedAt", now, "EventId",
                        json_string_value(json_object_get(event, "id")), NULL);
  if (closed)
    json_object_set_new(closed, "Open", json_false());
  char *etag = NULL;
  int r = event && closed ? table_client_replace(run_table_client(w->o.runs), closed,
                                                 run_entity_string(e, "odata.etag"),
                                                 deadline_ms, &etag, err)
                          : RESULT_NOMEM;
  json_decref(closed);
  if (r == RESULT_CONFLICT || r == RESULT_NOTFOUND) {
    log_info("event=watch_claim_lost run_id=%s", run_entity_string(e, "RunId"));
    r = RESULT_OK;
  } else if (r == RESULT_OK) {
    struct pipeline_outcome outcome;
    r = pipeline_process_reconciled(w->o.pipeline, event, deadline_ms, &outcome, err);
    if (r == RESULT_OK && outcome.summary[0])
      add_log(logs, "%s", outcome.summary);
    if (r != RESULT_OK) {
      undo(w, e, etag, deadline_ms);
    } else {
      *out_done = true;
      log_warn("event=run_reconciled run_id=%s believed=%s status=%s",
               run_entity_string(e, "RunId"), run_entity_string(e, "Status"), status);
      add_log(logs, "run %s had ended (%s) without an event reaching us",
              run_entity_string(e, "RunId"), status);
    }
  }
  free(etag);
  json_decref(event);
  return r;
}

/* The run moved to another open status without an event: follow it. */
static int follow(struct workspace_watch *w, const json_t *e, const json_t *run,
                  const char *status, int64_t now_ms, int64_t deadline_ms,
                  struct error_info *err) {
  char now[40], since[40];
  time_format_iso8601(now_ms, now, sizeof now);
  int64_t start_ms;
  const char *start = jsonx_string_ci(run, "startTimeUtc");
  time_format_iso8601(strcasecmp(status, "Running") == 0 && start &&
                              time_parse_iso8601_ms(start, &start_ms)
                          ? start_ms
                          : now_ms,
                      since, sizeof since);
  json_t *moved = with(e, "Status", status, "Since", since, "StuckReported", "",
                       "CheckedAt", now, NULL);
  int r = moved ? table_client_replace(run_table_client(w->o.runs), moved,
                                       run_entity_string(e, "odata.etag"), deadline_ms,
                                       NULL, err)
                : RESULT_NOMEM;
  json_decref(moved);
  return r == RESULT_CONFLICT || r == RESULT_NOTFOUND ? RESULT_OK : r;
}

/* Marks a still-stuck, already reported run as checked (so others get a turn). */
static void touch(struct workspace_watch *w, const json_t *e, int64_t now_ms,
                  int64_t deadline_ms) {
  char now[40];
  struct error_info ignored;
  time_format_iso8601(now_ms, now, sizeof now);
  json_t *t = with(e, "CheckedAt", now, NULL);
  if (t)
    table_client_replace(run_table_client(w->o.runs), t,
                         run_entity_string(e, "odata.etag"), deadline_ms, NULL, &ignored);
  json_decref(t);
}

/* One candidate: ask run history, then act. Sets *out_closed when the run left
 * the open set. */
static int check(struct workspace_watch *w, const json_t *e, int64_t now_ms,
                 int64_t since_ms, int64_t limit_ms, int64_t deadline_ms, json_t *logs,
                 struct watch_tick_report *rep, bool *out_closed,
                 struct error_info *err) {
  const char *status = run_entity_string(e, "Status");
  const char *run_id = run_entity_string(e, "RunId");
  bool reported = strcasecmp(run_entity_string(e, "StuckReported"), status) == 0;
  json_t *run = NULL;
  int r;
  *out_closed = false;
  if (w->o.aml) {
    rep->history_calls++;
    r = aml_client_get_run(
        w->o.aml, run_entity_string(e, "Subscription"),
        run_entity_string(e, "ResourceGroup"), run_entity_string(e, "Workspace"),
        run_entity_string(e, "ExperimentId"), run_id, deadline_ms, &run, err);
    if (r == RESULT_NOTFOUND) {
      struct error_info del_err;
      r = table_client_delete(run_table_client(w->o.runs),
                              run_entity_string(e, "PartitionKey"),
                              run_entity_string(e, "RowKey"),
                              run_entity_string(e, "odata.etag"), deadline_ms, &del_err);
      log_warn("event=run_gone run_id=%s status=%s reason=\"run history has no such run "
               "(404)\" action=%s",
               run_id, status, r == RESULT_OK ? "deleted" : "left");
      add_log(logs, "run %s is gone from run history; removed from the run table",
              run_id);
      if (r == RESULT_OK) {
        rep->gone++;
        *out_closed = true;
      }
      return r == RESULT_CONFLICT || r == RESULT_NOTFOUND || r == RESULT_OK
                 ? RESULT_OK
                 : (*err = del_err, r);
    }
    if (r == RESULT_PERMANENT) {
      log_warn("event=watch_check_failed run_id=%s reason=\"%s\"", run_id, err->message);
      touch(w, e, now_ms, deadline_ms);
      error_clear(err);
      return RESULT_OK;
    }
    if (r != RESULT_OK)
      return r;
  }
  const char *current = run ? run_status_canonical(jsonx_string_ci(run, "status")) : NULL;
  if (!current)
    current = status;
  if (run_status_is_terminal(current)) {
    bool done;
    r = reconcile(w, e, run, current, now_ms, deadline_ms, logs, &done, err);
    rep->reconciled += done;
    *out_closed = done;
  } else if (strcasecmp(current, status) != 0) {
    r = follow(w, e, run, current, now_ms, deadline_ms, err);
    rep->moved++;
  } else if (!reported && stuckable(status)) {
    bool done;
    r = report_stuck(w, e, now_ms, since_ms, limit_ms, deadline_ms, logs, &done, err);
    rep->stuck += done;
  } else {
    touch(w, e, now_ms, deadline_ms);
    r = RESULT_OK;
  }
  json_decref(run);
  return r;
}

/* AmlActiveRuns per status and "all", and AmlOldestWaitingRunAgeMs. */
static int export_gauges(struct workspace_watch *w, json_t *open, const bool *closed,
                         int64_t now_ms, int64_t deadline_ms, struct error_info *err) {
  enum { MAX_STATUSES = 24 };
  struct record recs[MAX_STATUSES + 2];
  struct record *ptrs[MAX_STATUSES + 2];
  const char *names[MAX_STATUSES];
  unsigned counts[MAX_STATUSES] = {0}, total = 0;
  size_t n = 0, i;
  int64_t oldest = 0;
  json_t *e;
  json_array_foreach(open, i, e) {
    if (closed[i])
      continue;
    const char *s = run_entity_string(e, "Status");
    size_t k = 0;
    while (k < n && strcasecmp(names[k], s) != 0)
      k++;
    if (k == n && n < MAX_STATUSES)
      names[n++] = s;
    if (k < n)
      counts[k]++;
    total++;
    int64_t since;
    if (run_status_is_waiting(s) && run_entity_since_ms(e, &since) &&
        now_ms - since > oldest)
      oldest = now_ms - since;
  }
  size_t m = 0;
  int r = RESULT_OK;
  for (size_t k = 0; k <= n; k++, m++) {
    record_init(&recs[m]);
    ptrs[m] = &recs[m];
    snprintf(recs[m].name, sizeof recs[m].name, "AmlActiveRuns");
    recs[m].shape = RECORD_SHAPE_METRIC;
    if (record_set_string(&recs[m], REC_STATUS, k < n ? names[k] : "all") != RESULT_OK)
      r = RESULT_NOMEM;
    record_set_number(&recs[m], REC_METRIC_VALUE, k < n ? counts[k] : total);
  }
  record_init(&recs[m]);
  ptrs[m] = &recs[m];
  snprintf(recs[m].name, sizeof recs[m].name, "AmlOldestWaitingRunAgeMs");
  recs[m].shape = RECORD_SHAPE_METRIC;
  record_set_number(&recs[m], REC_METRIC_VALUE, (double)oldest);
  m++;
  if (r == RESULT_OK)
    r = export_records(w, ptrs, m, deadline_ms, err);
  else
    error_set(err, r, "", "out of memory");
  for (size_t k = 0; k < m; k++)
    record_cleanup(&recs[k]);
  return r;
}

/* Deletes closed runs past the retention (bounded; failures wait for the next
 * tick). The query scans the whole table, and the service may answer a page
 * with no entities but a continuation (a partition boundary, its time limit):
 * the pages are followed, up to PURGE_PAGES of them. */
static unsigned purge(struct workspace_watch *w, int64_t now_ms, int64_t deadline_ms) {
  char cutoff[40], filter[96];
  time_format_iso8601(now_ms - RUN_TABLE_RETENTION_MS, cutoff, sizeof cutoff);
  snprintf(filter, sizeof filter, "Open eq false and ClosedAt lt '%s'", cutoff);
  struct table_continuation cont = {0};
  struct error_info err;
  unsigned purged = 0, seen = 0;
  struct table_client *tc = run_table_client(w->o.runs);
  for (int pages = 0; pages < PURGE_PAGES && seen < PURGE_PER_TICK; pages++) {
    json_t *page = NULL, *e;
    size_t i;
    if (time_mono_ms() >= deadline_ms - CHECK_RESERVE_MS ||
        table_client_query(tc, filter, (int)(PURGE_PER_TICK - seen), &cont, deadline_ms,
                           &page, &err) != RESULT_OK)
      break;
    json_array_foreach(page, i, e) {
      if (time_mono_ms() >= deadline_ms - CHECK_RESERVE_MS)
        break;
      seen++;
      purged += table_client_delete(tc, run_entity_string(e, "PartitionKey"),
                                    run_entity_string(e, "RowKey"),
                                    run_entity_string(e, "odata.etag"), deadline_ms,
                                    &err) == RESULT_OK;
    }
    json_decref(page);
    if (!cont.next_partition_key && !cont.next_row_key)
      break;
  }
  table_continuation_cleanup(&cont);
  return purged;
}

int workspace_watch_tick(struct workspace_watch *w, int64_t now_ms, int64_t deadline_ms,
                         json_t *logs, struct watch_tick_report *rep,
                         struct error_info *err) {
  int64_t started = time_mono_ms();
  memset(rep, 0, sizeof *rep);
  pthread_mutex_lock(&w->lock);
  bool complete = true;
  json_t *open = NULL;
  int listed = list_open(run_table_client(w->o.runs), deadline_ms, &complete, &open, err);
  if (listed != RESULT_OK) {
    pthread_mutex_unlock(&w->lock);
    log_error("event=watch_tick_failed step=list result=\"%s\" reason=\"%s\"",
              result_str(listed), err->message);
    return listed;
  }
  size_t n = json_array_size(open), i;
  rep->open = (unsigned)n;
  bool *closed = calloc(n + 1, sizeof *closed);
  json_t **cands = calloc(n + 1, sizeof *cands);
  int r = closed && cands
              ? RESULT_OK
              : error_set(err, RESULT_NOMEM, "", "out of memory listing runs");
  size_t c = 0;
  json_t *e;
  json_array_foreach(open, i, e) {
    int64_t since, limit = threshold_ms(w->o.config, run_entity_string(e, "Status"));
    if (cands && limit > 0 && run_entity_since_ms(e, &since) && now_ms - since > limit)
      cands[c++] = e;
  }
  rep->candidates = (unsigned)c;
  if (r == RESULT_OK)
    qsort(cands, c, sizeof *cands, candidate_order);
  for (size_t k = 0; r == RESULT_OK && k < c; k++) {
    if (k >= (size_t)w->o.config->watch_max_checks ||
        time_mono_ms() >= deadline_ms - CHECK_RESERVE_MS) {
      rep->deferred = (unsigned)(c - k);
      complete = complete && k >= (size_t)w->o.config->watch_max_checks;
      break;
    }
    e = cands[k];
    int64_t since = 0;
    run_entity_since_ms(e, &since);
    bool gone = false;
    rep->checked++;
    r = check(w, e, now_ms, since,
              threshold_ms(w->o.config, run_entity_string(e, "Status")), deadline_ms,
              logs, rep, &gone, err);
    if (r == RESULT_TIMEOUT) { /* the deadline came inside this check: stop here */
      log_info("event=watch_tick_deadline run_id=%s reason=\"%s\"",
               run_entity_string(e, "RunId"), err->message);
      error_clear(err);
      rep->checked--;
      rep->deferred = (unsigned)(c - k);
      complete = false;
      r = RESULT_OK;
      break;
    }
    if (gone)
      json_array_foreach(open, i, e) if (e == cands[k]) closed[i] = true;
  }
  if (r == RESULT_OK && complete)
    r = export_gauges(w, open, closed, now_ms, deadline_ms, err);
  if (r == RESULT_OK && time_mono_ms() < deadline_ms - CHECK_RESERVE_MS)
    rep->purged = purge(w, now_ms, deadline_ms);
  rep->complete = complete;
  pthread_mutex_unlock(&w->lock);
  long long took = (long long)(time_mono_ms() - started);
  if (r == RESULT_OK) {
    log_info("event=watch_tick open=%u candidates=%u checked=%u stuck=%u reconciled=%u "
             "gone=%u moved=%u deferred=%u purged=%u history_calls=%u complete=%s "
             "duration_ms=%lld",
             rep->open, rep->candidates, rep->checked, rep->stuck, rep->reconciled,
             rep->gone, rep->moved, rep->deferred, rep->purged, rep->history_calls,
             complete ? "true" : "false", took);
    add_log(logs,
            "watch: %u open runs, %u past their threshold, %u checked, %u stuck, "
            "%u reconciled, %u gone%s",
            rep->open, rep->candidates, rep->checked, rep->stuck, rep->reconciled,
            rep->gone,
            complete ? "" : " (stopped at the deadline; the next tick goes on)");
  } else {
    log_error("event=watch_tick_failed result=\"%s\" reason=\"%s\" duration_ms=%lld",
              result_str(r), err->message, took);
  }
  free(closed);
  free(cands);
  json_decref(open);
  return r;
}
