/* Unit tests of the App Insights exporter with a fake transport (no network):
 * group commit under 32 concurrent callers, 206 partial re-send of only the
 * retryable items, 400 items not retried, 429 + Retry-After, 503 until the
 * deadline, 401, the daily cap, redirects (followed, remembered, refused),
 * dedup of a redelivered event (the set itself: test_dedup.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "export/appinsights.h"
#include "export/appinsights_testing.h"
#include "base/gzip.h"
#include "gunzip.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "core/record.h"
#include "base/timeutil.h"

#define MAX_POSTS 64

struct fake;
/* Fills the answer to POST number `post` (from 0) whose items are `items`. */
typedef void (*answer_fn)(struct fake *f, int post, json_t *items,
                          struct http_response *out);

struct fake {
  pthread_mutex_t lock;
  answer_fn answer;
  int delay_ms;       /* each POST takes this long */
  int fail_transport; /* answer with a transport error */
  int posts;
  json_t *bodies; /* one array of envelopes per POST */
  char urls[MAX_POSTS][256];
  bool gzip_seen, json_type_seen;
};

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int fake_transport(void *ctx, const struct http_request *req,
                          struct http_response *out, struct error_info *err) {
  struct fake *f = ctx;
  if (f->delay_ms)
    sleep_ms(f->delay_ms);
  bool gzipped = false;
  for (size_t i = 0; i < req->header_count; i++) {
    if (strcmp(req->headers[i].name, "Content-Encoding") == 0 &&
        strcmp(req->headers[i].value, "gzip") == 0)
      gzipped = true;
    if (strcmp(req->headers[i].name, "Content-Type") == 0 &&
        strcmp(req->headers[i].value, "application/json") == 0)
      f->json_type_seen = true;
  }
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  if (gzipped) {
    assert_int_equal(
        gzip_decompress(req->body, req->body_len, 1 << 24, &plain, &plain_len), 0);
  } else {
    plain = malloc(req->body_len + 1);
    memcpy(plain, req->body, req->body_len);
    plain_len = req->body_len;
  }
  json_t *items = jsonx_parse((const char *)plain, plain_len, 64, NULL, NULL);
  free(plain);
  assert_true(json_is_array(items));
  pthread_mutex_lock(&f->lock);
  f->gzip_seen |= gzipped;
  int post = f->posts++;
  answer_fn answer = f->answer; /* the answer in force when this POST arrived */
  if (post < MAX_POSTS)
    snprintf(f->urls[post], sizeof f->urls[post], "%s", req->url);
  json_array_append(f->bodies, items);
  pthread_mutex_unlock(&f->lock);
  memset(out, 0, sizeof *out);
  int result = 0;
  if (f->fail_transport) {
    result = error_set(err, RESULT_TRANSIENT, "", "connection refused");
  } else {
    answer(f, post, items, out);
  }
  json_decref(items);
  return result;
}

static void respond(struct http_response *out, long status, const char *body) {
  out->status = status;
  out->body = strdup(body ? body : "");
  out->body_len = strlen(out->body);
}

static void answer_200(struct fake *f, int post, json_t *items,
                       struct http_response *out) {
  char body[128];
  snprintf(body, sizeof body,
           "{\"itemsReceived\":%zu,\"itemsAccepted\":%zu,\"errors\":[]}",
           json_array_size(items), json_array_size(items));
  respond(out, 200, body);
}

/* ---- fixture --------------------------------------------------------------- */

static struct fake fake;

/* The fake's counters as the main thread reads them while the sender thread may
 * still be posting. */
static int posts_now(void) {
  pthread_mutex_lock(&fake.lock);
  int n = fake.posts;
  pthread_mutex_unlock(&fake.lock);
  return n;
}

/* Changes the answer for POSTs from now on; returns how many came before. */
static int set_answer(answer_fn answer) {
  pthread_mutex_lock(&fake.lock);
  fake.answer = answer;
  int posts = fake.posts;
  pthread_mutex_unlock(&fake.lock);
  return posts;
}
static struct exporter *exporter;
static int window_ms = 15;
static pthread_barrier_t barrier;

static const char *no_env(void *ctx, const char *name) {
  return NULL;
}

static void start(answer_fn answer) {
  memset(&fake, 0, sizeof fake);
  pthread_mutex_init(&fake.lock, NULL);
  set_answer(answer);
  fake.bodies = json_array();
  struct config cfg = {.appinsights_connection_string =
                           "InstrumentationKey=00000000-1111-2222-3333-444444444444;"
                           "IngestionEndpoint=https://ingest.example.com/",
                       .appinsights_setting = "APPLICATIONINSIGHTS_CONNECTION_STRING"};
  struct appinsights_tuning tuning = {
      .window_ms = window_ms,
      .retry = {.max_attempts = 5, .base_delay_ms = 10, .max_delay_ms = 40}};
  struct error_info err = {0};
  assert_int_equal(
      appinsights_exporter_new_with(&cfg, no_env, NULL, &tuning, &exporter, &err), 0);
  appinsights_exporter_set_transport_for_test(exporter, fake_transport, &fake);
  assert_string_equal(exporter->name, "appinsights");
}

static int teardown(void **state) {
  exporter_free(exporter);
  exporter = NULL;
  json_decref(fake.bodies);
  pthread_mutex_destroy(&fake.lock);
  return 0;
}

/* A model event: one envelope per record. */
static void model_record(struct record *rec, const char *event_id) {
  record_init(rec);
  snprintf(rec->name, sizeof rec->name, "AmlModelRegistered");
  rec->type = AML_EVENT_MODEL_REGISTERED;
  record_set_string(rec, REC_EVENT_ID, event_id);
  record_set_string(rec, REC_MODEL_NAME, event_id);
}

static int export_ids(const char *const *ids, size_t n, int64_t budget_ms,
                      struct error_info *err) {
  struct record recs[8];
  const struct record *ptrs[8];
  for (size_t i = 0; i < n; i++) {
    model_record(&recs[i], ids[i]);
    ptrs[i] = &recs[i];
  }
  int r = exporter_export(exporter, ptrs, n, time_mono_ms() + budget_ms, err);
  for (size_t i = 0; i < n; i++)
    record_cleanup(&recs[i]);
  return r;
}

/* The event_id of envelope `index` of POST `post`. */
static const char *sent_event_id(int post, size_t index) {
  json_t *env = json_array_get(json_array_get(fake.bodies, (size_t)post), index);
  json_t *base = json_object_get(json_object_get(env, "data"), "baseData");
  return json_string_value(
      json_object_get(json_object_get(base, "properties"), "event_id"));
}

static size_t sent_count(int post) {
  return json_array_size(json_array_get(fake.bodies, (size_t)post));
}

static struct appinsights_stats stats(void) {
  struct appinsights_stats s;
  appinsights_exporter_stats(exporter, &s);
  return s;
}

/* ---- group commit ---------------------------------------------------------- */

struct caller {
  char id[32];
  int result;
};

static void *call(void *arg) {
  struct caller *c = arg;
  const char *ids[] = {c->id};
  pthread_barrier_wait(&barrier); /* everyone calls at once */
  c->result = export_ids(ids, 1, 5000, NULL);
  return NULL;
}

static void group_commit(void **state) {
  window_ms = 40; /* generous, so slow (sanitizer) builds still group */
  start(answer_200);
  window_ms = 15;
  fake.delay_ms = 20;
  enum { N = 32 };
  pthread_barrier_init(&barrier, NULL, N);
  pthread_t threads[N];
  struct caller callers[N];
  for (int i = 0; i < N; i++) {
    snprintf(callers[i].id, sizeof callers[i].id, "evt-%d", i);
    pthread_create(&threads[i], NULL, call, &callers[i]);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(callers[i].result, 0);
  }
  pthread_barrier_destroy(&barrier);
  struct appinsights_stats s = stats();
  assert_int_equal(s.items_accepted, N);
  assert_true(s.posts >= 1 && s.posts <= 8); /* far fewer POSTs than callers */
  assert_int_equal(posts_now(), (int)s.posts);
  size_t total = 0;
  for (int p = 0; p < posts_now(); p++)
    total += sent_count(p);
  assert_int_equal(total, N);
  assert_true(fake.gzip_seen);
  assert_true(fake.json_type_seen);
  assert_string_equal(fake.urls[0], "https://ingest.example.com/v2.1/track");
}

/* ---- per-item answers ------------------------------------------------------ */

static void answer_206_then_200(struct fake *f, int post, json_t *items,
                                struct http_response *out) {
  if (post == 0)
    respond(out, 206,
            "{\"itemsReceived\":3,\"itemsAccepted\":1,\"errors\":["
            "{\"index\":1,\"statusCode\":500,\"message\":\"Internal\"},"
            "{\"index\":2,\"statusCode\":400,\"message\":\"Field 'time' is invalid\"}]}");
  else
    answer_200(f, post, items, out);
}

static void partial_resend(void **state) {
  start(answer_206_then_200);
  const char *ids[] = {"a", "b", "c"};
  assert_int_equal(export_ids(ids, 3, 5000, NULL), 0);
  assert_int_equal(posts_now(), 2);
  assert_int_equal(sent_count(0), 3);
  assert_int_equal(sent_count(1), 1); /* only the retryable item */
  assert_string_equal(sent_event_id(0, 1), "b");
  assert_string_equal(sent_event_id(1, 0), "b");
  struct appinsights_stats s = stats();
  assert_int_equal(s.items_accepted, 2);
  assert_int_equal(s.items_failed, 1);
  assert_int_equal(s.items_retried, 1);
}

/* Errors that break the swagger's types: a fractional or huge index names no
 * item; a status that is not an HTTP status (1e300, a string) counts as 500. */
static void answer_206_malformed_then_200(struct fake *f, int post, json_t *items,
                                          struct http_response *out) {
  if (post == 0)
    respond(out, 206,
            "{\"itemsReceived\":3,\"itemsAccepted\":0,\"errors\":["
            "{\"index\":0,\"statusCode\":1e300},{\"index\":1,\"statusCode\":\"400\"},"
            "{\"index\":1.9,\"statusCode\":400},{\"index\":1e300,\"statusCode\":400},"
            "{\"index\":-1,\"statusCode\":400},{\"index\":2,\"statusCode\":-400}]}");
  else
    answer_200(f, post, items, out);
}

static void malformed_item_errors(void **state) {
  start(answer_206_malformed_then_200);
  const char *ids[] = {"a", "b", "c"};
  assert_int_equal(export_ids(ids, 3, 5000, NULL), 0);
  assert_int_equal(posts_now(), 2);
  assert_int_equal(sent_count(1), 3); /* each error read as a retryable 500 */
  struct appinsights_stats s = stats();
  assert_int_equal(s.items_accepted, 3);
  assert_int_equal(s.items_failed, 0);
}

static void answer_400_items(struct fake *f, int post, json_t *items,
                             struct http_response *out) {
  respond(out, 400,
          "{\"itemsReceived\":2,\"itemsAccepted\":0,\"errors\":["
          "{\"index\":0,\"statusCode\":400,\"message\":\"too old\"},"
          "{\"index\":1,\"statusCode\":400,\"message\":\"too old\"}]}");
}

static void invalid_items_not_retried(void **state) {
  start(answer_400_items);
  const char *ids[] = {"x", "y"};
  assert_int_equal(export_ids(ids, 2, 2000, NULL), 0);
  sleep_ms(60);
  assert_int_equal(posts_now(), 1);
  struct appinsights_stats s = stats();
  assert_int_equal(s.items_failed, 2);
  assert_int_equal(s.items_retried, 0);
}

/* ---- whole-batch answers --------------------------------------------------- */

static void answer_429_then_200(struct fake *f, int post, json_t *items,
                                struct http_response *out) {
  if (post == 0) {
    respond(out, 429, "");
    out->retry_after = strdup("1"); /* seconds */
  } else {
    answer_200(f, post, items, out);
  }
}

static void throttled_then_accepted(void **state) {
  start(answer_429_then_200);
  const char *ids[] = {"t"};
  int64_t t0 = time_mono_ms();
  assert_int_equal(export_ids(ids, 1, 5000, NULL), 0);
  int64_t elapsed = time_mono_ms() - t0;
  assert_int_equal(posts_now(), 2);
  assert_true(elapsed >= 1000); /* Retry-After honoured, not the 10 ms backoff */
  assert_true(elapsed < 3000);
  assert_int_equal(stats().items_accepted, 1);
}

static void answer_503(struct fake *f, int post, json_t *items,
                       struct http_response *out) {
  respond(out, 503, "");
}

static void unavailable_until_deadline(void **state) {
  start(answer_503);
  const char *ids[] = {"u"};
  struct error_info err = {0};
  int64_t t0 = time_mono_ms();
  assert_int_equal(export_ids(ids, 1, 300, &err), RESULT_TRANSIENT);
  int64_t elapsed = time_mono_ms() - t0;
  assert_true(elapsed < 600);
  assert_true(posts_now() >= 3); /* retried with backoff */
  assert_non_null(strstr(err.message, "503"));
  assert_int_equal(stats().items_accepted, 0);
  /* Not remembered as accepted: a redelivery is sent again. A retry still in
   * flight was answered 503, so only a POST after the switch can accept it. */
  int before = set_answer(answer_200);
  assert_int_equal(export_ids(ids, 1, 2000, NULL), 0);
  assert_true(posts_now() > before);
}

static void transport_down_times_out(void **state) {
  start(answer_200);
  fake.fail_transport = 1;
  const char *ids[] = {"d"};
  struct error_info err = {0};
  assert_int_equal(export_ids(ids, 1, 200, &err), RESULT_TIMEOUT);
  assert_non_null(strstr(err.message, "connection refused"));
}

static void answer_401(struct fake *f, int post, json_t *items,
                       struct http_response *out) {
  respond(out, 401, "");
}

static void unauthorized_explained(void **state) {
  start(answer_401);
  const char *ids[] = {"z"};
  struct error_info err = {0};
  assert_int_equal(export_ids(ids, 1, 200, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "401"));
  assert_non_null(strstr(err.message, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"));
}

static void answer_439(struct fake *f, int post, json_t *items,
                       struct http_response *out) {
  respond(out, 439, "");
}

static void daily_cap_drops(void **state) {
  start(answer_439);
  const char *ids[] = {"q1", "q2"};
  assert_int_equal(export_ids(ids, 2, 2000, NULL), 0);
  assert_int_equal(posts_now(), 1);
  assert_int_equal(stats().items_dropped, 2);
}

/* ---- redirects ------------------------------------------------------------- */

static void answer_redirect_once(struct fake *f, int post, json_t *items,
                                 struct http_response *out) {
  if (strstr(f->urls[post], "ingest.example.com")) {
    respond(out, 307, "");
    out->location = strdup("https://westeurope-1.in.example.com/v2.1/track");
  } else {
    answer_200(f, post, items, out);
  }
}

static void redirect_remembered(void **state) {
  start(answer_redirect_once);
  const char *ids[] = {"r1"};
  assert_int_equal(export_ids(ids, 1, 2000, NULL), 0);
  assert_int_equal(posts_now(), 2);
  assert_string_equal(fake.urls[1], "https://westeurope-1.in.example.com/v2.1/track");
  char url[256];
  appinsights_exporter_track_url(exporter, url, sizeof url);
  assert_string_equal(url, "https://westeurope-1.in.example.com/v2.1/track");
  const char *more[] = {"r2"};
  assert_int_equal(export_ids(more, 1, 2000, NULL), 0);
  assert_int_equal(posts_now(), 3); /* straight to the new endpoint */
  assert_string_equal(fake.urls[2], "https://westeurope-1.in.example.com/v2.1/track");
  assert_int_equal(stats().redirects, 1);
}

static void answer_redirect_http(struct fake *f, int post, json_t *items,
                                 struct http_response *out) {
  respond(out, 308, "");
  out->location = strdup("http://evil.example.net/v2.1/track");
}

static void answer_redirect_loop(struct fake *f, int post, json_t *items,
                                 struct http_response *out) {
  respond(out, 307, "");
  out->location = strdup("/v2.1/track"); /* relative, to itself */
}

static void redirects_refused(void **state) {
  start(answer_redirect_http);
  const char *ids[] = {"h"};
  struct error_info err = {0};
  assert_int_equal(export_ids(ids, 1, 150, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "plain http"));
  teardown(state);

  start(answer_redirect_loop);
  assert_int_equal(export_ids(ids, 1, 40, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "more than 10"));
  assert_true(posts_now() >= 11);
  assert_string_equal(fake.urls[1], "https://ingest.example.com/v2.1/track");
}

/* ---- dedup ----------------------------------------------------------------- */

static void redelivered_event_not_resent(void **state) {
  start(answer_200);
  const char *ids[] = {"evt-same"};
  assert_int_equal(export_ids(ids, 1, 2000, NULL), 0);
  assert_int_equal(posts_now(), 1);
  assert_int_equal(export_ids(ids, 1, 2000, NULL), 0);
  assert_int_equal(posts_now(), 1);
  assert_int_equal(stats().duplicates_skipped, 1);
  const char *other[] = {"evt-other"};
  assert_int_equal(export_ids(other, 1, 2000, NULL), 0);
  assert_int_equal(posts_now(), 2);
}

static int export_run(const char *event_id, const char *status, int64_t budget_ms,
                      struct error_info *err) {
  struct record rec;
  record_init(&rec);
  snprintf(rec.name, sizeof rec.name, "AmlRunStatusChanged");
  rec.run_kind = RUN_KIND_PIPELINE;
  record_set_string(&rec, REC_EVENT_ID, event_id);
  record_set_string(&rec, REC_RUN_ID, "pipeline-run-1");
  record_set_string(&rec, REC_STATUS, status);
  record_set_number(&rec, REC_EXECUTION_TIME_MS, 1000);
  const struct record *ptr = &rec;
  int r = exporter_export(exporter, &ptr, 1, time_mono_ms() + budget_ms, err);
  record_cleanup(&rec);
  return r;
}

/* The request and metrics of a run in POST `post`, by envelope name. */
static int sent_named(int post, const char *suffix) {
  int found = 0;
  size_t i;
  json_t *env;
  json_array_foreach(json_array_get(fake.bodies, (size_t)post), i, env) {
    const char *name = json_string_value(json_object_get(env, "name"));
    size_t n = strlen(name), k = strlen(suffix);
    found += n >= k && strcmp(name + n - k, suffix) == 0;
  }
  return found;
}

static void run_measured_once(void **state) {
  start(answer_503);
  struct error_info err = {0};
  /* A failed export gives the run back: its redelivery measures it. */
  assert_int_equal(export_run("e1", "Completed", 100, &err), RESULT_TRANSIENT);
  set_answer(answer_200);
  int base = posts_now();
  assert_int_equal(export_run("e1", "Completed", 2000, NULL), 0);
  assert_int_equal(sent_named(base, ".Request"), 1);
  assert_int_equal(sent_named(base, ".Metric"), 1);
  /* A second terminal event of the same run (RunCompleted after
   * RunStatusChanged) is a custom event only. */
  assert_int_equal(export_run("e2", "Completed", 2000, NULL), 0);
  assert_int_equal(posts_now(), base + 2);
  assert_int_equal(sent_count(base + 1), 1);
  assert_int_equal(sent_named(base + 1, ".Event"), 1);
  /* A non-terminal event claims nothing. */
  assert_int_equal(export_run("e3", "Running", 2000, NULL), 0);
  assert_int_equal(sent_count(base + 2), 1);
}

static void bad_settings(void **state) {
  struct exporter *e = NULL;
  struct error_info err = {0};
  struct config cfg = {.appinsights_connection_string = "InstrumentationKey=nope",
                       .appinsights_setting = "APPINSIGHTS_CONNECTION_STRING"};
  assert_int_equal(appinsights_exporter_new(&cfg, no_env, NULL, &e, &err),
                   RESULT_INVALID);
  assert_null(e);
  assert_string_equal(err.field, "APPINSIGHTS_CONNECTION_STRING");
  cfg.appinsights_connection_string =
      "InstrumentationKey=00000000-1111-2222-3333-444444444444";
  cfg.appinsights_authentication_string = "Authorization=Basic";
  assert_int_equal(appinsights_exporter_new(&cfg, no_env, NULL, &e, &err),
                   RESULT_INVALID);
  assert_string_equal(err.field, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING");
  /* AAD without a managed identity available. */
  cfg.appinsights_authentication_string = "Authorization=AAD";
  assert_true(appinsights_exporter_new(&cfg, no_env, NULL, &e, &err) < 0);
  assert_null(e);
}

static int setup_logs(void **state) {
  log_set_level(LOG_OFF);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(group_commit, teardown),
      cmocka_unit_test_teardown(partial_resend, teardown),
      cmocka_unit_test_teardown(malformed_item_errors, teardown),
      cmocka_unit_test_teardown(invalid_items_not_retried, teardown),
      cmocka_unit_test_teardown(throttled_then_accepted, teardown),
      cmocka_unit_test_teardown(unavailable_until_deadline, teardown),
      cmocka_unit_test_teardown(transport_down_times_out, teardown),
      cmocka_unit_test_teardown(unauthorized_explained, teardown),
      cmocka_unit_test_teardown(daily_cap_drops, teardown),
      cmocka_unit_test_teardown(redirect_remembered, teardown),
      cmocka_unit_test_teardown(redirects_refused, teardown),
      cmocka_unit_test_teardown(redelivered_event_not_resent, teardown),
      cmocka_unit_test_teardown(run_measured_once, teardown),
      cmocka_unit_test(bad_settings),
  };
  return cmocka_run_group_tests(tests, setup_logs, NULL);
}
