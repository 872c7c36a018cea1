/* The Azure Retail Prices API client and its price cache; see retail_prices.h.
 *
 * A lookup walks the pages of one filter, feeding each page's Items to
 * retail_prices_scan(), and ends with the best item, or with the reason there
 * is none. The cache (lookup_cache.h) holds the price as text ("%.17g"), keyed
 * "region|size|dedicated" (or "|low") in lower case.
 *
 * Invariants: a NextPageLink is followed only to the endpoint's own scheme,
 * host and port (a link may spell out the default port, ":443"); no credential is ever
 * sent (the API is public). Threading: a lookup runs on a detached thread that
 * counts itself in `running`; retail_prices_free() waits for that to drop to
 * zero. Counters are atomics. */
#include "cost/retail_prices.h"
#include "cost/retail_prices_testing.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure/http_client.h"
#include "base/text.h"
#include "base/log.h"
#include "base/loopback.h"
#include "base/lookup_cache.h"
#include "base/timeutil.h"

#define FILTER_FORMAT                                                                    \
  "serviceName eq 'Virtual Machines' and armRegionName eq '%s' and armSkuName eq '%s' "  \
  "and priceType eq 'Consumption'"

struct retail_prices {
  char *endpoint; /* without trailing slash */
  struct lookup_cache cache;
  http_transport_fn transport;
  void *transport_ctx;
  pthread_mutex_t lock;
  pthread_cond_t idle; /* signalled when `running` drops */
  unsigned running;    /* lookup threads alive */
  atomic_uint_fast64_t lookups, requests, cache_hits, failures;
};

/* ---- choosing the item ------------------------------------------------------- */

static bool equals_ci(const char *a, const char *b) {
  return a && b && strcasecmp(a, b) == 0;
}

static bool number_at(const json_t *item, const char *key, double *out) {
  json_t *v = jsonx_get_ci(item, key);
  if (!json_is_number(v))
    return false;
  *out = json_number_value(v);
  return isfinite(*out);
}

/* The rank of a qualifying item, or -1 when it does not qualify. */
static int item_rank(const json_t *item, const struct price_query *q, double *out_usd) {
  const char *sku = jsonx_string_ci(item, "skuName");
  const char *meter = jsonx_string_ci(item, "meterName");
  const char *currency = jsonx_string_ci(item, "currencyCode");
  double tier = 0;
  if (!equals_ci(jsonx_string_ci(item, "type"), "Consumption") ||
      !equals_ci(jsonx_string_ci(item, "unitOfMeasure"), "1 Hour") ||
      (currency && !equals_ci(currency, "USD")) ||
      !equals_ci(jsonx_string_ci(item, "armRegionName"), q->region) ||
      !equals_ci(jsonx_string_ci(item, "armSkuName"), q->vm_size) ||
      text_contains_ci(jsonx_string_ci(item, "productName"), "Windows") ||
      (number_at(item, "tierMinimumUnits", &tier) && tier != 0) ||
      !number_at(item, "retailPrice", out_usd) || !(*out_usd > 0))
    return -1;
  bool low_priority =
      text_contains_ci(sku, "Low Priority") || text_contains_ci(meter, "Low Priority");
  bool spot = text_contains_ci(sku, "Spot") || text_contains_ci(meter, "Spot");
  if (q->low_priority != (low_priority || spot))
    return -1;
  int rank = q->low_priority && !low_priority ? 2 : 0; /* Low Priority before Spot */
  json_t *primary = jsonx_get_ci(item, "isPrimaryMeterRegion");
  if (json_is_false(primary))
    rank += 1;
  return rank;
}

void retail_prices_scan(const json_t *page, const struct price_query *q,
                        struct price_choice *choice) {
  json_t *items = jsonx_get_ci(page, "Items");
  size_t i;
  json_t *item;
  json_array_foreach(items, i, item) {
    double usd;
    int rank = item_rank(item, q, &usd);
    if (rank < 0)
      continue;
    const char *start = jsonx_string_ci(item, "effectiveStartDate");
    if (!start)
      start = "";
    int newer = choice->found ? strcmp(start, choice->effective) : 1;
    if (!choice->found || rank < choice->rank || (rank == choice->rank && newer > 0)) {
      choice->found = true;
      choice->ambiguous = false;
      choice->rank = rank;
      choice->usd = usd;
      snprintf(choice->effective, sizeof choice->effective, "%s", start);
    } else if (rank == choice->rank && newer == 0 && usd != choice->usd) {
      choice->ambiguous = true;
    }
  }
}

static bool plain_name(const char *text) {
  if (!text || !*text || strlen(text) > 64)
    return false;
  for (const char *p = text; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != ' ')
      return false;
  return true;
}

char *retail_prices_filter(const struct price_query *q) {
  if (!plain_name(q->region) || !plain_name(q->vm_size))
    return NULL;
  size_t n = strlen(FILTER_FORMAT) + strlen(q->region) + strlen(q->vm_size);
  char *filter = malloc(n);
  if (filter)
    snprintf(filter, n, FILTER_FORMAT, q->region, q->vm_size);
  return filter;
}

/* ---- one lookup ---------------------------------------------------------------- */

/* scheme://host:port of `url` in lower case with the default port filled in. */
static bool origin_of(const char *url, char *buf, size_t size) {
  const char *rest = strstr(url, "://");
  if (!rest)
    return false;
  size_t scheme_len = (size_t)(rest - url);
  rest += 3;
  size_t host_len = strcspn(rest, "/?#");
  bool has_port = memchr(rest, ':', host_len) && rest[0] != '[';
  if (rest[0] == '[') { /* [::1]:port */
    const char *close = memchr(rest, ']', host_len);
    has_port = close && close + 1 < rest + host_len && close[1] == ':';
  }
  const char *port = scheme_len == 5 ? ":443" : ":80";
  int n = snprintf(buf, size, "%.*s://%.*s%s", (int)scheme_len, url, (int)host_len, rest,
                   has_port ? "" : port);
  for (char *p = buf; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return n > 0 && (size_t)n < size;
}

/* The NextPageLink as a URL we send: same origin as the endpoint, spaces
 * escaped. NULL (with err) otherwise. */
static char *next_link(const struct retail_prices *p, const char *link,
                       struct error_info *err) {
  char a[300], b[300];
  if (!origin_of(p->endpoint, a, sizeof a) || !origin_of(link, b, sizeof b) ||
      strcmp(a, b) != 0) {
    error_set(err, RESULT_PERMANENT, "", "the prices API's NextPageLink leaves %s", a);
    return NULL;
  }
  size_t spaces = 0;
  for (const char *s = link; *s; s++)
    spaces += *s == ' ';
  char *url = malloc(strlen(link) + 2 * spaces + 1), *o = url;
  if (!url)
    return NULL;
  for (const char *s = link; *s; s++) {
    if (*s == ' ') {
      memcpy(o, "%20", 3);
      o += 3;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
  return url;
}

static int get_page(struct retail_prices *p, const char *url, int64_t deadline_ms,
                    json_t **out_page, struct error_info *err) {
  struct http_header headers[] = {{"Accept", "application/json"}};
  struct http_request request = {.method = "GET",
                                 .url = url,
                                 .headers = headers,
                                 .header_count = 1,
                                 .deadline_ms = deadline_ms};
  struct http_response response = {0};
  atomic_fetch_add(&p->requests, 1);
  int r = p->transport ? p->transport(p->transport_ctx, &request, &response, err)
                       : http_client_send_retry(&request, &response, err);
  *out_page = NULL;
  if (r != RESULT_OK) {
    char why[sizeof err->message];
    snprintf(why, sizeof why, "%s",
             err && err->message[0] ? err->message : result_str(r));
    r = error_set(err, r == RESULT_TIMEOUT ? RESULT_TIMEOUT : RESULT_TRANSIENT, "",
                  "the prices API could not be reached: %s", why);
  } else if (response.status != 200) {
    bool passing =
        response.status == 408 || response.status == 429 || response.status >= 500;
    r = error_set(err, passing ? RESULT_TRANSIENT : RESULT_PERMANENT, "",
                  "the prices API answered HTTP %ld", response.status);
  } else {
    *out_page = jsonx_parse(response.body ? response.body : "", response.body_len,
                            JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
    if (!json_is_array(jsonx_get_ci(*out_page, "Items"))) {
      json_decref(*out_page);
      *out_page = NULL;
      r = error_set(err, RESULT_TRANSIENT, "", "the prices API's answer has no Items");
    }
  }
  http_response_cleanup(&response);
  return r;
}

/* The first page's URL for `filter` (malloc'd; NULL: no memory). */
static char *first_page_url(const struct retail_prices *p, const char *filter) {
  char *escaped = http_client_escape(filter);
  char *url = escaped
                  ? text_format("%s/api/retail/prices?$filter=%s", p->endpoint, escaped)
                  : NULL;
  free(escaped);
  return url;
}

static int lookup(struct retail_prices *p, const struct price_query *q,
                  int64_t deadline_ms, double *out_usd, struct error_info *err) {
  struct price_choice choice = {0};
  char *filter = retail_prices_filter(q), *url = NULL;
  int r = RESULT_NOMEM, pages = 0;
  if (!filter) {
    r = error_set(err, RESULT_PERMANENT, "", "\"%.64s\" in \"%.64s\" cannot be priced",
                  q->vm_size ? q->vm_size : "", q->region ? q->region : "");
    goto done;
  }
  if (!(url = first_page_url(p, filter)))
    goto done;
  while (url && pages < RETAIL_PRICES_MAX_PAGES) {
    json_t *page = NULL;
    if ((r = get_page(p, url, deadline_ms, &page, err)) != RESULT_OK)
      goto done;
    pages++;
    retail_prices_scan(page, q, &choice);
    const char *link = jsonx_string_ci(page, "NextPageLink");
    free(url);
    url = NULL;
    if (link && *link && !(url = next_link(p, link, err)))
      r = err && err->message[0] ? RESULT_PERMANENT : RESULT_NOMEM;
    json_decref(page);
    if (r != RESULT_OK)
      goto done;
  }
  if (choice.found && !choice.ambiguous && !url) {
    *out_usd = choice.usd;
    r = RESULT_OK;
  } else if (choice.found && !choice.ambiguous) {
    /* An unread page could hold a newer price, or one that disagrees. */
    r = error_set(err, RESULT_PERMANENT, "",
                  "the prices of %s in %s run past %d pages; none is taken from a "
                  "partial read",
                  q->vm_size, q->region, RETAIL_PRICES_MAX_PAGES);
  } else {
    r = error_set(err, RESULT_PERMANENT, "",
                  "%s Linux pay-as-you-go %sprice for %s in %s%s",
                  choice.ambiguous ? "several different" : "no",
                  q->low_priority ? "low-priority " : "", q->vm_size, q->region,
                  url ? " within the pages read" : " in the Retail Prices API");
  }
done:
  if (r == RESULT_NOMEM)
    error_set(err, RESULT_NOMEM, "", "out of memory looking a price up");
  free(filter);
  free(url);
  return r;
}

int retail_prices_check(struct retail_prices *p, int64_t deadline_ms,
                        struct error_info *err) {
  struct price_query q = {"eastus", "Standard_D2s_v3", false};
  char *filter = retail_prices_filter(&q);
  char *url = filter ? first_page_url(p, filter) : NULL;
  json_t *page = NULL;
  int r = url ? get_page(p, url, deadline_ms, &page, err)
              : error_set(err, RESULT_NOMEM, "", "out of memory");
  json_decref(page);
  free(filter);
  free(url);
  return r;
}

/* ---- the cache and the lookup threads ------------------------------------------ */

struct job {
  struct retail_prices *prices;
  char *key, *region, *vm_size;
  bool low_priority;
  uint64_t ticket;
};

static void job_free(struct job *job) {
  if (!job)
    return;
  free(job->key);
  free(job->region);
  free(job->vm_size);
  free(job);
}

/* One lookup, logged and counted; `value` gets the price as cached. */
static int logged_lookup(struct retail_prices *p, const struct price_query *q,
                         int64_t deadline_ms, double *out_usd, char value[40],
                         struct error_info *err) {
  int r = lookup(p, q, deadline_ms, out_usd, err);
  if (r == RESULT_OK) {
    snprintf(value, 40, "%.17g", *out_usd);
    log_info("event=retail_price_found region=%s vm_size=%s priority=%s usd_per_hour=%s",
             q->region, q->vm_size, q->low_priority ? "low" : "dedicated", value);
  } else {
    atomic_fetch_add(&p->failures, 1);
    log_warn("event=retail_price_missing region=%s vm_size=%s priority=%s reason=\"%s\"",
             q->region, q->vm_size, q->low_priority ? "low" : "dedicated", err->message);
  }
  return r;
}

/* Runs one lookup and settles its cache entry. */
static void run_job(struct job *job, int64_t deadline_ms) {
  struct price_query q = {job->region, job->vm_size, job->low_priority};
  struct error_info err = {0};
  double usd = 0;
  char value[40];
  int r = logged_lookup(job->prices, &q, deadline_ms, &usd, value, &err);
  lookup_cache_end(&job->prices->cache, job->key, job->ticket,
                   r == RESULT_OK ? value : NULL, r, &err);
}

static void *job_thread(void *arg) {
  struct job *job = arg;
  struct retail_prices *p = job->prices;
  run_job(job, time_mono_ms() + RETAIL_PRICES_LOOKUP_MS);
  job_free(job);
  pthread_mutex_lock(&p->lock);
  p->running--;
  pthread_cond_broadcast(&p->idle);
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* Starts the lookup on its own thread; without a thread, runs it here with the
 * caller's deadline. Takes `job`. */
static void start_job(struct job *job, int64_t deadline_ms) {
  struct retail_prices *p = job->prices;
  pthread_attr_t attr;
  pthread_t thread;
  pthread_mutex_lock(&p->lock);
  p->running++;
  pthread_mutex_unlock(&p->lock);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&thread, &attr, job_thread, job);
  pthread_attr_destroy(&attr);
  if (rc == 0)
    return;
  pthread_mutex_lock(&p->lock);
  p->running--;
  pthread_mutex_unlock(&p->lock);
  run_job(job, deadline_ms);
  job_free(job);
}

static char *cache_key(const struct price_query *q) {
  size_t n = strlen(q->region) + strlen(q->vm_size) + 16;
  char *key = malloc(n);
  if (!key)
    return NULL;
  snprintf(key, n, "%s|%s|%s", q->region, q->vm_size,
           q->low_priority ? "low" : "dedicated");
  for (char *k = key; *k; k++)
    *k = (char)tolower((unsigned char)*k);
  return key;
}

static int from_cache(const char *value, double *out_usd) {
  char *end = NULL;
  *out_usd = strtod(value, &end);
  return end && end != value && isfinite(*out_usd) ? RESULT_OK : RESULT_INVALID;
}

int retail_prices_hourly(struct retail_prices *p, const struct price_query *q,
                         int64_t deadline_ms, double *out_usd, struct error_info *err) {
  char *key = q->region && q->vm_size ? cache_key(q) : NULL, *value = NULL;
  uint64_t ticket = 0;
  struct job *job = NULL;
  if (!key)
    return error_set(err, RESULT_NOMEM, "", "out of memory looking a price up");
  int r = lookup_cache_begin(&p->cache, key, deadline_ms, &value, &ticket, err);
  if (r == RESULT_OK && !value && ticket == 0) {
    /* No slot to share a lookup through (every one is pending): a thread's
     * outcome would reach nobody, so the lookup runs here, by the caller's
     * deadline, uncached. */
    struct error_info local = {0};
    char text[40];
    atomic_fetch_add(&p->lookups, 1);
    r = logged_lookup(p, q, deadline_ms, out_usd, text, &local);
    if (r != RESULT_OK && err)
      *err = local;
    free(key);
    return r;
  }
  if (r == RESULT_OK && !value) {
    atomic_fetch_add(&p->lookups, 1);
    if (!(job = calloc(1, sizeof *job)) || !(job->key = strdup(key)) ||
        !(job->region = strdup(q->region)) || !(job->vm_size = strdup(q->vm_size))) {
      job_free(job);
      lookup_cache_end(&p->cache, key, ticket, NULL, RESULT_NOMEM, NULL);
      free(key);
      return error_set(err, RESULT_NOMEM, "", "out of memory looking a price up");
    }
    *job = (struct job){.prices = p,
                        .key = job->key,
                        .region = job->region,
                        .vm_size = job->vm_size,
                        .low_priority = q->low_priority,
                        .ticket = ticket};
    start_job(job, deadline_ms);
    /* Wait for it like any other caller (it may already have ended). */
    r = lookup_cache_begin(&p->cache, key, deadline_ms, &value, &ticket, err);
    if (r == RESULT_OK && !value) {
      lookup_cache_end(&p->cache, key, ticket, NULL, RESULT_TRANSIENT, NULL);
      r = error_set(err, RESULT_TRANSIENT, "", "the price lookup ended without a price");
    }
  } else if (value || r != RESULT_TIMEOUT) {
    atomic_fetch_add(&p->cache_hits, 1);
  }
  if (r == RESULT_TIMEOUT)
    error_set(err, RESULT_TIMEOUT, "",
              "the price of %s in %s is still being looked up; later runs will have it",
              q->vm_size, q->region);
  if (r == RESULT_OK && from_cache(value, out_usd) != RESULT_OK)
    r = error_set(err, RESULT_INVALID, "", "unreadable cached price");
  free(value);
  free(key);
  return r;
}

void retail_prices_get_stats(struct retail_prices *p, struct retail_prices_stats *out) {
  out->lookups = atomic_load(&p->lookups);
  out->requests = atomic_load(&p->requests);
  out->cache_hits = atomic_load(&p->cache_hits);
  out->failures = atomic_load(&p->failures);
}

void retail_prices_set_transport_for_test(struct retail_prices *p, http_transport_fn fn,
                                          void *ctx) {
  p->transport = fn;
  p->transport_ctx = ctx;
}

int retail_prices_new(settings_getenv_fn getenv_fn, void *ctx, struct retail_prices **out,
                      struct error_info *err) {
  const char *endpoint = settings_get(getenv_fn, ctx, RETAIL_PRICES_SETTING);
  struct retail_prices *p = calloc(1, sizeof *p);
  *out = NULL;
  if (!endpoint || !*endpoint)
    endpoint = RETAIL_PRICES_DEFAULT_ENDPOINT;
  if (!p || !(p->endpoint = strdup(endpoint)) ||
      lookup_cache_init(&p->cache, RETAIL_PRICES_CACHE, RETAIL_PRICES_TTL_MS,
                        RETAIL_PRICES_FAILURE_TTL_MS) != RESULT_OK) {
    if (p)
      free(p->endpoint);
    free(p);
    return error_set(err, RESULT_NOMEM, "", "out of memory");
  }
  for (size_t n = strlen(p->endpoint); n > 0 && p->endpoint[n - 1] == '/'; n--)
    p->endpoint[n - 1] = '\0';
  bool https = strncasecmp(p->endpoint, "https://", 8) == 0;
  if ((!https && !loopback_url(p->endpoint)) || strlen(p->endpoint) <= 8 ||
      strpbrk(p->endpoint, "?# ")) {
    lookup_cache_cleanup(&p->cache);
    free(p->endpoint);
    free(p);
    return error_set(err, RESULT_INVALID, RETAIL_PRICES_SETTING,
                     "%s must be an https URL without query (http only to a loopback "
                     "host), like %s",
                     RETAIL_PRICES_SETTING, RETAIL_PRICES_DEFAULT_ENDPOINT);
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->idle, NULL);
  log_info("event=retail_prices_ready endpoint=%s", p->endpoint);
  *out = p;
  return RESULT_OK;
}

void retail_prices_free(struct retail_prices *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  while (p->running > 0)
    pthread_cond_wait(&p->idle, &p->lock);
  pthread_mutex_unlock(&p->lock);
  pthread_cond_destroy(&p->idle);
  pthread_mutex_destroy(&p->lock);
  lookup_cache_cleanup(&p->cache);
  free(p->endpoint);
  free(p);
}
