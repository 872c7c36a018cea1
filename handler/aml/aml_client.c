/* The AML client: run events -> Run, parent run, metrics -> record.
 *
 * Per event: a token for ARM; the workspace's API base URL from the workspace
 * cache (on a miss: ARM workspace -> properties.discoveryUrl -> discovery
 * document -> api); the Run (one request: it carries every mapped field, the
 * display name included; RunDetails only when the Run has no runDefinition);
 * for a step the parent pipeline's Run from the parent cache; for a Completed
 * run the metrics list and one `full` read per metric, each following its
 * continuationToken (or same-host nextLink) pages (at most AML_CLIENT_MAX_PAGES each;
 * bounded, and within half the time left so the export that follows keeps its share of
 * the deadline).
 *
 * Invariants: every id put in a URL path is percent-escaped (and "." / ".."
 * spelled %2E so no dot segment can be squashed); the token goes only to
 * trusted URLs (aml_client_url_trusted); permanent failures become the
 * record's `enrichment` reason, transient ones the return value.
 *
 * Threading: the caches are single-flight: the first caller of a key leads the
 * lookup while later callers wait on the cache's condition variable (bounded by
 * their deadline) and share the leader's outcome. Entries with waiters are
 * never evicted. Counters are atomics. */
#include "aml/aml_client.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aml/aml_client_testing.h"
#include "base/crypto.h"
#include "azure/http_client.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/text.h"
#include "base/lookup_cache.h"
#include "base/loopback.h"
#include "aml/run_details.h"
#include "aml/run_cost.h"
#include "cost/cost.h"
#include "base/timeutil.h"

#define ARM_API_VERSION "2024-04-01"
#define WORKSPACE_PROVIDER "providers/Microsoft.MachineLearningServices/workspaces"
#define REASON_FORBIDDEN                                                                 \
  "forbidden (403): the identity needs read access to the workspace, e.g. the AzureML "  \
  "Data Scientist role"

/* ---- the client ---------------------------------------------------------------- */

struct aml_client {
  struct enricher base; /* first: the enricher handed out is this struct */
  struct credential *cred;
  char *arm;   /* ARM endpoint without trailing slash */
  char *scope; /* {arm}/.default */
  http_transport_fn transport;
  void *transport_ctx;
  aml_token_fn token_fn;
  void *token_ctx;
  struct lookup_cache workspaces;    /* "sub/rg/ws" -> api base URL */
  struct lookup_cache parents;       /* "sub/rg/ws/run" -> trimmed parent Run JSON */
  struct retail_prices *prices;      /* borrowed; NULL: no cost estimate */
  struct compute_reader computes;    /* "sub/rg/ws/name" -> compute_info */
  struct lookup_cache pipeline_sums; /* "sub/rg/ws/runid" -> pipeline cost */
  atomic_uint_fast64_t enrich_calls, discovery_requests, discovery_cache_hits,
      run_requests, parent_lookups, parent_cache_hits, metric_requests,
      permanent_failures, transient_failures, step_list_requests;
};

/* What one enrich() works with: the escaped ids and the bearer header. */
struct call {
  struct aml_client *client;
  const struct aml_event *ev;
  int64_t deadline_ms;
  char *sub, *rg, *ws; /* escaped */
  char *auth;          /* "Bearer <token>", wiped before free */
};

static int enrich(struct enricher *self, const struct aml_event *ev, struct record *rec,
                  int64_t deadline_ms, struct error_info *err);

/* The client behind an enricher handle, or NULL when `e` is another enricher. */
static struct aml_client *as_client(const struct enricher *e) {
  return e && e->enrich == enrich ? (struct aml_client *)e : NULL;
}

void aml_client_set_transport_for_test(struct enricher *e, http_transport_fn fn,
                                       void *ctx) {
  struct aml_client *client = as_client(e);
  if (!client)
    return;
  client->transport = fn;
  client->transport_ctx = ctx;
}

void aml_client_enable_cost(struct enricher *e, struct retail_prices *prices) {
  struct aml_client *client = as_client(e);
  if (client)
    client->prices = prices;
}

void aml_client_set_token_for_test(struct enricher *e, aml_token_fn fn, void *ctx) {
  struct aml_client *client = as_client(e);
  if (!client)
    return;
  client->token_fn = fn;
  client->token_ctx = ctx;
}

void aml_client_get_stats(const struct enricher *e, struct aml_client_stats *out) {
  struct aml_client *c = as_client(e);
  memset(out, 0, sizeof *out);
  if (!c)
    return;
  out->enrich_calls = atomic_load(&c->enrich_calls);
  out->discovery_requests = atomic_load(&c->discovery_requests);
  out->discovery_cache_hits = atomic_load(&c->discovery_cache_hits);
  out->run_requests = atomic_load(&c->run_requests);
  out->parent_lookups = atomic_load(&c->parent_lookups);
  out->parent_cache_hits = atomic_load(&c->parent_cache_hits);
  out->metric_requests = atomic_load(&c->metric_requests);
  out->permanent_failures = atomic_load(&c->permanent_failures);
  out->transient_failures = atomic_load(&c->transient_failures);
  out->compute_reads = atomic_load(&c->computes.reads);
  out->compute_cache_hits = atomic_load(&c->computes.cache_hits);
  out->step_list_requests = atomic_load(&c->step_list_requests);
}

bool aml_client_url_trusted(const char *url) {
  if (!url)
    return false;
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return false;
  if (strncasecmp(url, "https://", 8) == 0)
    return url[8] != '\0' && url[8] != '/';
  if (strncasecmp(url, "http://", 7) != 0)
    return false;
  return loopback_url(url);
}

/* A path segment: percent-escaped, and never a dot segment. NULL for an empty
 * id or no memory. */
static char *segment(const char *id) {
  if (!id || !*id)
    return NULL;
  if (strcmp(id, ".") == 0)
    return strdup("%2E");
  if (strcmp(id, "..") == 0)
    return strdup("%2E%2E");
  return http_client_escape(id);
}

static char *lower_key(const char *a, const char *b, const char *c, const char *d) {
  char *key =
      d ? text_format("%s/%s/%s/%s", a, b, c, d) : text_format("%s/%s/%s", a, b, c);
  for (char *p = key; p && *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return key;
}

static void trim_trailing_slashes(char *url) {
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/')
    url[--n] = '\0';
}

static int send_request(struct call *call, const char *method, const char *url,
                        const char *body, bool with_token, struct http_response *out,
                        struct error_info *err) {
  struct http_header headers[3] = {{"Accept", "application/json"}};
  size_t count = 1;
  if (with_token)
    headers[count++] = (struct http_header){"Authorization", call->auth};
  if (body)
    headers[count++] = (struct http_header){"Content-Type", "application/json"};
  struct http_request request = {.method = method,
                                 .url = url,
                                 .headers = headers,
                                 .header_count = count,
                                 .body = body,
                                 .body_len = body ? strlen(body) : 0,
                                 .deadline_ms = call->deadline_ms};
  memset(out, 0, sizeof *out);
  struct aml_client *c = call->client;
  if (c->transport)
    return c->transport(c->transport_ctx, &request, out, err);
  return http_client_send_retry(&request, out, err);
}

/* Translates a transport failure: what may pass stays transient, anything else
 * (a URL the transport refused, ...) is permanent with its sentence. */
static int transport_failure(int result, const char *what, struct error_info *err) {
  if (result == RESULT_TIMEOUT || result == RESULT_NOMEM || result == RESULT_TRANSIENT)
    return result;
  if (result == RESULT_IO)
    return RESULT_TRANSIENT;
  return error_set(err, RESULT_PERMANENT, "", "%s request refused: %s", what,
                   err && err->message[0] ? err->message : result_str(result));
}

/* The service's error code ("UserError", "AuthorizationFailed"), for logs. */
static void service_code(const struct http_response *response, char *buf, size_t size) {
  buf[0] = '\0';
  json_t *doc = response->body ? jsonx_parse(response->body, response->body_len,
                                             JSONX_DEFAULT_MAX_DEPTH, NULL, NULL)
                               : NULL;
  const char *code = NULL, *message = NULL;
  if (doc && run_details_error(doc, &code, &message) && code)
    snprintf(buf, size, "%s", code);
  json_decref(doc);
}

/* RESULT_OK for 2xx; RESULT_TRANSIENT for 408, 429, 5xx (the retries are spent);
 * RESULT_PERMANENT with the enrichment reason in err otherwise. */
static int judge(const struct http_response *response, const char *what,
                 struct error_info *err) {
  long status = response->status;
  char code[64];
  if (status >= 200 && status < 300)
    return RESULT_OK;
  service_code(response, code, sizeof code);
  log_warn("event=aml_request_failed what=\"%s\" status=%ld code=%s", what, status,
           code[0] ? code : "-");
  if (status == 408 || status == 429 || status >= 500)
    return error_set(err, RESULT_TRANSIENT, "", "%s: HTTP %ld%s%s", what, status,
                     code[0] ? " " : "", code);
  if (status == 404)
    return error_set(err, RESULT_PERMANENT, "", "%s not found (404)", what);
  if (status == 403)
    return error_set(err, RESULT_PERMANENT, "", REASON_FORBIDDEN);
  if (status == 401)
    return error_set(err, RESULT_DENIED, "",
                     "credential refused (401) reading the %s: check that the identity's "
                     "token is for Azure Resource Manager and its tenant owns the "
                     "workspace",
                     what);
  return error_set(err, RESULT_PERMANENT, "", "%s refused (HTTP %ld%s%s)", what, status,
                   code[0] ? " " : "", code);
}

/* Sends and judges; on RESULT_OK *out_doc is the parsed JSON (new reference):
 * only the members `select` names when it is not NULL. */
static int fetch_json(struct call *call, const char *method, const char *url,
                      const char *body, bool with_token, const char *what,
                      const struct jsonx_select *select, json_t **out_doc,
                      struct error_info *err) {
  struct http_response response;
  *out_doc = NULL;
  int result = send_request(call, method, url, body, with_token, &response, err);
  if (result != RESULT_OK) {
    result = transport_failure(result, what, err);
    goto done;
  }
  if ((result = judge(&response, what, err)) != RESULT_OK)
    goto done;
  *out_doc = jsonx_parse_select(response.body ? response.body : "", response.body_len,
                                JSONX_DEFAULT_MAX_DEPTH, select, NULL, NULL);
  if (!json_is_object(*out_doc)) {
    json_decref(*out_doc);
    *out_doc = NULL;
    result =
        error_set(err, RESULT_TRANSIENT, "", "%s: the answer is not a JSON object", what);
  }
done:
  http_response_cleanup(&response);
  return result;
}

/* ARM workspace -> discoveryUrl -> discovery document -> api (malloc'd). */
static int discover(struct call *call, char **out_api, struct error_info *err) {
  struct aml_client *c = call->client;
  json_t *workspace = NULL, *discovery = NULL;
  char *url = text_format("%s/subscriptions/%s/resourceGroups/%s/" WORKSPACE_PROVIDER
                          "/%s?api-version=" ARM_API_VERSION,
                          c->arm, call->sub, call->rg, call->ws);
  int result = RESULT_NOMEM;
  *out_api = NULL;
  if (!url)
    goto done;
  atomic_fetch_add(&c->discovery_requests, 1);
  result = fetch_json(call, "GET", url, NULL, true, "workspace", NULL, &workspace, err);
  if (result != RESULT_OK)
    goto done;
  const char *discovery_url =
      jsonx_string_ci(jsonx_get_ci(workspace, "properties"), "discoveryUrl");
  if (!discovery_url || !*discovery_url) {
    result = error_set(err, RESULT_PERMANENT, "", "workspace has no discoveryUrl");
    goto done;
  }
  if (!aml_client_url_trusted(discovery_url)) {
    result =
        error_set(err, RESULT_PERMANENT, "", "workspace discoveryUrl refused: not https");
    goto done;
  }
  atomic_fetch_add(&c->discovery_requests, 1);
  result = fetch_json(call, "GET", discovery_url, NULL, false, "discovery document", NULL,
                      &discovery, err);
  if (result != RESULT_OK)
    goto done;
  const char *api = jsonx_string_ci(discovery, "api");
  if (!api || !*api) {
    result = error_set(err, RESULT_PERMANENT, "", "discovery document has no api URL");
    goto done;
  }
  if (!aml_client_url_trusted(api)) {
    result =
        error_set(err, RESULT_PERMANENT, "", "discovered api URL refused: not https");
    goto done;
  }
  if (!(*out_api = strdup(api))) {
    result = RESULT_NOMEM;
    goto done;
  }
  trim_trailing_slashes(*out_api);
  log_info("event=aml_workspace_discovered workspace=%s api=%s", call->ev->workspace,
           *out_api);
done:
  json_decref(workspace);
  json_decref(discovery);
  free(url);
  return result;
}

static int workspace_api(struct call *call, char **out_api, struct error_info *err) {
  struct aml_client *c = call->client;
  const struct aml_event *ev = call->ev;
  char *key = lower_key(ev->subscription_id, ev->resource_group, ev->workspace, NULL);
  uint64_t ticket;
  if (!key)
    return RESULT_NOMEM;
  int result =
      lookup_cache_begin(&c->workspaces, key, call->deadline_ms, out_api, &ticket, err);
  if (result == RESULT_OK && *out_api) {
    atomic_fetch_add(&c->discovery_cache_hits, 1);
  } else if (result == RESULT_OK) {
    struct error_info local = {0};
    result = discover(call, out_api, &local);
    lookup_cache_end(&c->workspaces, key, ticket, *out_api, result, &local);
    if (err)
      *err = local;
  }
  free(key);
  return result;
}

/* The history prefix for this workspace: {api}/history/v1.0/subscriptions/... */
static char *history_url(struct call *call, const char *api, const char *family,
                         const char *tail) {
  return text_format("%s/%s/subscriptions/%s/resourceGroups/%s/" WORKSPACE_PROVIDER
                     "/%s%s",
                     api, family, call->sub, call->rg, call->ws, tail);
}

/* GET the run's RunDetails (details=true) or Run document. */
static int get_run(struct call *call, const char *api, const char *experiment_id,
                   const char *run_id, bool details, const char *what, json_t **out_doc,
                   struct error_info *err) {
  char *run = segment(run_id), *exp = experiment_id ? segment(experiment_id) : NULL;
  char *tail = NULL, *url = NULL;
  int result = RESULT_NOMEM;
  if (!run || (experiment_id && !exp))
    goto done;
  tail = exp ? text_format("/experimentids/%s/runs/%s%s", exp, run,
                           details ? "/details" : "")
             : text_format("/runs/%s%s", run, details ? "/details" : "");
  if (!tail || !(url = history_url(call, api, "history/v1.0", tail)))
    goto done;
  atomic_fetch_add(&call->client->run_requests, 1);
  result =
      fetch_json(call, "GET", url, NULL, true, what, run_details_select, out_doc, err);
done:
  free(run);
  free(exp);
  free(tail);
  free(url);
  return result;
}

/* The parts of a parent Run that steps borrow (run_details_apply_parent). */
static char *trim_parent(const json_t *doc) {
  static const char *const keys[] = {"experimentId", "target", "compute", "properties"};
  json_t *trimmed = json_object();
  char *text = NULL;
  if (!trimmed)
    return NULL;
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    json_t *v = jsonx_get_ci(doc, keys[i]);
    if (v && json_object_set(trimmed, keys[i], v) != 0)
      goto done;
  }
  text = jsonx_dump(trimmed);
done:
  json_decref(trimmed);
  return text;
}

/* Fills what a step lacks from its pipeline run (cached). Never fails the event. */
static void apply_parent(struct call *call, const char *api, struct record *rec) {
  struct aml_client *c = call->client;
  const char *parent_id = record_string(rec, REC_PIPELINE_RUN_ID);
  const char *run_id = record_string(rec, REC_RUN_ID);
  if (rec->run_kind != RUN_KIND_STEP || !parent_id || !run_id ||
      strcasecmp(parent_id, run_id) == 0)
    return;
  struct error_info err = {0};
  char *key = lower_key(call->ev->subscription_id, call->ev->resource_group,
                        call->ev->workspace, parent_id);
  char *value = NULL;
  json_t *doc = NULL;
  uint64_t ticket;
  int result =
      key ? lookup_cache_begin(&c->parents, key, call->deadline_ms, &value, &ticket, &err)
          : RESULT_NOMEM;
  if (result == RESULT_OK && value) {
    atomic_fetch_add(&c->parent_cache_hits, 1);
  } else if (result == RESULT_OK) {
    atomic_fetch_add(&c->parent_lookups, 1);
    result = get_run(call, api, NULL, parent_id, false, "parent run", &doc, &err);
    if (result == RESULT_OK && !(value = trim_parent(doc)))
      result = RESULT_NOMEM;
    lookup_cache_end(&c->parents, key, ticket, value, result, &err);
  }
  if (result == RESULT_OK) {
    json_t *parent =
        jsonx_parse(value, strlen(value), JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
    if (run_details_apply_parent(rec, parent) != RESULT_OK)
      log_warn("event=aml_parent_fields_lost run_id=%s reason=\"out of memory\"", run_id);
    json_decref(parent);
  } else {
    log_warn("event=aml_parent_lookup_failed run_id=%s parent_run_id=%s reason=\"%s\"",
             run_id, parent_id, err.message[0] ? err.message : result_str(result));
  }
  json_decref(doc);
  free(value);
  free(key);
}

/* True when `a` and `b` have the same scheme and host (and port). */
static bool same_origin(const char *a, const char *b) {
  const char *ha = strstr(a, "://"), *hb = strstr(b, "://");
  if (!ha || !hb)
    return false;
  size_t na = (size_t)(ha + 3 - a) + strcspn(ha + 3, "/?#");
  size_t nb = (size_t)(hb + 3 - b) + strcspn(hb + 3, "/?#");
  return na == nb && strncasecmp(a, b, na) == 0;
}

/* POSTs `body` to `url`, then each following page: the service's
 * continuationToken sent back in the body, as the AML SDK does, or else its
 * nextLink (same body) when that URL is on the same host (the bearer token goes
 * nowhere else). At most AML_CLIENT_MAX_PAGES pages; every page is appended to
 * `pages`. Stops at the first failure, whose result it returns; pages read
 * before stay in `pages`. */
static int fetch_pages(struct call *call, const char *url, json_t *body, const char *what,
                       json_t *pages, struct error_info *err) {
  struct aml_client *c = call->client;
  char *page_url = strdup(url);
  int result = RESULT_NOMEM;
  for (int page = 0; page_url && page < AML_CLIENT_MAX_PAGES; page++) {
    char *text = jsonx_dump(body);
    json_t *doc = NULL;
    if (!text)
      goto done;
    atomic_fetch_add(&c->metric_requests, 1);
    result = fetch_json(call, "POST", page_url, text, true, what, NULL, &doc, err);
    free(text);
    if (result != RESULT_OK)
      goto done;
    result = RESULT_NOMEM;
    if (json_array_append_new(pages, doc) != 0)
      goto done;
    const char *token = run_details_continuation(doc), *link = run_details_next_link(doc);
    if (token) {
      if (json_object_set_new(body, "continuationToken", json_string(token)) != 0)
        goto done;
    } else if (link && same_origin(link, url) && aml_client_url_trusted(link)) {
      free(page_url);
      page_url = strdup(link);
    } else {
      if (link)
        log_warn("event=aml_next_link_ignored what=\"%s\" reason=\"not on the API host\"",
                 what);
      result = RESULT_OK;
      goto done;
    }
  }
  if (page_url)
    log_info("event=aml_pages_bounded what=\"%s\" pages=%d", what, AML_CLIENT_MAX_PAGES);
  result = page_url ? RESULT_OK : RESULT_NOMEM;
done:
  free(page_url);
  return result;
}

/* The values of every page of one metric, in order, as one `full` answer. */
static json_t *all_values(const json_t *pages) {
  json_t *values = json_array();
  size_t i;
  const json_t *page;
  json_array_foreach(pages, i, page) {
    json_t *v = jsonx_get_ci(page, "value");
    if (json_is_array(v) && json_array_extend(values, v) != 0) {
      json_decref(values);
      return NULL;
    }
  }
  return json_pack("{s:o}", "value", values);
}

/* Last value of each scalar metric of a completed run, every page of the
 * metric list and of each metric's values read. A metric in a namespace is
 * asked for with it and recorded as "<namespace>/<name>". Never fails the
 * event. */
static void add_metrics(struct call *call, const char *api, struct record *rec) {
  const char *run_id = record_string(rec, REC_RUN_ID);
  struct run_metric_key keys[RECORD_MAX_METRICS];
  struct error_info err = {0};
  json_t *lists = json_array(), *body = json_object();
  char *run = segment(run_id), *list_tail = NULL, *list_url = NULL, *full_tail = NULL,
       *full_url = NULL;
  int result = RESULT_NOMEM;
  size_t count = 0, added = 0;

  /* Metrics are extras: they may use half of the time left, not the export's. */
  struct call sub = *call;
  int64_t now = time_mono_ms();
  if (call->deadline_ms > now)
    sub.deadline_ms = now + (call->deadline_ms - now) / 2;
  if (!lists || !body || !run || !(list_tail = text_format("/runs/%s/list", run)) ||
      !(list_url = history_url(call, api, "metric/v2.0", list_tail)) ||
      !(full_tail = text_format("/runs/%s/full", run)) ||
      !(full_url = history_url(call, api, "metric/v2.0", full_tail)))
    goto done;
  result = fetch_pages(&sub, list_url, body, "metrics list", lists, &err);
  size_t room = RECORD_MAX_METRICS - rec->metric_count, i;
  const json_t *page;
  json_array_foreach(lists, i, page) count =
      run_details_metric_keys(page, keys, count, room);
  if (result != RESULT_OK && (count == 0 || result != RESULT_PERMANENT))
    goto done; /* nothing listed, or the service is failing */

  for (i = 0; i < count; i++) {
    json_t *request = json_pack("{s:s}", "metricName", keys[i].name);
    json_t *pages = json_array(), *full = NULL;
    char name[512];
    if (!request || !pages ||
        (keys[i].ns[0] &&
         json_object_set_new(request, "metricNamespace", json_string(keys[i].ns)) != 0)) {
      json_decref(request);
      json_decref(pages);
      result = RESULT_NOMEM;
      goto done;
    }
    snprintf(name, sizeof name, "%s%s%s", keys[i].ns, keys[i].ns[0] ? "/" : "",
             keys[i].name);
    result = fetch_pages(&sub, full_url, request, "metric values", pages, &err);
    double value;
    if (json_array_size(pages) > 0 && (full = all_values(pages)) &&
        run_details_last_metric(full, keys[i].name, &value) &&
        record_add_metric(rec, name, value) == RESULT_OK)
      added++;
    json_decref(full);
    json_decref(pages);
    json_decref(request);
    if (result != RESULT_OK && result != RESULT_PERMANENT)
      goto done; /* out of time or the service is failing: stop asking */
  }
  result = RESULT_OK;
done:
  if (result != RESULT_OK)
    log_warn("event=aml_metrics_failed run_id=%s added=%zu reason=\"%s\"",
             run_id ? run_id : "-", added,
             err.message[0] ? err.message : result_str(result));
  json_decref(lists);
  json_decref(body);
  free(run);
  free(list_tail);
  free(list_url);
  free(full_tail);
  free(full_url);
}

/* A compute_fetch_fn over the call's token and transport. */
static int cost_fetch(void *ctx, const char *url, const char *what, json_t **out_doc,
                      struct error_info *err) {
  return fetch_json(ctx, "GET", url, NULL, true, what, NULL, out_doc, err);
}

/* The cost estimate of a finished run (run_cost.h). Never fails the event: a
 * cost that cannot be had is the record's cost_unknown_reason. */
static int add_cost(struct call *call, const char *api, const json_t *run,
                    struct record *rec) {
  struct aml_client *c = call->client;
  const char *status = record_string(rec, REC_STATUS);
  if (!c->prices || rec->run_kind == RUN_KIND_NONE || !status ||
      !run_status_is_terminal(status))
    return RESULT_OK;
  /* Like metrics, an extra: at most half the time left, and never long. */
  struct call sub = *call;
  int64_t now = time_mono_ms(), left = call->deadline_ms - now;
  sub.deadline_ms =
      now + (left / 2 < AML_CLIENT_COST_MAX_MS ? left / 2 : AML_CLIENT_COST_MAX_MS);
  char *computes = text_format("%s/subscriptions/%s/resourceGroups/%s/" WORKSPACE_PROVIDER
                               "/%s/computes/",
                               c->arm, call->sub, call->rg, call->ws);
  char *key = lower_key(call->ev->subscription_id, call->ev->resource_group,
                        call->ev->workspace, "");
  char *runs = history_url(call, api, "history/v1.0", "/runs/");
  int r = RESULT_NOMEM;
  if (computes && key && runs) {
    struct run_cost_env env = {.prices = c->prices,
                               .computes = &c->computes,
                               .fetch = cost_fetch,
                               .fetch_ctx = &sub,
                               .compute_url_prefix = computes,
                               .compute_key_prefix = key,
                               .runs_url_prefix = runs,
                               .deadline_ms = sub.deadline_ms,
                               .step_list_requests = &c->step_list_requests,
                               .pipeline_sums = &c->pipeline_sums};
    r = rec->run_kind == RUN_KIND_PIPELINE
            ? run_cost_of_pipeline(&env, record_string(rec, REC_RUN_ID), rec)
            : run_cost_of_run(&env, run, rec);
  }
  const char *why = record_string(rec, REC_COST_UNKNOWN_REASON);
  if (why)
    log_info("event=run_cost_unknown run_id=%s reason=\"%s\"", call->ev->run_id, why);
  free(computes);
  free(key);
  free(runs);
  return r;
}

static int get_token(struct call *call, struct error_info *err) {
  struct aml_client *c = call->client;
  char *token = NULL;
  int result;
  if (c->token_fn)
    result = c->token_fn(c->token_ctx, c->scope, call->deadline_ms, &token, err);
  else if (c->cred)
    result = credential_get_token(c->cred, c->scope, call->deadline_ms, &token, err);
  else
    result = error_set(err, RESULT_DENIED, "", "no Azure credential configured");
  if (result == RESULT_OK && !(call->auth = text_format("Bearer %s", token)))
    result = RESULT_NOMEM;
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  if (result == RESULT_OK || result == RESULT_NOMEM || result == RESULT_TIMEOUT ||
      result == RESULT_TRANSIENT)
    return result;
  if (result == RESULT_IO) /* a federated token file being rotated */
    return RESULT_TRANSIENT;
  /* Refused (or unusable): the invocation fails, so every event is delivered again
   * once the credential is fixed (Event Grid keeps trying for 24 hours). */
  char sentence[sizeof err->message];
  snprintf(sentence, sizeof sentence, "%s", err && err->message[0] ? err->message : "");
  return error_set(err, RESULT_DENIED, "", "credential refused: %s",
                   sentence[0] ? sentence : result_str(result));
}

static void call_cleanup(struct call *call) {
  free(call->sub);
  free(call->rg);
  free(call->ws);
  if (call->auth) {
    memset(call->auth, 0, strlen(call->auth));
    free(call->auth);
  }
}

static int enrich(struct enricher *self, const struct aml_event *ev, struct record *rec,
                  int64_t deadline_ms, struct error_info *err) {
  struct aml_client *c = (struct aml_client *)self;
  struct call call = {.client = c, .ev = ev, .deadline_ms = deadline_ms};
  struct error_info local = {0};
  char *api = NULL;
  json_t *details = NULL, *run = NULL;
  int result;

  if (ev->run_kind == RUN_KIND_NONE || !ev->run_id || !*ev->run_id)
    return record_set_string(rec, REC_ENRICHMENT, "not applicable");
  atomic_fetch_add(&c->enrich_calls, 1);
  if (!ev->subscription_id || !ev->resource_group || !ev->workspace) {
    result = error_set(&local, RESULT_PERMANENT, "", "workspace unknown");
    goto done;
  }
  result = RESULT_NOMEM;
  if (!(call.sub = segment(ev->subscription_id)) ||
      !(call.rg = segment(ev->resource_group)) || !(call.ws = segment(ev->workspace)))
    goto done;
  if ((result = get_token(&call, &local)) != RESULT_OK)
    goto done;
  if ((result = workspace_api(&call, &api, &local)) != RESULT_OK)
    goto done;

  /* The Run carries every field the record maps, display name included (it is
   * the RunDetails model plus createdUtc, displayName, runType, compute, ...),
   * so one request is the rule. RunDetails is read only when the Run came
   * without a runDefinition, where the docker image and the script live. */
  const char *exp = ev->experiment_id && *ev->experiment_id ? ev->experiment_id : NULL;
  result = get_run(&call, api, exp, ev->run_id, false, "run", &run, &local);
  if (result != RESULT_OK)
    goto done;
  if ((result = run_details_apply(rec, run)) != RESULT_OK)
    goto done;
  if (!json_is_object(jsonx_get_ci(run, "runDefinition"))) {
    struct error_info details_err = {0};
    result =
        get_run(&call, api, exp, ev->run_id, true, "run details", &details, &details_err);
    if (result == RESULT_PERMANENT) {
      log_warn("event=aml_run_details_unread run_id=%s reason=\"%s\"", ev->run_id,
               details_err.message);
    } else if (result != RESULT_OK) {
      local = details_err;
      goto done;
    } else if ((result = run_details_apply(rec, details)) != RESULT_OK) {
      goto done;
    }
  }

  apply_parent(&call, api, rec);
  const char *status = record_string(rec, REC_STATUS);
  if (status && strcmp(status, "Completed") == 0)
    add_metrics(&call, api, rec);
  if ((result = add_cost(&call, api, run, rec)) != RESULT_OK)
    goto done;

done:
  if (result == RESULT_OK) {
    result = record_set_string(rec, REC_ENRICHMENT, "ok");
    log_info("event=aml_run_enriched run_id=%s status=%s metrics=%zu", ev->run_id,
             record_string(rec, REC_STATUS) ? record_string(rec, REC_STATUS) : "-",
             rec->metric_count);
  } else if (result == RESULT_PERMANENT) {
    atomic_fetch_add(&c->permanent_failures, 1);
    log_warn("event=aml_run_not_enriched run_id=%s reason=\"%s\"", ev->run_id,
             local.message);
    result = record_set_string(rec, REC_ENRICHMENT, local.message);
  } else {
    atomic_fetch_add(&c->transient_failures, 1);
    if (!local.message[0])
      error_set(&local, result, "", "reading run details failed: %s", result_str(result));
    log_warn("event=aml_run_enrich_failed run_id=%s result=%s reason=\"%s\"", ev->run_id,
             result_str(result), local.message);
    if (err)
      *err = local;
  }
  json_decref(details);
  json_decref(run);
  free(api);
  call_cleanup(&call);
  return result;
}

static void client_free(struct enricher *self) {
  struct aml_client *c = (struct aml_client *)self;
  if (!c)
    return;
  lookup_cache_cleanup(&c->workspaces);
  lookup_cache_cleanup(&c->parents);
  compute_reader_cleanup(&c->computes);
  lookup_cache_cleanup(&c->pipeline_sums);
  free(c->arm);
  free(c->scope);
  free(c);
}

/* The token scope for an ARM endpoint: a cloud's own ARM host
 * ("https://management.<cloud suffix>") is its own audience; any other endpoint
 * (a proxy, a local stand-in) is taken to front public ARM, whose audience is
 * asked for. */
static char *arm_scope(const char *arm) {
  const char *host = strstr(arm, "://");
  host = host ? host + 3 : arm;
  if (strncasecmp(host, "management.", 11) != 0)
    return strdup(CREDENTIAL_SCOPE_ARM_DEFAULT);
  size_t host_len = strcspn(host, "/:");
  return text_format("%.*s/.default", (int)(host - arm + host_len), arm);
}

int aml_client_new(struct credential *cred, settings_getenv_fn getenv_fn, void *ctx,
                   struct enricher **out, struct error_info *err) {
  static const char setting[] = "AZURE_RESOURCE_MANAGER_ENDPOINT";
  struct aml_client *c = calloc(1, sizeof *c);
  int result = RESULT_NOMEM;
  *out = NULL;
  if (!c)
    goto fail;
  c->base = (struct enricher){.name = "aml", .enrich = enrich, .free = client_free};
  c->cred = cred;

  const char *arm = settings_get(getenv_fn, ctx, setting);
  while (arm && isspace((unsigned char)*arm))
    arm++;
  if (!arm || !*arm)
    arm = "https://management.azure.com";
  if (!(c->arm = strdup(arm)))
    goto fail;
  for (size_t n = strlen(c->arm); n > 0 && isspace((unsigned char)c->arm[n - 1]); n--)
    c->arm[n - 1] = '\0';
  trim_trailing_slashes(c->arm);
  if (!aml_client_url_trusted(c->arm) || strchr(c->arm, '?')) {
    result = error_set(err, RESULT_INVALID, setting,
                       "%s must be an https URL (http only to a loopback host)", setting);
    goto fail;
  }
  if (!(c->scope = arm_scope(c->arm)))
    goto fail;
  log_info("event=aml_client_ready arm=%s scope=%s", c->arm, c->scope);
  if (lookup_cache_init(&c->workspaces, AML_CLIENT_WORKSPACE_CACHE, 0, 0) != RESULT_OK ||
      lookup_cache_init(&c->parents, AML_CLIENT_PARENT_CACHE, 0, 0) != RESULT_OK ||
      compute_reader_init(&c->computes) != RESULT_OK ||
      lookup_cache_init(&c->pipeline_sums, RUN_COST_PIPELINE_CACHE,
                        RUN_COST_PIPELINE_TTL_MS, 0) != RESULT_OK)
    goto fail;
  *out = &c->base;
  return RESULT_OK;
fail:
  if (result == RESULT_NOMEM)
    error_set(err, RESULT_NOMEM, "", "out of memory creating the AML client");
  client_free(c ? &c->base : NULL);
  return result;
}

int aml_client_check(struct enricher *self, const char *subscription_id,
                     const char *resource_group, const char *workspace,
                     int64_t deadline_ms, aml_check_report_fn report, void *ctx) {
  struct aml_client *c = as_client(self);
  if (!c) {
    report(ctx, "run history", RESULT_INVALID, "no AML client",
           "set an Azure credential (README, Configuration)");
    return RESULT_INVALID;
  }
  /* A run id that cannot exist: a 404 proves the identity may read run history. */
  char run_id[37];
  if (crypto_uuid4(run_id) != RESULT_OK) {
    report(ctx, "run history", RESULT_IO, "no random bytes for a run id", "");
    return RESULT_IO;
  }
  struct aml_event ev = {.subscription_id = (char *)subscription_id,
                         .resource_group = (char *)resource_group,
                         .workspace = (char *)workspace,
                         .run_id = run_id};
  struct call call = {.client = c, .ev = &ev, .deadline_ms = deadline_ms};
  struct error_info why = {0};
  char *api = NULL;
  json_t *doc = NULL;
  int result = RESULT_NOMEM;
  if (!(call.sub = segment(subscription_id)) || !(call.rg = segment(resource_group)) ||
      !(call.ws = segment(workspace)))
    goto done;

  result = get_token(&call, &why);
  report(
      ctx, "Entra ID token for Azure Resource Manager", result, why.message,
      "check the credential settings (AZURE_TENANT_ID, AZURE_CLIENT_ID, and the secret, "
      "certificate, federated token file or managed identity)");
  if (result != RESULT_OK)
    goto done;

  result = workspace_api(&call, &api, &why);
  report(
      ctx, "workspace discovery through ARM", result, why.message,
      "check SUBSCRIPTION_ID / AML_RESOURCE_GROUP / AML_WORKSPACE_NAME (or "
      "AML_WORKSPACES), and that the identity has a role on the workspace that can read "
      "it (e.g. Reader or AzureML Data Scientist)");
  if (result != RESULT_OK)
    goto done;

  result = get_run(&call, api, NULL, run_id, true, "run", &doc, &why);
  if (result == RESULT_PERMANENT && strstr(why.message, "(404)"))
    result = RESULT_OK; /* the run does not exist, and we were allowed to ask */
  report(ctx, "run history read", result, why.message,
         "the identity needs read access to runs, e.g. the AzureML Data Scientist role "
         "(Microsoft.MachineLearningServices/workspaces/experiments/runs/read)");
done:
  json_decref(doc);
  free(api);
  call_cleanup(&call);
  return result;
}

int aml_client_get_run(struct enricher *self, const char *subscription_id,
                       const char *resource_group, const char *workspace,
                       const char *experiment_id, const char *run_id, int64_t deadline_ms,
                       json_t **out_run, struct error_info *err) {
  struct aml_client *c = (struct aml_client *)self;
  struct aml_event ev = {.subscription_id = (char *)subscription_id,
                         .resource_group = (char *)resource_group,
                         .workspace = (char *)workspace,
                         .run_id = (char *)run_id};
  struct call call = {.client = c, .ev = &ev, .deadline_ms = deadline_ms};
  struct error_info local = {0};
  char *api = NULL;
  int result = RESULT_NOMEM;
  *out_run = NULL;
  if (!(call.sub = segment(subscription_id)) || !(call.rg = segment(resource_group)) ||
      !(call.ws = segment(workspace)))
    goto done;
  if ((result = get_token(&call, &local)) != RESULT_OK ||
      (result = workspace_api(&call, &api, &local)) != RESULT_OK)
    goto done;
  const char *exp = experiment_id && *experiment_id ? experiment_id : NULL;
  result = get_run(&call, api, exp, run_id, false, "run", out_run, &local);
  if (result == RESULT_PERMANENT && strstr(local.message, "(404)"))
    result = RESULT_NOTFOUND;
done:
  if (result != RESULT_OK && err)
    *err = local;
  if (result == RESULT_NOMEM && err && !err->message[0])
    error_set(err, result, "", "out of memory reading a run");
  free(api);
  call_cleanup(&call);
  return result;
}
