/* The run table: merge rules and the conditional writes; see run_table.h. */
#include "watch/run_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/timeutil.h"

#define MAX_ATTEMPTS 5
/* Table storage keys are strings of up to 1 KiB ("Understanding the Table
 * service data model"); the service counts UTF-16, so 512 escaped (ASCII)
 * characters is the most that surely fits. */
#define MAX_KEY_CHARS 512

/* What this instance last wrote or read of a run: lets most events cost one
 * request (an insert for a new run, a conditional merge with the remembered
 * ETag) or none (a duplicate, an older event, a closed run). Direct-mapped by
 * the key's hash; a stale entry is safe: statuses only move forward, so what
 * the cache says skips only what the table would skip too, and a write with a
 * stale ETag fails (412) and falls back to reading the entity. */
struct cached {
  char *key; /* PartitionKey "/" RowKey; NULL = empty slot */
  char status[24];
  int64_t since_ms;
  bool open;
  char *etag;
};

struct run_table {
  struct table_client *client;
  atomic_uint_fast64_t events, writes, unchanged, conflicts;
  pthread_mutex_t lock; /* guards cache and generation */
  uint64_t generation;  /* the table client's generation the cache describes */
  struct cached cache[RUN_TABLE_CACHE];
};

/* Forgets every run when the table was created again since (an emulator
 * restarted empty, a table deleted by hand): its entities are gone. */
static void cache_check_generation(struct run_table *rt) {
  uint64_t now = table_client_generation(rt->client);
  pthread_mutex_lock(&rt->lock);
  if (now != rt->generation) {
    for (size_t i = 0; i < RUN_TABLE_CACHE; i++) {
      free(rt->cache[i].key);
      free(rt->cache[i].etag);
      rt->cache[i].key = rt->cache[i].etag = NULL;
    }
    rt->generation = now;
  }
  pthread_mutex_unlock(&rt->lock);
}

static size_t slot_of(const char *key) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return (size_t)(h % RUN_TABLE_CACHE);
}

/* Copies the cached state of `key` out; false when not cached. *out_etag is
 * malloc'd. */
static bool cache_get(struct run_table *rt, const char *key, struct cached *out) {
  struct cached *c = &rt->cache[slot_of(key)];
  bool hit = false;
  pthread_mutex_lock(&rt->lock);
  if (c->key && strcmp(c->key, key) == 0 && (out->etag = strdup(c->etag))) {
    memcpy(out->status, c->status, sizeof out->status);
    out->since_ms = c->since_ms;
    out->open = c->open;
    hit = true;
  }
  pthread_mutex_unlock(&rt->lock);
  return hit;
}

static void cache_put(struct run_table *rt, const char *key, const char *status,
                      int64_t since_ms, bool open, const char *etag) {
  struct cached *c = &rt->cache[slot_of(key)];
  char *k = strdup(key), *e = etag ? strdup(etag) : NULL;
  bool kept = k && e;
  pthread_mutex_lock(&rt->lock);
  free(c->key);
  free(c->etag);
  c->key = kept ? k : NULL;
  c->etag = kept ? e : NULL;
  if (kept) {
    snprintf(c->status, sizeof c->status, "%s", status);
    c->since_ms = since_ms;
    c->open = open;
  }
  pthread_mutex_unlock(&rt->lock);
  if (!kept) { /* no memory, or no ETag to remember: the slot stays empty */
    free(k);
    free(e);
  }
}

static void cache_drop(struct run_table *rt, const char *key) {
  struct cached *c = &rt->cache[slot_of(key)];
  pthread_mutex_lock(&rt->lock);
  if (c->key && strcmp(c->key, key) == 0) {
    free(c->key);
    free(c->etag);
    c->key = c->etag = NULL;
  }
  pthread_mutex_unlock(&rt->lock);
}

struct run_table *run_table_new(struct table_client *client) {
  struct run_table *rt = calloc(1, sizeof *rt);
  if (!rt) {
    table_client_free(client);
    return NULL;
  }
  rt->client = client;
  pthread_mutex_init(&rt->lock, NULL);
  return rt;
}

void run_table_free(struct run_table *rt) {
  if (!rt)
    return;
  table_client_free(rt->client);
  for (size_t i = 0; i < RUN_TABLE_CACHE; i++) {
    free(rt->cache[i].key);
    free(rt->cache[i].etag);
  }
  pthread_mutex_destroy(&rt->lock);
  free(rt);
}

struct table_client *run_table_client(struct run_table *rt) {
  return rt->client;
}

void run_table_get_stats(struct run_table *rt, struct run_table_stats *out) {
  out->events = atomic_load(&rt->events);
  out->writes = atomic_load(&rt->writes);
  out->unchanged = atomic_load(&rt->unchanged);
  out->conflicts = atomic_load(&rt->conflicts);
}

int run_status_rank(const char *status) {
  static const struct {
    const char *name;
    int rank;
  } ranks[] = {{"NotStarted", 0}, {"Unapproved", 0},      {"Queued", 1},
               {"Preparing", 2},  {"Provisioning", 2},    {"Starting", 3},
               {"Running", 4},    {"Pausing", 5},         {"Paused", 5},
               {"Finalizing", 6}, {"CancelRequested", 6}, {"Completed", 9},
               {"Failed", 9},     {"Canceled", 9}};
  for (size_t i = 0; status && i < sizeof ranks / sizeof *ranks; i++)
    if (strcasecmp(status, ranks[i].name) == 0)
      return ranks[i].rank;
  return -1;
}

bool run_status_is_waiting(const char *status) {
  static const char *const waiting[] = {"NotStarted", "Queued", "Preparing",
                                        "Provisioning", "Starting"};
  for (size_t i = 0; status && i < sizeof waiting / sizeof *waiting; i++)
    if (strcasecmp(status, waiting[i]) == 0)
      return true;
  return false;
}

const char *run_entity_string(const json_t *entity, const char *key) {
  const char *v = json_string_value(json_object_get(entity, key));
  return v ? v : "";
}

bool run_entity_open(const json_t *entity) {
  return json_is_true(json_object_get(entity, "Open"));
}

bool run_entity_since_ms(const json_t *entity, int64_t *out_ms) {
  return time_parse_iso8601_ms(run_entity_string(entity, "Since"), out_ms);
}

/* The rules, on the stored state's parts. */
static enum run_merge merge_state(bool open, const char *old, bool since_known,
                                  int64_t since, const char *status, int64_t event_ms) {
  if (!open)
    return RUN_MERGE_SKIP_CLOSED;
  if (strcasecmp(old, status) == 0)
    return RUN_MERGE_SKIP_DUPLICATE;
  if (run_status_is_terminal(status))
    return RUN_MERGE_REPLACE;
  if (!since_known || event_ms > since)
    return RUN_MERGE_REPLACE;
  if (event_ms == since && run_status_rank(status) > run_status_rank(old))
    return RUN_MERGE_REPLACE;
  return RUN_MERGE_SKIP_OLDER;
}

enum run_merge run_table_merge(const json_t *stored, const char *status,
                               int64_t event_ms) {
  if (!stored)
    return RUN_MERGE_INSERT;
  int64_t since = 0;
  bool known = run_entity_since_ms(stored, &since);
  return merge_state(run_entity_open(stored), run_entity_string(stored, "Status"), known,
                     since, status, event_ms);
}

static const char *run_kind_name(enum run_kind kind) {
  return kind == RUN_KIND_PIPELINE ? "pipeline"
         : kind == RUN_KIND_STEP   ? "step"
                                   : "plain";
}

/* The entity an event makes; NULL on allocation failure. */
static json_t *entity_of(const struct aml_event *ev, const struct record *rec,
                         const char *status, int64_t event_ms) {
  char ws[600], since[40], now[40];
  snprintf(ws, sizeof ws, "%s/%s/%s", ev->subscription_id, ev->resource_group,
           ev->workspace);
  for (char *p = ws; *p; p++)
    *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
  time_format_iso8601(event_ms, since, sizeof since);
  time_format_iso8601(time_now_ms(), now, sizeof now);
  char *pk = table_key_escape(ws), *rk = table_key_escape(ev->run_id);
  json_t *e = pk && rk ? json_object() : NULL;
  bool open = !run_status_is_terminal(status);
  const char *experiment_name = record_string(rec, REC_EXPERIMENT_NAME);
  const char *run_type = record_string(rec, REC_RUN_TYPE);
  const char *pipeline = record_string(rec, REC_PIPELINE_RUN_ID);
  const char *target = record_string(rec, REC_TARGET);
  if (e &&
      (jsonx_set_string(e, "PartitionKey", pk) || jsonx_set_string(e, "RowKey", rk) ||
       jsonx_set_string(e, "Subscription", ev->subscription_id) ||
       jsonx_set_string(e, "ResourceGroup", ev->resource_group) ||
       jsonx_set_string(e, "Workspace", ev->workspace) ||
       jsonx_set_string(e, "RunId", ev->run_id) ||
       jsonx_set_string(e, "RunKind", run_kind_name(ev->run_kind)) ||
       jsonx_set_string(e, "ExperimentId", ev->experiment_id) ||
       jsonx_set_string(e, "ExperimentName",
                        experiment_name ? experiment_name : ev->experiment_name) ||
       jsonx_set_string(e, "RunType", run_type ? run_type : ev->run_type) ||
       jsonx_set_string(e, "PipelineRunId", pipeline ? pipeline : ev->pipeline_run_id) ||
       jsonx_set_string(e, "ComputeTarget", target ? target : ev->target) ||
       jsonx_set_string(e, "Status", status) || jsonx_set_string(e, "Since", since) ||
       json_object_set_new(e, "Open", json_boolean(open)) ||
       jsonx_set_string(e, "StuckReported", "") || jsonx_set_string(e, "CheckedAt", "") ||
       jsonx_set_string(e, "ClosedAt", open ? "" : now) ||
       jsonx_set_string(e, "EventId", ev->id))) {
    json_decref(e);
    e = NULL;
  }
  free(pk);
  free(rk);
  return e;
}

static char *cache_key(const json_t *entity) {
  const char *pk = run_entity_string(entity, "PartitionKey");
  const char *rk = run_entity_string(entity, "RowKey");
  size_t n = strlen(pk) + strlen(rk) + 2;
  char *key = malloc(n);
  if (key)
    snprintf(key, n, "%s/%s", pk, rk);
  return key;
}

/* The status an event reports: its own, else the record's, else Completed for
 * RunCompleted. */
static const char *event_status(const struct aml_event *ev, const struct record *rec) {
  if (ev->run_status)
    return ev->run_status;
  const char *s = record_string(rec, REC_STATUS);
  if (s)
    return s;
  return ev->type == AML_EVENT_RUN_COMPLETED ? "Completed" : NULL;
}

static const char *merge_reason(enum run_merge merge) {
  return merge == RUN_MERGE_SKIP_CLOSED  ? "closed"
         : merge == RUN_MERGE_SKIP_OLDER ? "older"
                                         : "duplicate";
}

/* One attempt. `known`: the cached state (first attempt only), else NULL: read
 * the entity. Writes merge (a property the event does not carry keeps its
 * stored value), conditional on the ETag read or remembered. */
static int attempt_write(struct run_table *rt, const json_t *fresh, const char *key,
                         bool first, const struct cached *known, const char *status,
                         int64_t event_ms, int64_t deadline_ms, bool *out_wrote,
                         struct error_info *err) {
  const char *pk = run_entity_string(fresh, "PartitionKey");
  const char *rk = run_entity_string(fresh, "RowKey");
  json_t *stored = NULL;
  char *etag = NULL;
  const char *if_match = NULL;
  enum run_merge merge = RUN_MERGE_INSERT;
  int r = RESULT_OK;
  *out_wrote = false;
  if (known) {
    merge =
        merge_state(known->open, known->status, true, known->since_ms, status, event_ms);
    if_match = known->etag;
  } else if (first) { /* not remembered: a new run is the likely case, insert at once */
    merge = RUN_MERGE_INSERT;
  } else {
    r = table_client_get(rt->client, pk, rk, deadline_ms, &stored, err);
    if (r != RESULT_OK && r != RESULT_NOTFOUND)
      return r;
    merge = run_table_merge(stored, status, event_ms);
    if_match = stored ? run_entity_string(stored, "odata.etag") : NULL;
  }
  if (merge == RUN_MERGE_INSERT)
    r = table_client_insert(rt->client, fresh, deadline_ms, &etag, err);
  else if (merge == RUN_MERGE_REPLACE)
    r = table_client_merge(rt->client, fresh, if_match, deadline_ms, &etag, err);
  else {
    log_debug("event=run_table_unchanged row=%s status=%s reason=%s", rk, status,
              merge_reason(merge));
    atomic_fetch_add(&rt->unchanged, 1);
    if (stored) {
      int64_t since = 0;
      run_entity_since_ms(stored, &since);
      cache_put(rt, key, run_entity_string(stored, "Status"), since,
                run_entity_open(stored), if_match);
    }
    json_decref(stored);
    return RESULT_OK;
  }
  json_decref(stored);
  if (r == RESULT_OK) {
    *out_wrote = true;
    atomic_fetch_add(&rt->writes, 1);
    log_debug("event=run_table_updated row=%s status=%s", rk, status);
    cache_put(rt, key, status, event_ms, !run_status_is_terminal(status), etag);
  }
  free(etag);
  return r;
}

int run_table_record_event(struct run_table *rt, const struct aml_event *ev,
                           const struct record *rec, int64_t deadline_ms,
                           struct error_info *err) {
  if (ev->run_kind == RUN_KIND_NONE || !ev->run_id || !*ev->run_id ||
      !ev->subscription_id || !ev->resource_group || !ev->workspace)
    return RESULT_OK;
  const char *status = event_status(ev, rec);
  int64_t event_ms;
  if (!status || !time_parse_iso8601_ms(ev->time, &event_ms))
    return RESULT_OK;
  atomic_fetch_add(&rt->events, 1);
  json_t *fresh = entity_of(ev, rec, status, event_ms);
  char *key = fresh ? cache_key(fresh) : NULL;
  if (!fresh || !key) {
    json_decref(fresh);
    return error_set(err, RESULT_NOMEM, "", "out of memory building a run entity");
  }
  if (strlen(run_entity_string(fresh, "PartitionKey")) > MAX_KEY_CHARS ||
      strlen(run_entity_string(fresh, "RowKey")) > MAX_KEY_CHARS) {
    /* The service would refuse it (400) on every redelivery: not tracked. */
    log_warn("event=run_table_skipped run_id=%.100s reason=\"the run id or workspace is "
             "too long for a table key\"",
             ev->run_id);
    atomic_fetch_add(&rt->unchanged, 1);
    free(key);
    json_decref(fresh);
    return RESULT_OK;
  }
  cache_check_generation(rt);
  int r = RESULT_TRANSIENT;
  for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    struct cached known = {0};
    bool cached = attempt == 0 && cache_get(rt, key, &known);
    bool wrote;
    r = attempt_write(rt, fresh, key, attempt == 0, cached ? &known : NULL, status,
                      event_ms, deadline_ms, &wrote, err);
    free(known.etag);
    if (r != RESULT_CONFLICT && r != RESULT_NOTFOUND)
      break;
    /* Another instance wrote first, or the cache was stale: read and decide again. */
    cache_drop(rt, key);
    if (attempt > 0)
      atomic_fetch_add(&rt->conflicts, 1);
    r = error_set(err, RESULT_TRANSIENT, "",
                  "the run table entity of run %.100s kept changing", ev->run_id);
  }
  if (r != RESULT_OK)
    log_warn("event=run_table_failed run_id=%s result=\"%s\" reason=\"%s\"", ev->run_id,
             result_str(r), err ? err->message : "");
  free(key);
  json_decref(fresh);
  return r;
}
