/* The App Insights exporter: group commit of envelopes into gzip'd POSTs to
 * {endpoint}/v2.1/track, answers judged per item; see appinsights.h.
 *
 * Flow: a caller turns its records into envelopes (telemetry.c), serialises
 * each into an `item` owned by the queue, and waits on `done` until its
 * `waiter` has no pending items or its deadline passes. The sender thread
 * takes the items that are ready (not backing off) once the group-commit
 * window closes or a size cap is reached, sends them as one POST outside the
 * lock, then settles each item: accepted / failed for good / dropped by the
 * daily cap (the waiter's pending count drops) or queued again with a delay.
 *
 * Invariants: a waiter lives while its caller waits or any of its items exists
 * (`refs`); an abandoned waiter's items are discarded instead of sent again.
 * Everything in `struct ai_exporter` below `lock` is guarded by it, except what
 * only the sender thread touches (rng). The body of a POST never exceeds
 * max_batch_bytes plus one item; no item exceeds 64 kB (ingestion's limit). */
#include "export/appinsights.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "export/appinsights_testing.h"
#include "export/connection_string.h"
#include "azure/credential.h"
#include "base/crypto.h"
#include "base/deadline.h"
#include "base/dedup.h"
#include "base/gzip.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/loopback.h"
#include "export/telemetry.h"
#include "base/timeutil.h"

#define MAX_ITEM_BYTES (64 * 1024)
#define MAX_REDIRECTS 10
#define MAX_RESPONSE (1024 * 1024)
#define TRACK_PATH "/v2.1/track"

struct waiter {
  int refs;            /* the caller (while waiting) + each of its items */
  size_t pending;      /* items not yet settled */
  int64_t deadline_ms; /* immutable */
  bool abandoned;      /* the caller gave up: discard its items */
  bool answered;       /* ingestion answered at least once for its items */
  char last_error[256];
  char **event_ids; /* remembered in the dedup set once every item is settled */
  size_t event_id_count;
};

struct item {
  struct item *next;
  struct waiter *w;
  char *json;
  size_t len;
  int attempts;
  int64_t not_before; /* time_mono_ms: when queued, or when a retry may go */
};

enum outcome { OUT_ACCEPTED, OUT_FAILED, OUT_DROPPED, OUT_RETRY };

struct ai_exporter {
  struct exporter base; /* first: the exporter interface */
  struct telemetry_options telemetry;
  struct credential *cred; /* NULL: instrumentation key only */
  struct dedup *dedup;     /* event ids whose telemetry was accepted */
  struct dedup *runs;      /* "run:<id>" of runs whose measurement was sent */
  struct appinsights_tuning tuning;
  http_transport_fn transport; /* http_client_send, or a test's (before any export) */
  void *transport_ctx;
  unsigned rng; /* sender thread only */
  pthread_t thread;
  bool started;

  pthread_mutex_t lock;
  pthread_cond_t work; /* the sender waits for items */
  pthread_cond_t done; /* callers wait for their items */
  bool stopping;
  struct item *head, **tail;
  char *track_url;
  char scope[CONNECTION_STRING_SCOPE_MAX]; /* Entra ID token scope (AADAudience) */
  struct appinsights_stats stats;
  /* Invocations in flight (the server's count), to end the batching window as
   * soon as every one of them is waiting here: no more items are coming. */
  unsigned (*in_flight)(void *ctx);
  void *in_flight_ctx;
  unsigned exporting; /* export calls waiting for their items */
};

/* What one POST (with its redirects) came to, for the items not settled. */
struct batch_result {
  bool answered;
  int64_t delay_ms;
  char message[256];
};

/* Under lock. */
static void waiter_unref(struct ai_exporter *ai, struct waiter *w) {
  if (--w->refs > 0)
    return;
  for (size_t i = 0; i < w->event_id_count; i++)
    free(w->event_ids[i]);
  free(w->event_ids);
  free(w);
}

static void item_free(struct ai_exporter *ai, struct item *it) {
  waiter_unref(ai, it->w);
  free(it->json);
  free(it);
}

/* Under lock: the item reached a final state. */
static void item_settle(struct ai_exporter *ai, struct item *it) {
  struct waiter *w = it->w;
  if (w->pending > 0 && --w->pending == 0) {
    for (size_t i = 0; i < w->event_id_count; i++)
      dedup_add(ai->dedup, w->event_ids[i]);
    pthread_cond_broadcast(&ai->done);
  }
  item_free(ai, it);
}

/* ---- URLs and redirects ---------------------------------------------------- */

/* The host of an absolute http(s) URL into buf (lower-cased); false otherwise. */
static bool url_host(const char *url, char *buf, size_t buf_size, bool *out_https) {
  const char *rest;
  if (strncasecmp(url, "https://", 8) == 0) {
    rest = url + 8;
    *out_https = true;
  } else if (strncasecmp(url, "http://", 7) == 0) {
    rest = url + 7;
    *out_https = false;
  } else {
    return false;
  }
  size_t n = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/?#");
  if (n == 0 || n >= buf_size)
    return false;
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)((rest[i] >= 'A' && rest[i] <= 'Z') ? rest[i] + 32 : rest[i]);
  buf[n] = '\0';
  return true;
}

/* The last two labels of a host name ("in.applicationinsights.azure.com" ->
 * "azure.com"); the whole host for IP addresses and single labels. */
static const char *host_domain(const char *host) {
  if (host[0] == '[' || strspn(host, "0123456789.") == strlen(host))
    return host;
  const char *last = strrchr(host, '.');
  if (!last)
    return host;
  const char *p = last;
  while (p > host && p[-1] != '.')
    p--;
  return p;
}

/* The absolute URL a Location header points to, malloc'd; NULL when unusable. */
static char *resolve_location(const char *base, const char *location) {
  if (strncasecmp(location, "https://", 8) == 0 ||
      strncasecmp(location, "http://", 7) == 0)
    return strdup(location);
  if (location[0] != '/' || location[1] == '/')
    return NULL;
  const char *host = strstr(base, "://");
  if (!host)
    return NULL;
  size_t prefix = (size_t)(host + 3 - base) + strcspn(host + 3, "/?#");
  size_t len = prefix + strlen(location) + 1;
  char *url = malloc(len);
  if (url)
    snprintf(url, len, "%.*s%s", (int)prefix, base, location);
  return url;
}

/* Why a redirect from `from` to `to` is refused, or NULL when it is fine. */
static const char *redirect_refusal(const char *from, const char *to, bool bearer) {
  char from_host[256], to_host[256];
  bool from_https, to_https;
  if (!url_host(to, to_host, sizeof to_host, &to_https))
    return "the Location is not an http(s) URL";
  if (!to_https && !loopback_host(to_host, strlen(to_host)))
    return "the Location is plain http off loopback";
  if (bearer && (!url_host(from, from_host, sizeof from_host, &from_https) ||
                 strcmp(host_domain(from_host), host_domain(to_host)) != 0))
    return "the Location is in another domain and the request carries a bearer token";
  if (bearer && from_https && !to_https)
    return "the Location is plain http and the request carries a bearer token";
  return NULL;
}

/* ---- one POST -------------------------------------------------------------- */

static bool item_status_retryable(long status) {
  return status == 408 || status == 429 || status == 439 || status == 500 ||
         status == 502 || status == 503 || status == 504;
}

/* Reads a TrackResponse's per-item errors into `out` (items not named are
 * accepted). False when the body is not a TrackResponse. */
static bool judge_items(const struct http_response *resp, size_t n, enum outcome *out,
                        struct item **items, size_t *out_failed) {
  json_t *doc = jsonx_parse(resp->body, resp->body_len, 8, NULL, NULL);
  json_t *errors = jsonx_get_ci(doc, "errors");
  if (!json_is_array(errors)) {
    json_decref(doc);
    return false;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = OUT_ACCEPTED;
  size_t logged = 0, index;
  json_t *e;
  json_array_foreach(errors, index, e) {
    /* Both are integers in the swagger; an index that is not one names no
     * item, and a status that is not an HTTP status is taken as a 500. */
    json_t *jindex = jsonx_get_ci(e, "index"), *jstatus = jsonx_get_ci(e, "statusCode");
    if (!json_is_integer(jindex))
      continue;
    json_int_t at = json_integer_value(jindex);
    json_int_t code = json_is_integer(jstatus) ? json_integer_value(jstatus) : 500;
    long status = code >= 100 && code <= 599 ? (long)code : 500;
    if (at < 0 || (uint64_t)at >= n)
      continue;
    size_t i = (size_t)at;
    if (item_status_retryable(status)) {
      out[i] = OUT_RETRY;
      continue;
    }
    out[i] = OUT_FAILED;
    (*out_failed)++;
    if (logged++ < 5) {
      const char *message = jsonx_string_ci(e, "message");
      log_warn("event=appinsights_item_refused status=%ld index=%zu size=%zu "
               "message=\"%.200s\"",
               status, i, items[i]->len, message ? message : "");
    }
  }
  json_decref(doc);
  return true;
}

static char *join_body(struct item **items, size_t n, size_t *out_len) {
  size_t len = 2 + n;
  for (size_t i = 0; i < n; i++)
    len += items[i]->len;
  char *body = malloc(len + 1), *p = body;
  if (!body)
    return NULL;
  *p++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (i)
      *p++ = ',';
    memcpy(p, items[i]->json, items[i]->len);
    p += items[i]->len;
  }
  *p++ = ']';
  *p = '\0';
  *out_len = (size_t)(p - body);
  return body;
}

static void all(enum outcome *out, size_t n, enum outcome value) {
  for (size_t i = 0; i < n; i++)
    out[i] = value;
}

static bool any_retry(const enum outcome *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (out[i] == OUT_RETRY)
      return true;
  return false;
}

static int64_t backoff(struct ai_exporter *ai, int attempt,
                       const struct http_response *r) {
  return retry_delay_ms(&ai->tuning.retry, attempt > 16 ? 16 : attempt,
                        r ? r->retry_after_ms : NULL, r ? r->x_ms_retry_after_ms : NULL,
                        r ? r->retry_after : NULL, time_now_ms(),
                        (uint32_t)rand_r(&ai->rng));
}

/* Sends `items` as one POST, following redirects; fills one outcome per item and,
 * for OUT_RETRY items, `res`. Runs on the sender thread without the lock. */
static void send_batch(struct ai_exporter *ai, struct item **items, size_t n,
                       enum outcome *out, struct batch_result *res) {
  char *body = NULL, *url = NULL, *token = NULL, auth[8192];
  uint8_t *zbody = NULL;
  size_t body_len = 0, zlen = 0;
  struct http_response resp = {0};
  int64_t deadline = 0;
  int attempt = 0;
  for (size_t i = 0; i < n; i++) {
    if (items[i]->w->deadline_ms > deadline)
      deadline = items[i]->w->deadline_ms;
    if (items[i]->attempts > attempt)
      attempt = items[i]->attempts;
  }
  all(out, n, OUT_RETRY);
  memset(res, 0, sizeof *res);
  res->delay_ms = backoff(ai, attempt, NULL);

  pthread_mutex_lock(&ai->lock);
  url = strdup(ai->track_url);
  pthread_mutex_unlock(&ai->lock);
  body = join_body(items, n, &body_len);
  if (!url || !body) {
    snprintf(res->message, sizeof res->message, "out of memory building a request");
    goto done;
  }
  bool gzipped = gzip_compress(body, body_len, &zbody, &zlen) == RESULT_OK;

  for (int redirects = 0;; redirects++) {
    struct error_info err = {0};
    struct http_header headers[3] = {{"Content-Type", "application/json"}};
    size_t header_count = 1;
    if (gzipped)
      headers[header_count++] = (struct http_header){"Content-Encoding", "gzip"};
    if (ai->cred) {
      free(token);
      token = NULL;
      if (credential_get_token(ai->cred, ai->scope, deadline, &token, &err) !=
          RESULT_OK) {
        snprintf(res->message, sizeof res->message,
                 "no Entra ID token for ingestion (%s credential): %.180s",
                 credential_kind(ai->cred), err.message);
        log_error("event=appinsights_token_failed reason=\"%s\"", err.message);
        goto done;
      }
      snprintf(auth, sizeof auth, "Bearer %s", token);
      headers[header_count++] = (struct http_header){"Authorization", auth};
    }
    struct http_request req = {.method = "POST",
                               .url = url,
                               .headers = headers,
                               .header_count = header_count,
                               .body = gzipped ? (const void *)zbody : body,
                               .body_len = gzipped ? zlen : body_len,
                               .deadline_ms = deadline,
                               .max_response = MAX_RESPONSE};
    http_response_cleanup(&resp);
    memset(&resp, 0, sizeof resp);
    int r = ai->transport(ai->transport_ctx, &req, &resp, &err);
    pthread_mutex_lock(&ai->lock);
    ai->stats.posts++;
    ai->stats.items_sent += n;
    pthread_mutex_unlock(&ai->lock);
    if (r != RESULT_OK) {
      snprintf(res->message, sizeof res->message, "%.250s", err.message);
      log_warn("event=appinsights_send_failed items=%zu reason=\"%s\"", n, err.message);
      goto done;
    }
    long status = resp.status;
    res->answered = true;
    res->delay_ms = backoff(ai, attempt, &resp);
    snprintf(res->message, sizeof res->message, "ingestion answered %ld", status);
    size_t failed = 0;
    switch (status) {
      case 200:
        all(out, n, OUT_ACCEPTED);
        goto done;
      case 206:
      case 400:
        if (judge_items(&resp, n, out, items, &failed)) {
          if (status == 400 && failed == 0 && !any_retry(out, n)) {
            all(out, n, OUT_FAILED); /* a 400 naming no item refuses them all */
            failed = n;
          }
          if (status == 206 && failed == 0)
            break;
          log_warn("event=appinsights_partial status=%ld items=%zu refused=%zu", status,
                   n, failed);
        } else if (status == 400) {
          all(out, n, OUT_FAILED);
          log_warn("event=appinsights_batch_refused status=400 items=%zu body=\"%.200s\"",
                   n, resp.body ? resp.body : "");
        } else {
          log_warn("event=appinsights_partial status=206 reason=\"unreadable body\"");
        }
        goto done;
      case 307:
      case 308: {
        const char *why = "there is no Location header";
        char *next = resp.location ? resolve_location(url, resp.location) : NULL;
        if (resp.location && !next)
          why = "the Location is not a URL";
        else if (next)
          why = redirect_refusal(url, next, ai->cred != NULL);
        if (!why && redirects >= MAX_REDIRECTS)
          why = "more than 10 redirects";
        if (why) {
          free(next);
          snprintf(res->message, sizeof res->message, "redirect refused: %s", why);
          log_error("event=appinsights_redirect_refused status=%ld reason=\"%s\"", status,
                    why);
          goto done;
        }
        log_info("event=appinsights_redirect status=%ld location=%s", status, next);
        free(url);
        url = next;
        pthread_mutex_lock(&ai->lock);
        char *keep = strdup(url);
        if (keep) {
          free(ai->track_url);
          ai->track_url = keep;
        }
        ai->stats.redirects++;
        pthread_mutex_unlock(&ai->lock);
        continue;
      }
      case 402:
      case 439:
        all(out, n, OUT_DROPPED);
        log_error("event=appinsights_daily_cap status=%ld items_dropped=%zu "
                  "hint=\"the Application Insights daily cap or quota is reached; "
                  "telemetry is dropped until it resets\"",
                  status, n);
        goto done;
      case 401:
      case 403:
        snprintf(res->message, sizeof res->message,
                 "ingestion refused the request (%ld): %s", status,
                 ai->cred
                     ? "the identity needs the \"Monitoring Metrics Publisher\" role "
                       "on the Application Insights resource"
                     : "the resource may require Entra ID authentication "
                       "(set APPLICATIONINSIGHTS_AUTHENTICATION_STRING)");
        log_error("event=appinsights_denied status=%ld hint=\"%s\"", status,
                  res->message);
        goto done;
      default:
        log_warn("event=appinsights_retryable status=%ld items=%zu delay_ms=%lld", status,
                 n, (long long)res->delay_ms);
        goto done;
    }
    goto done;
  }
done:
  http_response_cleanup(&resp);
  free(token);
  free(url);
  free(body);
  free(zbody);
}

/* ---- the sender thread ----------------------------------------------------- */

/* Under lock: drops queued items of callers that gave up. */
static void prune(struct ai_exporter *ai) {
  struct item **link = &ai->head;
  while (*link) {
    struct item *it = *link;
    if (it->w->abandoned) {
      *link = it->next;
      item_free(ai, it);
    } else {
      link = &it->next;
    }
  }
  ai->tail = &ai->head;
  while (*ai->tail)
    ai->tail = &(*ai->tail)->next;
}

static void *sender_main(void *arg) {
  struct ai_exporter *ai = arg;
  size_t cap = ai->tuning.max_batch_items;
  struct item **batch = calloc(cap, sizeof *batch);
  enum outcome *outcomes = calloc(cap, sizeof *outcomes);
  pthread_mutex_lock(&ai->lock);
  while (!ai->stopping) {
    prune(ai);
    if (!ai->head) {
      pthread_cond_wait(&ai->work, &ai->lock);
      continue;
    }
    int64_t now = time_mono_ms(), next_ready = INT64_MAX, oldest = INT64_MAX;
    size_t ready = 0, bytes = 0;
    for (struct item *it = ai->head; it; it = it->next) {
      if (it->not_before <= now) {
        ready++;
        bytes += it->len + 1;
        if (it->not_before < oldest)
          oldest = it->not_before;
      } else if (it->not_before < next_ready) {
        next_ready = it->not_before;
      }
    }
    if (ready == 0) {
      (void)deadline_wait(&ai->work, &ai->lock, next_ready);
      continue;
    }
    /* The window runs from when the oldest ready item became ready, so items
     * that queued up during the previous POST go out at once; it ends early when
     * every invocation in flight is already waiting for its items. */
    int64_t window_end = oldest + ai->tuning.window_ms;
    bool all_here = ai->in_flight && ai->exporting >= ai->in_flight(ai->in_flight_ctx);
    if (now < window_end && !all_here && ready < cap &&
        bytes < ai->tuning.max_batch_bytes) {
      (void)deadline_wait(&ai->work, &ai->lock, window_end);
      continue;
    }
    if (!batch || !outcomes) { /* out of memory at start: fail the callers fast */
      prune(ai);
      for (struct item *it = ai->head; it; it = it->next)
        it->not_before = now + 100;
      (void)deadline_wait(&ai->work, &ai->lock, now + 100);
      continue;
    }
    size_t n = 0;
    bytes = 0;
    struct item **link = &ai->head;
    while (*link && n < cap) {
      struct item *it = *link;
      if (it->not_before > now ||
          (n > 0 && bytes + it->len > ai->tuning.max_batch_bytes)) {
        link = &it->next;
        continue;
      }
      *link = it->next;
      it->next = NULL;
      batch[n++] = it;
      bytes += it->len + 1;
    }
    ai->tail = &ai->head;
    while (*ai->tail)
      ai->tail = &(*ai->tail)->next;
    pthread_mutex_unlock(&ai->lock);

    struct batch_result res;
    send_batch(ai, batch, n, outcomes, &res);

    pthread_mutex_lock(&ai->lock);
    now = time_mono_ms();
    for (size_t i = 0; i < n; i++) {
      struct item *it = batch[i];
      switch (outcomes[i]) {
        case OUT_ACCEPTED:
          ai->stats.items_accepted++;
          item_settle(ai, it);
          break;
        case OUT_FAILED:
          ai->stats.items_failed++;
          item_settle(ai, it);
          break;
        case OUT_DROPPED:
          ai->stats.items_dropped++;
          item_settle(ai, it);
          break;
        case OUT_RETRY:
          it->w->answered |= res.answered;
          snprintf(it->w->last_error, sizeof it->w->last_error, "%s", res.message);
          if (it->w->abandoned || now + res.delay_ms >= it->w->deadline_ms) {
            /* No room for another attempt: let the caller fail now. */
            it->w->abandoned = true;
            pthread_cond_broadcast(&ai->done);
            item_free(ai, it);
            break;
          }
          ai->stats.items_retried++;
          it->attempts++;
          it->not_before = now + res.delay_ms;
          *ai->tail = it;
          ai->tail = &it->next;
          break;
      }
    }
  }
  pthread_mutex_unlock(&ai->lock);
  free(batch);
  free(outcomes);
  return NULL;
}

/* ---- the exporter interface ------------------------------------------------ */

static int ai_export(struct exporter *self, const struct record *const *records,
                     size_t count, int64_t deadline_ms, struct error_info *err) {
  struct ai_exporter *ai = (struct ai_exporter *)self;
  int result = RESULT_NOMEM;
  struct item *first = NULL, **tail = &first;
  size_t n = 0, duplicates = 0, oversize = 0, claim_count = 0;
  json_t *envs = json_array();
  struct waiter *w = calloc(1, sizeof *w);
  char **claims = calloc(count ? count : 1, sizeof *claims);
  if (!envs || !w || !claims ||
      (count && !(w->event_ids = calloc(count, sizeof *w->event_ids))))
    goto fail;
  w->refs = 1;
  w->deadline_ms = deadline_ms;
  if (time_mono_ms() >= deadline_ms) {
    result = error_set(err, RESULT_TIMEOUT, "", "the deadline passed before export");
    goto fail;
  }
  for (size_t r = 0; r < count; r++) {
    const struct record *rec = records[r];
    const char *event_id = record_string(rec, REC_EVENT_ID);
    if (event_id && !rec->rejected && dedup_contains(ai->dedup, event_id)) {
      duplicates++;
      log_info("event=appinsights_duplicate_skipped event_id=%s", event_id);
      continue;
    }
    /* A run is measured (metrics, request or dependency) by the first of its
     * terminal events only; the claim is given back if this export fails. */
    unsigned parts = TELEMETRY_EVENT;
    const char *run = telemetry_measured_run(rec);
    if (run) {
      size_t len = strlen(run) + 5;
      char *claim = malloc(len);
      if (!claim)
        goto fail;
      snprintf(claim, len, "run:%s", run);
      if (dedup_claim(ai->runs, claim)) {
        parts |= TELEMETRY_RUN;
        claims[claim_count++] = claim;
      } else {
        log_debug("event=appinsights_run_already_measured run_id=%s", run);
        free(claim);
      }
    }
    json_array_clear(envs);
    if (telemetry_envelopes(&ai->telemetry, rec, time_now_ms(), parts, envs) != RESULT_OK)
      goto fail;
    size_t index;
    json_t *env;
    json_array_foreach(envs, index, env) {
      char *text = jsonx_dump(env);
      if (!text)
        goto fail;
      size_t len = strlen(text);
      if (len > MAX_ITEM_BYTES) {
        log_warn("event=appinsights_item_too_large record=%s bytes=%zu", rec->name, len);
        oversize++;
        free(text);
        continue;
      }
      struct item *it = calloc(1, sizeof *it);
      if (!it) {
        free(text);
        goto fail;
      }
      *it = (struct item){.w = w, .json = text, .len = len, .not_before = time_mono_ms()};
      *tail = it;
      tail = &it->next;
      n++;
    }
    if (event_id && !rec->rejected &&
        !(w->event_ids[w->event_id_count++] = strdup(event_id)))
      goto fail;
  }

  pthread_mutex_lock(&ai->lock);
  ai->exporting++;
  ai->stats.duplicates_skipped += duplicates;
  ai->stats.items_failed += oversize;
  w->pending = n;
  w->refs += (int)n;
  if (n == 0) {
    for (size_t i = 0; i < w->event_id_count; i++)
      dedup_add(ai->dedup, w->event_ids[i]);
  } else {
    *ai->tail = first;
    ai->tail = tail;
    first = NULL;
    pthread_cond_signal(&ai->work);
  }
  while (w->pending > 0 && !w->abandoned && !ai->stopping && time_mono_ms() < deadline_ms)
    (void)deadline_wait(&ai->done, &ai->lock, deadline_ms);
  if (w->pending == 0) {
    result = RESULT_OK;
  } else {
    w->abandoned = true;
    pthread_cond_signal(&ai->work);
    result = error_set(err, w->answered ? RESULT_TRANSIENT : RESULT_TIMEOUT, "",
                       "Application Insights did not accept %zu of %zu telemetry items "
                       "in time: %s",
                       w->pending, n, w->last_error[0] ? w->last_error : "no answer yet");
    log_warn("event=appinsights_export_failed pending=%zu items=%zu reason=\"%s\"",
             w->pending, n, w->last_error);
  }
  ai->exporting--;
  waiter_unref(ai, w);
  pthread_mutex_unlock(&ai->lock);
  json_decref(envs);
  for (size_t i = 0; i < claim_count; i++) {
    if (result != RESULT_OK)
      dedup_remove(ai->runs, claims[i]);
    free(claims[i]);
  }
  free(claims);
  return result;

fail:
  if (result == RESULT_NOMEM)
    error_set(err, RESULT_NOMEM, "", "out of memory building telemetry");
  while (first) {
    struct item *next = first->next;
    free(first->json);
    free(first);
    first = next;
  }
  if (w) {
    for (size_t i = 0; i < w->event_id_count; i++)
      free(w->event_ids[i]);
    free(w->event_ids);
    free(w);
  }
  json_decref(envs);
  for (size_t i = 0; i < claim_count; i++) {
    dedup_remove(ai->runs, claims[i]);
    free(claims[i]);
  }
  free(claims);
  return result;
}

static void ai_free(struct exporter *self) {
  struct ai_exporter *ai = (struct ai_exporter *)self;
  if (!ai)
    return;
  if (ai->started) {
    pthread_mutex_lock(&ai->lock);
    ai->stopping = true;
    pthread_cond_broadcast(&ai->work);
    pthread_cond_broadcast(&ai->done);
    pthread_mutex_unlock(&ai->lock);
    pthread_join(ai->thread, NULL);
  }
  while (ai->head) {
    struct item *next = ai->head->next;
    item_free(ai, ai->head);
    ai->head = next;
  }
  pthread_cond_destroy(&ai->work);
  pthread_cond_destroy(&ai->done);
  pthread_mutex_destroy(&ai->lock);
  credential_free(ai->cred);
  dedup_free(ai->dedup);
  dedup_free(ai->runs);
  free(ai->track_url);
  free(ai);
}

static int default_transport(void *ctx, const struct http_request *request,
                             struct http_response *out, struct error_info *err) {
  return http_client_send(request, out, err);
}

int appinsights_exporter_new_with(const struct config *cfg, settings_getenv_fn getenv_fn,
                                  void *ctx, const struct appinsights_tuning *tuning,
                                  struct exporter **out, struct error_info *err) {
  int result = RESULT_NOMEM;
  struct connection_string cs;
  struct authentication_string auth;
  *out = NULL;
  struct ai_exporter *ai = calloc(1, sizeof *ai);
  if (!ai)
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  pthread_mutex_init(&ai->lock, NULL);
  if (deadline_cond_init(&ai->work) != RESULT_OK) {
    pthread_mutex_destroy(&ai->lock);
    free(ai);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  if (deadline_cond_init(&ai->done) != RESULT_OK) {
    pthread_cond_destroy(&ai->work);
    pthread_mutex_destroy(&ai->lock);
    free(ai);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  ai->tail = &ai->head;

  if ((result = connection_string_parse(cfg->appinsights_connection_string,
                                        cfg->appinsights_setting, &cs, err)) !=
          RESULT_OK ||
      (result = authentication_string_parse(cfg->appinsights_authentication_string, &auth,
                                            err)) != RESULT_OK ||
      (result = telemetry_options_init(&ai->telemetry, cs.instrumentation_key, getenv_fn,
                                       ctx, err)) != RESULT_OK)
    goto fail;
  if (auth.aad && (result = credential_managed_identity(
                       getenv_fn, ctx, auth.client_id[0] ? auth.client_id : NULL,
                       &ai->cred, err)) != RESULT_OK)
    goto fail;

  if (tuning)
    ai->tuning = *tuning;
  if (ai->tuning.window_ms <= 0)
    ai->tuning.window_ms = 20;
  if (!ai->tuning.max_batch_items)
    ai->tuning.max_batch_items = 1000;
  if (!ai->tuning.max_batch_bytes)
    ai->tuning.max_batch_bytes = 1024 * 1024;
  if (!ai->tuning.retry.base_delay_ms)
    ai->tuning.retry = RETRY_POLICY_DEFAULT;
  ai->transport = default_transport;
  ai->rng = (unsigned)time_now_ms();

  result = RESULT_NOMEM;
  size_t url_len = strlen(cs.ingestion_endpoint) + sizeof TRACK_PATH;
  if (!(ai->track_url = malloc(url_len)) ||
      !(ai->dedup = dedup_new(ai->tuning.dedup_capacity)) ||
      !(ai->runs = dedup_new(ai->tuning.dedup_capacity))) {
    error_set(err, RESULT_NOMEM, "", "out of memory");
    goto fail;
  }
  snprintf(ai->track_url, url_len, "%s%s", cs.ingestion_endpoint, TRACK_PATH);
  snprintf(ai->scope, sizeof ai->scope, "%s", cs.ingestion_scope);
  if (pthread_create(&ai->thread, NULL, sender_main, ai) != 0) {
    result = error_set(err, RESULT_IO, "", "could not start the telemetry sender thread");
    goto fail;
  }
  ai->started = true;
  ai->base.name = "appinsights";
  ai->base.export_records = ai_export;
  ai->base.free = ai_free;

  char masked[64];
  log_mask(cs.instrumentation_key, masked, sizeof masked);
  log_info("event=appinsights_configured url=%s ikey=%s auth=%s scope=%s "
           "legacy_traces=%s",
           ai->track_url, masked, ai->cred ? "entra_id" : "instrumentation_key",
           ai->cred ? ai->scope : "none", ai->telemetry.legacy_traces ? "true" : "false");
  *out = &ai->base;
  return RESULT_OK;
fail:
  ai_free(&ai->base);
  return result;
}

int appinsights_exporter_new(const struct config *cfg, settings_getenv_fn getenv_fn,
                             void *ctx, struct exporter **out, struct error_info *err) {
  return appinsights_exporter_new_with(cfg, getenv_fn, ctx, NULL, out, err);
}

/* The exporter behind a handle, or NULL when `exp` is another exporter. */
static struct ai_exporter *as_ai(const struct exporter *exp) {
  return exp && exp->export_records == ai_export ? (struct ai_exporter *)exp : NULL;
}

bool appinsights_exporter_is(const struct exporter *exp) {
  return as_ai(exp) != NULL;
}

void appinsights_exporter_stats(const struct exporter *exp,
                                struct appinsights_stats *out) {
  struct ai_exporter *ai = as_ai(exp);
  memset(out, 0, sizeof *out);
  if (!ai)
    return;
  pthread_mutex_lock(&ai->lock);
  *out = ai->stats;
  pthread_mutex_unlock(&ai->lock);
}

void appinsights_exporter_track_url(const struct exporter *exp, char *buf,
                                    size_t buf_size) {
  struct ai_exporter *ai = as_ai(exp);
  if (!ai) {
    snprintf(buf, buf_size, "%s", "");
    return;
  }
  pthread_mutex_lock(&ai->lock);
  snprintf(buf, buf_size, "%s", ai->track_url);
  pthread_mutex_unlock(&ai->lock);
}

/* A dry run: one envelope the service must refuse (it has no data), so nothing
 * is stored, yet the answer shows the endpoint is reachable and our key or token
 * was taken. */
static int check_dry_run(struct ai_exporter *ai, int64_t deadline_ms,
                         struct error_info *err) {
  char now[32], *auth = NULL, *token = NULL, *url = NULL, body[512];
  time_format_iso8601(time_now_ms(), now, sizeof now);
  snprintf(body, sizeof body,
           "[{\"name\":\"Microsoft.ApplicationInsights.Event\",\"time\":\"%s\","
           "\"iKey\":\"%s\",\"data\":{}}]",
           now, ai->telemetry.ikey);
  struct http_header headers[2] = {{"Content-Type", "application/json"}};
  size_t header_count = 1;
  struct http_response resp = {0};
  int r = RESULT_NOMEM;
  pthread_mutex_lock(&ai->lock);
  url = strdup(ai->track_url);
  pthread_mutex_unlock(&ai->lock);
  if (!url)
    goto done;
  if (ai->cred) {
    if ((r = credential_get_token(ai->cred, ai->scope, deadline_ms, &token, err)) !=
        RESULT_OK)
      goto done;
    if (!(auth = malloc(strlen(token) + 8))) {
      r = RESULT_NOMEM;
      goto done;
    }
    sprintf(auth, "Bearer %s", token);
    headers[header_count++] = (struct http_header){"Authorization", auth};
  }
  struct http_request req = {.method = "POST",
                             .url = url,
                             .headers = headers,
                             .header_count = header_count,
                             .body = body,
                             .body_len = strlen(body),
                             .deadline_ms = deadline_ms,
                             .max_response = MAX_RESPONSE};
  if ((r = ai->transport(ai->transport_ctx, &req, &resp, err)) != RESULT_OK)
    goto done;
  json_t *answer =
      jsonx_parse(resp.body, resp.body_len, JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  json_int_t received = json_integer_value(json_object_get(answer, "itemsReceived"));
  json_decref(answer);
  if (resp.status == 401 || resp.status == 403)
    r = error_set(err, RESULT_DENIED, "", "ingestion refused the %s (HTTP %ld)%s",
                  ai->cred ? "Entra ID token" : "instrumentation key", resp.status,
                  ai->cred ? ": the identity needs the Monitoring Metrics Publisher role"
                           : "");
  else if (received != 1)
    r = error_set(err, RESULT_TRANSIENT, "",
                  "%s answered HTTP %ld without reading the item", url, resp.status);
  else
    r = RESULT_OK; /* it read our item (and refused it, as it should) */
done:
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  if (auth) {
    memset(auth, 0, strlen(auth));
    free(auth);
  }
  free(url);
  http_response_cleanup(&resp);
  return r;
}

int appinsights_exporter_check(struct exporter *exp, bool dry_run, int64_t deadline_ms,
                               struct error_info *err) {
  struct ai_exporter *ai = as_ai(exp);
  if (!ai)
    return error_set(err, RESULT_INVALID, "APPLICATIONINSIGHTS_CONNECTION_STRING",
                     "no App Insights exporter: the connection string is not set");
  if (dry_run)
    return check_dry_run(ai, deadline_ms, err);
  char id[37];
  if (crypto_uuid4(id) != RESULT_OK)
    return error_set(err, RESULT_IO, "", "no random bytes for the test event's id");
  struct record rec;
  record_init(&rec);
  snprintf(rec.name, sizeof rec.name, "AmlHandlerCheck");
  int r = record_set_string(&rec, REC_EVENT_ID, id);
  const struct record *records[1] = {&rec};
  if (r == RESULT_OK)
    r = ai_export(exp, records, 1, deadline_ms, err);
  record_cleanup(&rec);
  return r;
}

void appinsights_exporter_set_transport_for_test(struct exporter *exp,
                                                 http_transport_fn fn, void *ctx) {
  struct ai_exporter *ai = as_ai(exp);
  if (!ai)
    return;
  pthread_mutex_lock(&ai->lock);
  ai->transport = fn ? fn : default_transport;
  ai->transport_ctx = fn ? ctx : NULL;
  pthread_mutex_unlock(&ai->lock);
}

void appinsights_exporter_set_in_flight_probe(struct exporter *exp,
                                              unsigned (*in_flight)(void *), void *ctx) {
  struct ai_exporter *ai = as_ai(exp);
  if (!ai)
    return;
  pthread_mutex_lock(&ai->lock);
  ai->in_flight = in_flight;
  ai->in_flight_ctx = ctx;
  pthread_mutex_unlock(&ai->lock);
}
