/* Unit tests of the AML client with the transport and the token source replaced:
 * URLs and escaping, who gets the bearer token, the discovery and parent caches
 * (single-flight under 16 threads), the failure policy (404/403/401/refused
 * credential -> RESULT_OK with a reason; 503/timeouts -> transient) and metrics. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record_assert.h"
#include <pthread.h>
#include <time.h>

#include "aml/aml_client.h"
#include "aml/aml_client_testing.h"
#include "cost/retail_prices_testing.h"
#include "core/record.h"
#include "base/timeutil.h"

#define ARM "https://arm.test"
#define WS_PATH                                                                          \
  "/subscriptions/sub-1/resourceGroups/ml%20rg/providers/"                               \
  "Microsoft.MachineLearningServices/workspaces/ws-1"
#define ARM_URL ARM WS_PATH "?api-version=2024-04-01"
#define DISCOVERY_URL "https://eastus.api.test/discovery"
#define API "https://eastus.api.test"
#define HISTORY API "/history/v1.0" WS_PATH
#define METRIC API "/metric/v2.0" WS_PATH
#define PIPELINE_ID "da7e4950-79aa-4363-9d34-1c71e5fbd95f"

/* ---- the fake transport ------------------------------------------------------ */

struct route {
  const char *method, *url, *body_has;
  long status;
  const char *body;
  int result; /* non-zero: the transport fails with this */
  int delay_ms;
  int times; /* > 0: answer this many times, then fall through */
};

#define MAX_ROUTES 24
#define MAX_SENT 256

struct fake {
  pthread_mutex_t lock;
  struct route routes[MAX_ROUTES];
  size_t route_count;
  char *sent_urls[MAX_SENT];
  char *sent_auth[MAX_SENT]; /* NULL when no Authorization header */
  char *sent_body[MAX_SENT];
  size_t sent;
  char scope[128];
  int token_result;
};

static struct fake fake;

static void fake_reset(void) {
  for (size_t i = 0; i < fake.sent && i < MAX_SENT; i++) {
    free(fake.sent_urls[i]);
    free(fake.sent_auth[i]);
    free(fake.sent_body[i]);
  }
  memset(&fake, 0, sizeof fake);
  pthread_mutex_init(&fake.lock, NULL);
}

static struct route *route(const char *method, const char *url, long status,
                           const char *body) {
  assert_true(fake.route_count < MAX_ROUTES);
  struct route *r = &fake.routes[fake.route_count++];
  *r = (struct route){.method = method, .url = url, .status = status, .body = body};
  return r;
}

static size_t count_sent(const char *url) {
  size_t n = 0;
  for (size_t i = 0; i < fake.sent; i++)
    n += strcmp(fake.sent_urls[i], url) == 0;
  return n;
}

static const char *auth_of(const char *url) {
  for (size_t i = 0; i < fake.sent; i++)
    if (strcmp(fake.sent_urls[i], url) == 0)
      return fake.sent_auth[i] ? fake.sent_auth[i] : "(none)";
  fail_msg("no request to %s", url);
  return NULL;
}

static int transport(void *ctx, const struct http_request *req, struct http_response *out,
                     struct error_info *err) {
  const char *auth = NULL;
  for (size_t i = 0; i < req->header_count; i++)
    if (strcmp(req->headers[i].name, "Authorization") == 0)
      auth = req->headers[i].value;
  pthread_mutex_lock(&fake.lock);
  if (fake.sent < MAX_SENT) {
    fake.sent_urls[fake.sent] = strdup(req->url);
    fake.sent_auth[fake.sent] = auth ? strdup(auth) : NULL;
    fake.sent_body[fake.sent] = req->body ? strndup(req->body, req->body_len) : NULL;
    fake.sent++;
  }
  struct route *match = NULL;
  for (size_t i = 0; i < fake.route_count && !match; i++) {
    struct route *r = &fake.routes[i];
    if (strcmp(r->method, req->method) == 0 && strcmp(r->url, req->url) == 0 &&
        (!r->body_has || (req->body && strstr(req->body, r->body_has))) &&
        r->times >= 0) {
      match = r;
      if (r->times > 0 && --r->times == 0)
        r->times = -1; /* spent */
    }
  }
  struct route answer = match
                            ? *match
                            : (struct route){.status = 404,
                                             .body = "{\"error\":{\"code\":\"UserError\","
                                                     "\"message\":\"no route\"}}"};
  pthread_mutex_unlock(&fake.lock);
  if (answer.delay_ms) {
    struct timespec ts = {0, (long)answer.delay_ms * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (answer.result)
    return error_set(err, answer.result, "", "fake transport failure");
  out->status = answer.status;
  out->body = strdup(answer.body ? answer.body : "");
  out->body_len = strlen(out->body);
  return RESULT_OK;
}

static int token(void *ctx, const char *scope, int64_t deadline_ms, char **out_token,
                 struct error_info *err) {
  pthread_mutex_lock(&fake.lock);
  snprintf(fake.scope, sizeof fake.scope, "%s", scope);
  pthread_mutex_unlock(&fake.lock);
  if (fake.token_result == RESULT_DENIED)
    return error_set(err, RESULT_DENIED, "AZURE_CLIENT_SECRET",
                     "client secret credential refused (AADSTS7000215)");
  if (fake.token_result)
    return error_set(err, fake.token_result, "", "token service unavailable");
  *out_token = strdup("tok-123");
  return RESULT_OK;
}

static const char *env_arm;
static const char *getenv_table(void *ctx, const char *name) {
  return strcmp(name, "AZURE_RESOURCE_MANAGER_ENDPOINT") == 0 ? env_arm : NULL;
}

static struct enricher *client_new(void) {
  struct enricher *client = NULL;
  struct error_info err = {0};
  env_arm = ARM "//";
  assert_int_equal(aml_client_new(NULL, getenv_table, NULL, &client, &err), RESULT_OK);
  aml_client_set_transport_for_test(client, transport, NULL);
  aml_client_set_token_for_test(client, token, NULL);
  return client;
}

static void discovery_routes(void) {
  route("GET", ARM_URL, 200,
        "{\"id\":\"x\",\"properties\":{\"discoveryUrl\":\"" DISCOVERY_URL "\"}}");
  route("GET", DISCOVERY_URL, 200, "{\"api\":\"" API "/\",\"history\":\"" API "\"}");
}

/* An event as event_parse() leaves it (strings borrowed from literals). */
static struct aml_event run_event(const char *run_id, const char *status,
                                  enum run_kind kind) {
  struct aml_event ev = {0};
  ev.type = AML_EVENT_RUN_STATUS_CHANGED;
  ev.id = "evt-1";
  ev.subscription_id = "sub-1";
  ev.resource_group = "ml rg";
  ev.workspace = "ws-1";
  ev.experiment_id = "exp-1";
  ev.experiment_name = "my-exp";
  ev.run_id = (char *)run_id;
  ev.run_status = (char *)status;
  ev.run_kind = kind;
  if (kind == RUN_KIND_STEP)
    ev.pipeline_run_id = PIPELINE_ID;
  return ev;
}

static int enrich(struct enricher *client, struct aml_event *ev, struct record *rec,
                  struct error_info *err) {
  record_init(rec);
  assert_int_equal(record_from_event(rec, ev), RESULT_OK);
  return client->enrich(client, ev, rec, time_mono_ms() + 5000, err);
}

static int setup(void **state) {
  fake_reset();
  *state = client_new();
  return 0;
}

static int teardown(void **state) {
  struct enricher *client = *state;
  if (client)
    client->free(client);
  fake_reset();
  return 0;
}

/* ---- tests ------------------------------------------------------------------- */

static void completed_run(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200,
        "{\"runId\":\"run-1\",\"status\":\"Finalizing\",\"target\":\"cpu\","
        "\"createdUtc\":\"2024-05-14T09:00:00Z\",\"startTimeUtc\":"
        "\"2024-05-14T09:00:01.0000000+00:00\",\"endTimeUtc\":\"2024-05-14T09:00:04Z\","
        "\"displayName\":\"nice name\","
        "\"compute\":{\"target\":\"cpu\",\"targetType\":\"AmlCompute\"},"
        "\"runDefinition\":{\"script\":\"train.py\",\"environment\":{\"docker\":"
        "{\"baseImage\":\"img:1\"}}}}");
  route("POST", METRIC "/runs/run-1/list", 200,
        "{\"value\":[{\"metricKey\":{\"name\":\"accuracy\"}},"
        "{\"metricKey\":{\"name\":\"loss\"}},{\"metricKey\":{\"name\":\"gone\"}}]}");
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"step\":0,\"data\":{\"accuracy\":0.5}},"
        "{\"step\":1,\"data\":{\"accuracy\":0.75}}]}")
      ->body_has = "\"accuracy\"";
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"step\":3,\"data\":{\"loss\":0.125}}]}")
      ->body_has = "\"loss\"";

  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  assert_field(&rec, REC_STATUS, "Completed"); /* the event's status, not the Run's */
  assert_field(&rec, REC_DISPLAY_NAME, "nice name");
  assert_field(&rec, REC_COMPUTE_TARGET_TYPE, "AmlCompute");
  assert_field(&rec, REC_DOCKER_IMAGE, "img:1");
  assert_field(&rec, REC_SCRIPT, "train.py");
  double v;
  assert_true(record_number(&rec, REC_EXECUTION_TIME_MS, &v) && v == 3000.0);
  assert_true(record_number(&rec, REC_QUEUE_TIME_MS, &v) && v == 1000.0);
  assert_int_equal(rec.metric_count, 2); /* "gone" answered 404: skipped */
  assert_string_equal(rec.metrics[0].name, "accuracy");
  assert_true(rec.metrics[0].value == 0.75);
  assert_string_equal(rec.metrics[1].name, "loss");
  assert_true(rec.metrics[1].value == 0.125);

  /* The token goes to ARM and the API, never to the discovery document. */
  /* Not a cloud's ARM host (a proxy, a stand-in): the public ARM audience. */
  assert_string_equal(fake.scope, CREDENTIAL_SCOPE_ARM_DEFAULT);
  assert_string_equal(auth_of(ARM_URL), "Bearer tok-123");
  assert_string_equal(auth_of(DISCOVERY_URL), "(none)");
  assert_string_equal(auth_of(METRIC "/runs/run-1/list"), "Bearer tok-123");
  for (size_t i = 0; i < fake.sent; i++)
    if (strcmp(fake.sent_urls[i], METRIC "/runs/run-1/list") == 0)
      assert_string_equal(fake.sent_body[i], "{}");

  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.discovery_requests, 2);
  assert_int_equal(stats.run_requests, 1); /* the Run alone: no RunDetails */
  assert_int_equal(stats.metric_requests, 4);
  assert_int_equal(stats.parent_lookups, 0);
  /* Without aml_client_enable_cost(): no compute read, no cost keys. */
  assert_int_equal(stats.compute_reads, 0);
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &v));
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  record_cleanup(&rec);
}

/* Metric pages after the first are read (issue 11 item 5): the list and each
 * metric's values follow continuationToken, so the last value comes from the
 * last page, and a metric's namespace (metricKey.namespace) is asked for and
 * kept in its name. */
static void metric_pages_are_followed(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200,
        "{\"runId\":\"run-1\",\"status\":\"Completed\"}");
  route("POST", METRIC "/runs/run-1/list", 200,
        "{\"value\":[{\"metricKey\":{\"namespace\":\"eval\",\"name\":\"f1\"}}],"
        "\"continuationToken\":null,\"nextLink\":null}")
      ->body_has = "\"continuationToken\":\"L2\"";
  route("POST", METRIC "/runs/run-1/list", 200,
        "{\"value\":[{\"metricKey\":{\"namespace\":\"\",\"name\":\"accuracy\"}}],"
        "\"continuationToken\":\"L2\"}");
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"step\":2,\"data\":{\"accuracy\":0.875}}],\"continuationToken\":"
        "null}")
      ->body_has = "\"continuationToken\":\"A2\"";
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"step\":0,\"data\":{\"accuracy\":0.5}},"
        "{\"step\":1,\"data\":{\"accuracy\":0.75}}],\"continuationToken\":\"A2\"}")
      ->body_has = "\"accuracy\"";
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"step\":0,\"data\":{\"f1\":0.6}}]}")
      ->body_has = "\"metricNamespace\":\"eval\"";

  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_int_equal(rec.metric_count, 2);
  assert_string_equal(rec.metrics[0].name, "accuracy");
  assert_true(rec.metrics[0].value == 0.875);
  assert_string_equal(rec.metrics[1].name, "eval/f1");
  assert_true(rec.metrics[1].value == 0.6);
  assert_int_equal(count_sent(METRIC "/runs/run-1/list"), 2);
  assert_int_equal(count_sent(METRIC "/runs/run-1/full"), 3);
  record_cleanup(&rec);
}

/* A page that names the next by nextLink only is followed there, on the API's
 * own host; a nextLink elsewhere never gets the token. */
static void metric_next_link_is_followed_on_the_api_host(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200,
        "{\"runId\":\"run-1\",\"status\":\"Completed\"}");
  route("POST", METRIC "/runs/run-1/list", 200,
        "{\"value\":[{\"metricKey\":{\"name\":\"accuracy\"}}],\"continuationToken\":null,"
        "\"nextLink\":\"" METRIC "/runs/run-1/list?page=2\"}");
  route("POST", METRIC "/runs/run-1/list?page=2", 200,
        "{\"value\":[{\"metricKey\":{\"name\":\"loss\"}}],"
        "\"nextLink\":\"https://elsewhere.test/steal\"}");
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"data\":{\"accuracy\":0.5}}]}")
      ->body_has = "\"accuracy\"";
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"data\":{\"loss\":0.25}}]}")
      ->body_has = "\"loss\"";
  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_int_equal(rec.metric_count, 2);
  assert_string_equal(rec.metrics[1].name, "loss");
  assert_int_equal(count_sent(METRIC "/runs/run-1/list?page=2"), 1);
  assert_int_equal(count_sent("https://elsewhere.test/steal"), 0);
  record_cleanup(&rec);
}

/* A service that always says there is another page is read for a bounded
 * number of pages only. */
static void metric_pages_are_bounded(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200,
        "{\"runId\":\"run-1\",\"status\":\"Completed\"}");
  route("POST", METRIC "/runs/run-1/list", 200,
        "{\"value\":[{\"metricKey\":{\"name\":\"loss\"}}],\"continuationToken\":"
        "\"again\"}");
  route("POST", METRIC "/runs/run-1/full", 200,
        "{\"value\":[{\"data\":{\"loss\":0.25}}],\"continuationToken\":\"again\"}");
  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_int_equal(count_sent(METRIC "/runs/run-1/list"), AML_CLIENT_MAX_PAGES);
  assert_int_equal(count_sent(METRIC "/runs/run-1/full"), AML_CLIENT_MAX_PAGES);
  assert_int_equal(rec.metric_count, 1);
  assert_true(rec.metrics[0].value == 0.25);
  record_cleanup(&rec);
}

static void running_run_is_one_request_and_ids_are_escaped(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/runs/a%20b%2Fc%3Fd%23e", 200,
        "{\"status\":\"Running\",\"runDefinition\":{}}");
  route("GET", HISTORY "/runs/%2E%2E", 200,
        "{\"status\":\"Queued\",\"runDefinition\":{}}");

  struct aml_event ev = run_event("a b/c?d#e", "Running", RUN_KIND_PLAIN);
  ev.experiment_id = NULL; /* unknown: the path without experimentids */
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  record_cleanup(&rec);

  ev = run_event("..", "Queued", RUN_KIND_PLAIN);
  ev.experiment_id = NULL;
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  assert_field(&rec, REC_STATUS, "Queued");
  record_cleanup(&rec);

  /* One Run each, no metrics (not Completed); discovery once for both. */
  assert_int_equal(fake.sent, 4);
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.run_requests, 2);
  assert_int_equal(stats.discovery_requests, 2);
  assert_int_equal(stats.discovery_cache_hits, 1);
}

struct worker {
  struct enricher *client;
  char run_id[32];
  enum run_kind kind;
  const char *workspace;
  int result;
  char enrichment[128];
  char target[64];
};

static void *work(void *arg) {
  struct worker *w = arg;
  struct aml_event ev = run_event(w->run_id, "Running", w->kind);
  if (w->workspace)
    ev.workspace = (char *)w->workspace;
  struct record rec;
  struct error_info err = {0};
  record_init(&rec);
  record_from_event(&rec, &ev);
  w->result = w->client->enrich(w->client, &ev, &rec, time_mono_ms() + 10000, &err);
  snprintf(w->enrichment, sizeof w->enrichment, "%s",
           record_string(&rec, REC_ENRICHMENT) ? record_string(&rec, REC_ENRICHMENT)
                                               : "-");
  snprintf(w->target, sizeof w->target, "%s",
           record_string(&rec, REC_TARGET) ? record_string(&rec, REC_TARGET) : "-");
  record_cleanup(&rec);
  return NULL;
}

static void run_workers(struct enricher *client, enum run_kind kind, size_t n,
                        struct worker *workers) {
  pthread_t threads[16];
  for (size_t i = 0; i < n; i++) {
    workers[i] = (struct worker){.client = client, .kind = kind};
    snprintf(workers[i].run_id, sizeof workers[i].run_id, "run-%zu", i);
    if (i % 2)
      workers[i].workspace = "WS-1"; /* the cache key ignores case */
    assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
  }
  for (size_t i = 0; i < n; i++)
    pthread_join(threads[i], NULL);
}

#define WS_UPPER_PATH                                                                    \
  "/subscriptions/sub-1/resourceGroups/ml%20rg/providers/"                               \
  "Microsoft.MachineLearningServices/workspaces/WS-1"
#define ARM_URL_UPPER ARM WS_UPPER_PATH "?api-version=2024-04-01"
#define HISTORY_UPPER API "/history/v1.0" WS_UPPER_PATH

/* Discovery for both spellings of the workspace, the ARM read slow so that every
 * thread arrives while the first lookup is in flight. */
static void slow_discovery_routes(void) {
  discovery_routes();
  fake.routes[0].delay_ms = 100;
  route("GET", ARM_URL_UPPER, 200,
        "{\"properties\":{\"discoveryUrl\":\"" DISCOVERY_URL "\"}}")
      ->delay_ms = 100;
}

static void run_routes(const char *body) {
  static char urls[16][256];
  for (size_t i = 0; i < 16; i++) {
    snprintf(urls[i], sizeof urls[i], "%s/experimentids/exp-1/runs/run-%zu",
             i % 2 ? HISTORY_UPPER : HISTORY, i);
    route("GET", urls[i], 200, body);
  }
}

static void discovery_single_flight_16_threads(void **state) {
  struct enricher *client = *state;
  slow_discovery_routes();
  run_routes("{\"status\":\"Running\",\"runDefinition\":{}}");

  struct worker workers[16];
  run_workers(client, RUN_KIND_PLAIN, 16, workers);
  for (size_t i = 0; i < 16; i++) {
    assert_int_equal(workers[i].result, RESULT_OK);
    assert_string_equal(workers[i].enrichment, "ok");
  }
  assert_int_equal(count_sent(ARM_URL) + count_sent(ARM_URL_UPPER), 1);
  assert_int_equal(count_sent(DISCOVERY_URL), 1);
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.discovery_requests, 2);
  assert_int_equal(stats.discovery_cache_hits, 15);
  assert_int_equal(stats.run_requests, 16);
}

static void parent_cache_single_flight(void **state) {
  struct enricher *client = *state;
  static const char parent[] =
      "{\"runId\":\"" PIPELINE_ID "\",\"experimentId\":\"exp-1\",\"target\":"
      "\"pipeline-compute\",\"displayName\":\"p\",\"runDefinition\":{\"big\":1}}";
  discovery_routes();
  route("GET", ARM_URL_UPPER, 200,
        "{\"properties\":{\"discoveryUrl\":\"" DISCOVERY_URL "\"}}");
  route("GET", HISTORY "/runs/" PIPELINE_ID, 200, parent)->delay_ms = 100;
  route("GET", HISTORY_UPPER "/runs/" PIPELINE_ID, 200, parent)->delay_ms = 100;
  run_routes(
      "{\"status\":\"Running\",\"properties\":{\"StepType\":\"PythonScriptStep\"}}");

  struct worker workers[16];
  run_workers(client, RUN_KIND_STEP, 16, workers);
  for (size_t i = 0; i < 16; i++) {
    assert_int_equal(workers[i].result, RESULT_OK);
    assert_string_equal(workers[i].enrichment, "ok");
    assert_string_equal(workers[i].target, "pipeline-compute"); /* from the parent */
  }
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.parent_lookups, 1);
  assert_int_equal(stats.parent_cache_hits, 15);
  assert_int_equal(count_sent(HISTORY "/runs/" PIPELINE_ID) +
                       count_sent(HISTORY_UPPER "/runs/" PIPELINE_ID),
                   1);
}

static void permanent_failures_are_acknowledged(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/missing", 404,
        "{\"error\":{\"code\":\"UserError\",\"message\":\"Run missing was not found\"}}");
  route("GET", HISTORY "/experimentids/exp-1/runs/secret", 403,
        "{\"error\":{\"code\":\"UserError\"}}");
  route("GET", HISTORY "/experimentids/exp-1/runs/unauth", 401, "");
  route("GET", HISTORY "/experimentids/exp-1/runs/teapot", 418, "not json");

  struct record rec;
  struct error_info err = {0};
  struct aml_event ev = run_event("missing", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "run not found (404)");
  assert_field(&rec, REC_RUN_ID, "missing"); /* the event's record is kept */
  record_cleanup(&rec);

  ev = run_event("secret", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT,
               "forbidden (403): the identity needs read access to the workspace, e.g. "
               "the AzureML Data Scientist role");
  record_cleanup(&rec);

  ev = run_event("teapot", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "run refused (HTTP 418)");
  record_cleanup(&rec);

  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.permanent_failures, 3);
  assert_int_equal(stats.transient_failures, 0);
}

static void a_refused_credential_fails_the_invocation(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/unauth", 401, "");
  struct record rec;
  struct error_info err = {0};

  /* 401 from run history: the token was not taken. */
  struct aml_event ev = run_event("unauth", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_DENIED);
  assert_non_null(strstr(err.message, "credential refused (401)"));
  assert_null(record_string(&rec, REC_ENRICHMENT));
  record_cleanup(&rec);

  /* Entra ID refused the credential: the reason names the setting. */
  fake.token_result = RESULT_DENIED;
  ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_DENIED);
  assert_string_equal(
      err.message,
      "credential refused: client secret credential refused (AADSTS7000215)");
  record_cleanup(&rec);

  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.transient_failures, 2);
  assert_int_equal(stats.permanent_failures, 0);
}

static void transient_failures_ask_for_redelivery(void **state) {
  struct enricher *client = *state;
  struct record rec;
  struct error_info err = {0};
  /* ARM fails first: not cached, the next event discovers again. */
  route("GET", ARM_URL, 503, "{\"error\":{\"code\":\"ServiceUnavailable\"}}")->times = 1;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/busy", 503,
        "{\"error\":{\"code\":\"TransientError\",\"message\":\"busy\"}}");
  route("GET", HISTORY "/experimentids/exp-1/runs/slow", 0, NULL)->result =
      RESULT_TIMEOUT;
  route("GET", HISTORY "/experimentids/exp-1/runs/throttled", 429, "{}");

  struct aml_event ev = run_event("busy", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "HTTP 503"));
  assert_field(&rec, REC_ENRICHMENT, NULL);
  record_cleanup(&rec);

  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "run: HTTP 503 TransientError"));
  record_cleanup(&rec);
  assert_int_equal(count_sent(ARM_URL), 2);

  ev = run_event("slow", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TIMEOUT);
  record_cleanup(&rec);
  ev = run_event("throttled", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TRANSIENT);
  record_cleanup(&rec);

  fake.token_result = RESULT_TRANSIENT;
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TRANSIENT);
  record_cleanup(&rec);

  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.transient_failures, 5);
}

static void untrusted_urls_never_get_the_token(void **state) {
  struct enricher *client = *state;
  route("GET", ARM_URL, 200,
        "{\"properties\":{\"discoveryUrl\":\"http://evil.test/d\"}}");
  struct record rec;
  struct error_info err = {0};
  struct aml_event ev = run_event("run-1", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "workspace discoveryUrl refused: not https");
  assert_int_equal(fake.sent, 1);
  record_cleanup(&rec);

  fake_reset();
  route("GET", ARM_URL, 200, "{\"properties\":{\"discoveryUrl\":\"" DISCOVERY_URL "\"}}");
  route("GET", DISCOVERY_URL, 200, "{\"api\":\"http://api.evil.test\"}");
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "discovered api URL refused: not https");
  assert_int_equal(fake.sent, 2);
  record_cleanup(&rec);

  assert_true(aml_client_url_trusted("https://eastus.api.azureml.ms"));
  assert_true(aml_client_url_trusted("http://127.0.0.1:8443/x"));
  assert_true(aml_client_url_trusted("http://localhost"));
  assert_true(aml_client_url_trusted("HTTP://[::1]:99/"));
  assert_false(aml_client_url_trusted("http://127.0.0.1.evil.test/"));
  assert_false(aml_client_url_trusted("http://127.0.0.1@evil.test/"));
  assert_false(aml_client_url_trusted("http://example.com"));
  assert_false(aml_client_url_trusted("https:///path"));
  assert_false(aml_client_url_trusted("https://a b"));
  assert_false(aml_client_url_trusted("ftp://x"));
  assert_false(aml_client_url_trusted(NULL));
}

static void metrics_failure_keeps_the_record(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200,
        "{\"status\":\"Completed\",\"error\":{\"error\":{\"code\":\"X\"}},"
        "\"runDefinition\":{}}");
  route("POST", METRIC "/runs/run-1/list", 500, "{}");
  struct record rec;
  struct error_info err = {0};
  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  assert_field(&rec, REC_DISPLAY_NAME, NULL);
  assert_field(&rec, REC_ERROR_CODE, "X");
  assert_int_equal(rec.metric_count, 0);
  record_cleanup(&rec);
}

static void failed_step_gets_error_and_parent(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/step-1", 200,
        "{\"status\":\"failed\",\"parentRunId\":\"sub-pipeline\",\"error\":{\"error\":{"
        "\"code\":\"UserError\",\"message\":\"boom\"}},\"displayName\":\"s\","
        "\"runDefinition\":null}");
  route("GET", HISTORY "/experimentids/exp-1/runs/step-1/details", 200,
        "{\"runDefinition\":{\"script\":\"step.py\"}}");
  route("GET", HISTORY "/runs/" PIPELINE_ID, 404, "{}");
  struct record rec;
  struct error_info err = {0};
  struct aml_event ev = run_event("step-1", "Failed", RUN_KIND_STEP);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok"); /* a missing parent costs nothing */
  assert_field(&rec, REC_STATUS, "Failed");
  assert_field(&rec, REC_ERROR_CODE, "UserError");
  assert_field(&rec, REC_ERROR_MESSAGE, "boom");
  assert_field(&rec, REC_PARENT_RUN_ID, "sub-pipeline");
  assert_field(&rec, REC_PIPELINE_RUN_ID, PIPELINE_ID);
  assert_field(&rec, REC_DISPLAY_NAME, "s");
  /* The Run had no runDefinition: RunDetails supplied the script. */
  assert_field(&rec, REC_SCRIPT, "step.py");
  assert_int_equal(rec.metric_count, 0); /* not Completed: no metrics */
  record_cleanup(&rec);
}

static void details_fallback_failures(void **state) {
  struct enricher *client = *state;
  discovery_routes();
  /* Neither Run has a runDefinition, so RunDetails is asked for. */
  route("GET", HISTORY "/experimentids/exp-1/runs/gone", 200,
        "{\"status\":\"Running\",\"displayName\":\"g\"}");
  route("GET", HISTORY "/experimentids/exp-1/runs/gone/details", 404,
        "{\"error\":{\"code\":\"UserError\"}}");
  route("GET", HISTORY "/experimentids/exp-1/runs/busy", 200, "{\"status\":\"Running\"}");
  route("GET", HISTORY "/experimentids/exp-1/runs/busy/details", 503,
        "{\"error\":{\"code\":\"TransientError\",\"message\":\"busy\"}}");
  struct record rec;
  struct error_info err = {0};

  /* Permanently missing details: the Run's record is kept. */
  struct aml_event ev = run_event("gone", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  assert_field(&rec, REC_DISPLAY_NAME, "g");
  record_cleanup(&rec);

  /* Transiently unavailable: redelivery will complete the record. */
  ev = run_event("busy", "Running", RUN_KIND_PLAIN);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "run details: HTTP 503"));
  record_cleanup(&rec);

  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.run_requests, 4);
}

static void non_run_events_are_not_applicable(void **state) {
  struct enricher *client = *state;
  struct aml_event ev = {0};
  ev.type = AML_EVENT_MODEL_REGISTERED;
  ev.run_kind = RUN_KIND_NONE;
  struct record rec;
  struct error_info err = {0};
  record_init(&rec);
  assert_int_equal(client->enrich(client, &ev, &rec, time_mono_ms() + 1000, &err),
                   RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "not applicable");
  assert_int_equal(fake.sent, 0);
  record_cleanup(&rec);
}

static void arm_endpoint_setting(void **state) {
  struct enricher *client = NULL;
  struct error_info err = {0};
  env_arm = "http://arm.example.com";
  assert_int_equal(aml_client_new(NULL, getenv_table, NULL, &client, &err),
                   RESULT_INVALID);
  assert_null(client);
  assert_string_equal(err.field, "AZURE_RESOURCE_MANAGER_ENDPOINT");

  /* Default endpoint: the default ARM scope. */
  fake_reset();
  env_arm = NULL;
  assert_int_equal(aml_client_new(NULL, getenv_table, NULL, &client, &err), RESULT_OK);
  assert_string_equal(client->name, "aml");
  aml_client_set_transport_for_test(client, transport, NULL);
  aml_client_set_token_for_test(client, token, NULL);
  struct aml_event ev = run_event("run-1", "Running", RUN_KIND_PLAIN);
  struct record rec;
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_string_equal(fake.scope, CREDENTIAL_SCOPE_ARM_DEFAULT);
  assert_int_equal(strncmp(fake.sent_urls[0],
                           "https://management.azure.com/subscriptions/",
                           strlen("https://management.azure.com/subscriptions/")),
                   0);
  assert_field(&rec, REC_ENRICHMENT, "workspace not found (404)");
  record_cleanup(&rec);
  client->free(client);

  /* A sovereign cloud's ARM host is its own audience. */
  fake_reset();
  env_arm = " https://management.chinacloudapi.cn/ ";
  assert_int_equal(aml_client_new(NULL, getenv_table, NULL, &client, &err), RESULT_OK);
  aml_client_set_transport_for_test(client, transport, NULL);
  aml_client_set_token_for_test(client, token, NULL);
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_string_equal(fake.scope, "https://management.chinacloudapi.cn/.default");
  assert_int_equal(strncmp(fake.sent_urls[0], "https://management.chinacloudapi.cn/sub",
                           strlen("https://management.chinacloudapi.cn/sub")),
                   0);
  record_cleanup(&rec);
  client->free(client);
}

/* ---- cost estimate -------------------------------------------------------------- */

#define COMPUTES ARM WS_PATH "/computes/"
#define PRICE_FILTER(size)                                                               \
  "https://prices.test/api/retail/prices?$filter=serviceName%20eq%20%27Virtual%20"       \
  "Machines%27%20and%20armRegionName%20eq%20%27eastus%27%20and%20armSkuName%20eq%20%"    \
  "27" size "%27%20and%20priceType%20eq%20%27Consumption%27"
#define PRICE_URL PRICE_FILTER("STANDARD_D4S_V3")
/* Windows, Spot and Low Priority around the Linux pay-as-you-go price. */
#define PRICE_PAGE                                                                       \
  "{\"BillingCurrency\":\"USD\",\"Items\":["                                             \
  "{\"currencyCode\":\"USD\",\"retailPrice\":0.376,\"armRegionName\":\"eastus\","        \
  "\"armSkuName\":\"Standard_D4s_v3\",\"productName\":\"Virtual Machines DSv3 Series "   \
  "Windows\",\"skuName\":\"D4s v3\",\"meterName\":\"D4s v3\",\"unitOfMeasure\":\"1 "     \
  "Hour\",\"type\":\"Consumption\"},"                                                    \
  "{\"currencyCode\":\"USD\",\"retailPrice\":0.0384,\"armRegionName\":\"eastus\","       \
  "\"armSkuName\":\"Standard_D4s_v3\",\"productName\":\"Virtual Machines DSv3 Series\"," \
  "\"skuName\":\"D4s v3 Low Priority\",\"meterName\":\"D4s v3 Low Priority\","           \
  "\"unitOfMeasure\":\"1 Hour\",\"type\":\"Consumption\"},"                              \
  "{\"currencyCode\":\"USD\",\"retailPrice\":0.192,\"armRegionName\":\"eastus\","        \
  "\"armSkuName\":\"Standard_D4s_v3\",\"productName\":\"Virtual Machines DSv3 Series\"," \
  "\"skuName\":\"D4s v3\",\"meterName\":\"D4s v3\",\"unitOfMeasure\":\"1 Hour\","        \
  "\"type\":\"Consumption\"}],\"NextPageLink\":null,\"Count\":3}"
#define CLUSTER(type, priority)                                                          \
  "{\"name\":\"c\",\"location\":\"eastus\",\"properties\":{\"computeType\":\"" type      \
  "\",\"properties\":{\"vmSize\":\"STANDARD_D4S_V3\",\"vmPriority\":\"" priority         \
  "\",\"osType\":\"Linux\",\"scaleSettings\":{\"maxNodeCount\":4}}}}"

static const char *getenv_prices(void *ctx, const char *name) {
  return strcmp(name, RETAIL_PRICES_SETTING) == 0 ? "https://prices.test" : NULL;
}

static struct retail_prices *cost_on(struct enricher *client) {
  struct retail_prices *prices = NULL;
  assert_int_equal(retail_prices_new(getenv_prices, NULL, &prices, NULL), RESULT_OK);
  retail_prices_set_transport_for_test(prices, transport, NULL);
  aml_client_enable_cost(client, prices);
  return prices;
}

/* A Run document of a finished run on `target`. */
static char *run_doc(const char *id, const char *target, const char *start,
                     const char *end, const char *extra) {
  char *doc = malloc(1024);
  snprintf(
      doc, 1024,
      "{\"runId\":\"%s\",\"status\":\"Completed\",\"target\":\"%s\",\"startTimeUtc\":"
      "\"%s\",\"endTimeUtc\":\"%s\",\"runDefinition\":{\"script\":\"s.py\"}%s%s}",
      id, target, start, end, extra ? "," : "", extra ? extra : "");
  return doc;
}

static double number_of(const struct record *rec, enum record_field field) {
  double v = -1;
  assert_true(record_number(rec, field, &v));
  return v;
}

static void step_on_a_cluster_is_priced(void **state) {
  struct enricher *client = *state;
  struct retail_prices *prices = cost_on(client);
  discovery_routes();
  char *one = run_doc("step-1", "cpu", "2024-05-14T09:00:00Z", "2024-05-14T10:30:00Z",
                      "\"compute\":{\"target\":\"cpu\",\"instanceCount\":2}");
  char *two = run_doc("step-2", "cpu", "2024-05-14T09:00:00Z", "2024-05-14T09:15:00Z",
                      "\"computeRequest\":{\"nodeCount\":1}");
  route("GET", HISTORY "/experimentids/exp-1/runs/step-1", 200, one);
  route("GET", HISTORY "/experimentids/exp-1/runs/step-2", 200, two);
  route("GET", COMPUTES "cpu?api-version=2024-04-01", 200,
        CLUSTER("AmlCompute", "Dedicated"));
  route("GET", PRICE_URL, 200, PRICE_PAGE);

  struct aml_event ev = run_event("step-1", "Completed", RUN_KIND_STEP);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_VM_SIZE, "STANDARD_D4S_V3");
  assert_field(&rec, REC_VM_PRIORITY, "Dedicated");
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  assert_true(number_of(&rec, REC_NODE_COUNT) == 2);
  assert_true(number_of(&rec, REC_COST_PRICE_PER_HOUR_USD) == 0.192);
  assert_float_equal(number_of(&rec, REC_COST_ESTIMATE_USD), 0.192 * 2 * 1.5, 1e-12);
  record_cleanup(&rec);

  ev = run_event("step-2", "Failed", RUN_KIND_STEP); /* failed runs cost too */
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_float_equal(number_of(&rec, REC_COST_ESTIMATE_USD), 0.192 * 0.25, 1e-12);
  record_cleanup(&rec);

  ev = run_event("step-2", "Running", RUN_KIND_STEP); /* not finished: no cost */
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &(double){0}));
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  record_cleanup(&rec);

  /* One compute read and one price lookup for both runs; no token to prices. */
  assert_int_equal(count_sent(COMPUTES "cpu?api-version=2024-04-01"), 1);
  assert_int_equal(count_sent(PRICE_URL), 1);
  assert_string_equal(auth_of(PRICE_URL), "(none)");
  assert_string_equal(auth_of(COMPUTES "cpu?api-version=2024-04-01"), "Bearer tok-123");
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.compute_reads, 1);
  assert_int_equal(stats.compute_cache_hits, 1);
  free(one);
  free(two);
  client->free(client);
  *state = NULL;
  retail_prices_free(prices);
}

static void pipeline_carries_the_sum_of_its_steps(void **state) {
  struct enricher *client = *state;
  struct retail_prices *prices = cost_on(client);
  discovery_routes();
  route("GET", HISTORY "/experimentids/exp-1/runs/" PIPELINE_ID, 200,
        "{\"runId\":\"" PIPELINE_ID "\",\"status\":\"Completed\",\"target\":\"cpu\","
        "\"runType\":\"azureml.PipelineRun\",\"startTimeUtc\":\"2024-05-14T09:00:00Z\","
        "\"endTimeUtc\":\"2024-05-14T11:00:00Z\",\"runDefinition\":{}}");
  route(
      "GET", HISTORY "/runs/" PIPELINE_ID "/children?$top=100", 200,
      "{\"value\":[{\"runId\":\"a\",\"target\":\"cpu\",\"status\":\"Completed\","
      "\"startTimeUtc\":\"2024-05-14T09:00:00Z\",\"endTimeUtc\":\"2024-05-14T10:00:00Z\","
      "\"compute\":{\"instanceCount\":1}},"
      "{\"runId\":\"b\",\"target\":\"cpu\",\"status\":\"Completed\",\"properties\":"
      "{\"azureml.isreused\":\"true\"}},"
      "{\"runId\":\"never\",\"target\":\"cpu\",\"status\":\"NotStarted\"}],"
      "\"continuationToken\":\"tok 2\"}");
  route(
      "GET", HISTORY "/runs/" PIPELINE_ID "/children?$top=100&$continuationtoken=tok%202",
      200,
      "{\"value\":[{\"runId\":\"c\",\"target\":\"spot\",\"status\":\"Failed\","
      "\"startTimeUtc\":\"2024-05-14T10:00:00Z\",\"endTimeUtc\":\"2024-05-14T10:30:00Z\","
      "\"compute\":{\"instanceCount\":2}}],\"continuationToken\":null}");
  route("GET", COMPUTES "cpu?api-version=2024-04-01", 200,
        CLUSTER("AmlCompute", "Dedicated"));
  route("GET", COMPUTES "spot?api-version=2024-04-01", 200,
        CLUSTER("AmlCompute", "LowPriority"));
  route("GET", PRICE_URL, 200, PRICE_PAGE);

  struct aml_event ev = run_event(PIPELINE_ID, "Completed", RUN_KIND_PIPELINE);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  /* a: 0.192 x 1 x 1 h; b: reused, 0; never: did not start; c: 0.0384 x 2 x 0.5 h. */
  assert_float_equal(number_of(&rec, REC_COST_ESTIMATE_USD), 0.192 + 0.0384, 1e-12);
  assert_field(&rec, REC_VM_SIZE, NULL); /* a pipeline has no one VM size */
  assert_field(&rec, REC_COST_UNKNOWN_REASON, NULL);
  assert_int_equal(count_sent(PRICE_URL), 2); /* dedicated and low priority */
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.step_list_requests, 2);
  record_cleanup(&rec);

  /* The pipeline's second terminal event (RunCompleted) reuses the sum. */
  ev.type = AML_EVENT_RUN_COMPLETED;
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_float_equal(number_of(&rec, REC_COST_ESTIMATE_USD), 0.192 + 0.0384, 1e-12);
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.step_list_requests, 2);
  record_cleanup(&rec);
  client->free(client);
  *state = NULL;
  retail_prices_free(prices);
}

static void prices_down_leaves_the_cost_out(void **state) {
  struct enricher *client = *state;
  struct retail_prices *prices = cost_on(client);
  discovery_routes();
  char *doc = run_doc("run-1", "cpu", "2024-05-14T09:00:00Z", "2024-05-14T10:00:00Z",
                      "\"compute\":{\"instanceCount\":1}");
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200, doc);
  route("GET", COMPUTES "cpu?api-version=2024-04-01", 200,
        CLUSTER("AmlCompute", "Dedicated"));
  route("GET", PRICE_URL, 0, NULL)->result = RESULT_TRANSIENT;

  struct aml_event ev = run_event("run-1", "Completed", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_ENRICHMENT, "ok");
  assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &(double){0}));
  assert_field(&rec, REC_VM_SIZE, NULL);
  const char *why = record_string(&rec, REC_COST_UNKNOWN_REASON);
  assert_non_null(why);
  assert_non_null(strstr(why, "could not be reached"));
  record_cleanup(&rec);
  free(doc);
  client->free(client);
  *state = NULL;
  retail_prices_free(prices);
}

static void unpriced_targets_say_why(void **state) {
  struct enricher *client = *state;
  struct retail_prices *prices = cost_on(client);
  discovery_routes();
  static const struct {
    const char *target, *extra, *compute, *expect;
  } cases[] = {
      {"k8s", "\"compute\":{\"instanceCount\":1}", CLUSTER("Kubernetes", ""),
       "Kubernetes compute (k8s) is not priced"},
      {"local", NULL, NULL, "a local run uses no Azure compute"},
      {"win", "\"compute\":{\"instanceCount\":1}",
       "{\"location\":\"eastus\",\"properties\":{\"computeType\":\"AmlCompute\","
       "\"properties\":{\"vmSize\":\"STANDARD_D4S_V3\",\"osType\":\"Windows\"}}}",
       "runs Windows"},
      {"nonodes", NULL, CLUSTER("AmlCompute", "Dedicated"), "node count is unknown"},
      {"gone", "\"compute\":{\"instanceCount\":1}", NULL, "could not be read"},
      {"serverless", "\"compute\":{\"instanceCount\":1,\"vmSize\":\"STANDARD_D4S_V3\"}",
       NULL, "names no region"},
      {"", NULL, NULL, "names no compute target"},
      {"cpu", "\"runType\":\"azureml.PipelineRun\"", NULL, "nested pipeline"},
  };
  enum { N = sizeof cases / sizeof *cases };
  char urls[N][256], *docs[N];
  for (size_t i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "run-%zu", i);
    docs[i] = run_doc(id, cases[i].target, "2024-05-14T09:00:00Z", "2024-05-14T10:00:00Z",
                      cases[i].extra);
    snprintf(urls[i], sizeof urls[i], "%s/experimentids/exp-1/runs/%s", HISTORY, id);
    route("GET", urls[i], 200, docs[i]);
  }
  route("GET", COMPUTES "k8s?api-version=2024-04-01", 200, cases[0].compute);
  route("GET", COMPUTES "win?api-version=2024-04-01", 200, cases[2].compute);
  route("GET", COMPUTES "nonodes?api-version=2024-04-01", 200, cases[3].compute);
  for (size_t i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "run-%zu", i);
    /* The nested pipeline is a step of an outer pipeline. */
    bool nested = strstr(cases[i].expect, "nested") != NULL;
    struct aml_event ev =
        run_event(id, "Completed", nested ? RUN_KIND_STEP : RUN_KIND_PLAIN);
    struct record rec;
    struct error_info err = {0};
    assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
    const char *why = record_string(&rec, REC_COST_UNKNOWN_REASON);
    if (!why || !strstr(why, cases[i].expect))
      fail_msg("%s: reason \"%s\", expected \"%s\"", cases[i].target, why ? why : "",
               cases[i].expect);
    assert_false(record_number(&rec, REC_COST_ESTIMATE_USD, &(double){0}));
    record_cleanup(&rec);
    free(docs[i]);
  }
  assert_int_equal(count_sent(PRICE_URL), 0); /* never guessed, never asked */
  client->free(client);
  *state = NULL;
  retail_prices_free(prices);
}

static void serverless_run_priced_from_its_own_compute(void **state) {
  struct enricher *client = *state;
  struct retail_prices *prices = cost_on(client);
  discovery_routes();
  char *doc =
      run_doc("run-1", "serverless", "2024-05-14T09:00:00Z", "2024-05-14T09:30:00Z",
              "\"compute\":{\"instanceCount\":4,\"instanceType\":"
              "\"STANDARD_D4S_V3\",\"region\":\"eastus\",\"priority\":\"Spot\"}");
  route("GET", HISTORY "/experimentids/exp-1/runs/run-1", 200, doc);
  route("GET", PRICE_URL, 200, PRICE_PAGE);
  struct aml_event ev = run_event("run-1", "Canceled", RUN_KIND_PLAIN);
  struct record rec;
  struct error_info err = {0};
  assert_int_equal(enrich(client, &ev, &rec, &err), RESULT_OK);
  assert_field(&rec, REC_VM_SIZE, "STANDARD_D4S_V3");
  assert_field(&rec, REC_VM_PRIORITY, "LowPriority");
  /* No compute resource to read; the low-priority price, 4 nodes, half an hour. */
  assert_float_equal(number_of(&rec, REC_COST_ESTIMATE_USD), 0.0384 * 4 * 0.5, 1e-12);
  struct aml_client_stats stats;
  aml_client_get_stats(client, &stats);
  assert_int_equal(stats.compute_reads, 0);
  record_cleanup(&rec);
  free(doc);
  client->free(client);
  *state = NULL;
  retail_prices_free(prices);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(completed_run, setup, teardown),
      cmocka_unit_test_setup_teardown(running_run_is_one_request_and_ids_are_escaped,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(discovery_single_flight_16_threads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(parent_cache_single_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(permanent_failures_are_acknowledged, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(a_refused_credential_fails_the_invocation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(transient_failures_ask_for_redelivery, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(untrusted_urls_never_get_the_token, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(metrics_failure_keeps_the_record, setup, teardown),
      cmocka_unit_test_setup_teardown(metric_pages_are_followed, setup, teardown),
      cmocka_unit_test_setup_teardown(metric_pages_are_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(metric_next_link_is_followed_on_the_api_host, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(failed_step_gets_error_and_parent, setup, teardown),
      cmocka_unit_test_setup_teardown(details_fallback_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(non_run_events_are_not_applicable, setup, teardown),
      cmocka_unit_test(arm_endpoint_setting),
      cmocka_unit_test_setup_teardown(step_on_a_cluster_is_priced, setup, teardown),
      cmocka_unit_test_setup_teardown(pipeline_carries_the_sum_of_its_steps, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(prices_down_leaves_the_cost_out, setup, teardown),
      cmocka_unit_test_setup_teardown(unpriced_targets_say_why, setup, teardown),
      cmocka_unit_test_setup_teardown(serverless_run_priced_from_its_own_compute, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
