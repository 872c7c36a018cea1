/* Unit tests of the Retail Prices API client with the transport replaced: the
 * item chosen from realistic pages (Windows, Spot, Low Priority, DevTest,
 * Reservation, an older price and a secondary meter region around the one
 * Linux pay-as-you-go price), NextPageLink followed (its ":443" origin is the
 * endpoint's), a link to another host refused, the escaped filter, one lookup
 * per key (the cache), a failed lookup remembered for five minutes, then
 * retried, a price still found with every cache slot pending, and none taken
 * from a read cut short by the page limit. */
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/timeutil.h"
#include "cost/retail_prices.h"
#include "cost/retail_prices_testing.h"

#define ENDPOINT "https://prices.example"
#define FIRST_URL                                                                        \
  ENDPOINT                                                                               \
  "/api/retail/prices?$filter=serviceName%20eq%20%27Virtual%20Machines%27%20and"         \
  "%20armRegionName%20eq%20%27eastus%27%20and%20armSkuName%20eq%20%27STANDARD_"          \
  "D4S_V3%27%20and%20priceType%20eq%20%27Consumption%27"

static char *read_data(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/data/prices/%s", TEST_DATA_DIR, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = calloc(1, (size_t)n + 1);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return text;
}

static json_t *load(const char *name) {
  char *text = read_data(name);
  json_t *doc = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(doc);
  return doc;
}

/* ---- choosing ------------------------------------------------------------------ */

static double choose(const struct price_query *q) {
  json_t *p1 = load("eastus_d4s_v3_page1.json"), *p2 = load("eastus_d4s_v3_page2.json");
  struct price_choice choice = {0};
  retail_prices_scan(p1, q, &choice);
  retail_prices_scan(p2, q, &choice);
  json_decref(p1);
  json_decref(p2);
  assert_true(choice.found);
  assert_false(choice.ambiguous);
  return choice.usd;
}

static void linux_pay_as_you_go_chosen(void **state) {
  struct price_query q = {"eastus", "STANDARD_D4S_V3", false};
  /* Not Windows 0.376, DevTest 0.0768, Reservation 1009, the 2019 0.18, the
   * secondary meter region 0.21, Spot or Low Priority 0.0384. */
  assert_true(choose(&q) == 0.192);
}

static void low_priority_meter_for_low_priority_nodes(void **state) {
  struct price_query q = {"EastUS", "standard_d4s_v3", true};
  /* The Linux "Low Priority" meter, not Spot, not the Windows Low Priority one. */
  assert_true(choose(&q) == 0.0384);
  json_t *p1 = load("eastus_d4s_v3_page1.json");
  struct price_choice spot_only = {0};
  retail_prices_scan(p1, &q, &spot_only); /* page 1 has Spot only */
  assert_true(spot_only.found && spot_only.usd == 0.0384 && spot_only.rank == 2);
  json_decref(p1);
}

static void other_region_or_size_not_chosen(void **state) {
  json_t *p2 = load("eastus_d4s_v3_page2.json");
  struct price_query west = {"westeurope", "Standard_D4s_v3", false};
  struct price_query bigger = {"eastus", "Standard_D8s_v3", false};
  struct price_choice a = {0}, b = {0};
  retail_prices_scan(p2, &west, &a);
  retail_prices_scan(p2, &bigger, &b);
  assert_false(a.found);
  assert_false(b.found);
  json_decref(p2);
}

static void equal_rank_different_prices_is_ambiguous(void **state) {
  json_t *page = json_loads(
      "{\"Items\":[{\"type\":\"Consumption\",\"unitOfMeasure\":\"1 Hour\","
      "\"armRegionName\":\"eastus\",\"armSkuName\":\"Standard_X\",\"productName\":\"VM "
      "X\","
      "\"skuName\":\"X\",\"retailPrice\":1.0,\"effectiveStartDate\":\"2024-01-01\"},"
      "{\"type\":\"Consumption\",\"unitOfMeasure\":\"1 "
      "Hour\",\"armRegionName\":\"eastus\","
      "\"armSkuName\":\"Standard_X\",\"productName\":\"VM X Linux\",\"skuName\":\"X\","
      "\"retailPrice\":2.0,\"effectiveStartDate\":\"2024-01-01\"}]}",
      0, NULL);
  struct price_query q = {"eastus", "Standard_X", false};
  struct price_choice c = {0};
  retail_prices_scan(page, &q, &c);
  assert_true(c.found && c.ambiguous);
  json_decref(page);
}

static void filter_refuses_odd_names(void **state) {
  struct price_query quote = {"eastus", "Standard_D4' or 1 eq 1", false};
  assert_null(retail_prices_filter(&quote));
  struct price_query fine = {"eastus", "Standard_D4s_v3", false};
  char *filter = retail_prices_filter(&fine);
  assert_string_equal(filter,
                      "serviceName eq 'Virtual Machines' and armRegionName eq "
                      "'eastus' and armSkuName eq 'Standard_D4s_v3' and priceType "
                      "eq 'Consumption'");
  free(filter);
}

/* ---- lookups ------------------------------------------------------------------- */

static struct {
  pthread_mutex_t lock;
  int requests;
  int fail;                /* non-zero: the transport fails with this */
  const char *second_link; /* NextPageLink of page 1, when set */
  bool endless;            /* every page links to one more */
  bool authorization;      /* a request carried an Authorization header */
  bool hold;               /* requests for Standard_B sizes wait until cleared */
  pthread_cond_t released;
  char urls[8][1024];
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .released = PTHREAD_COND_INITIALIZER};

static int transport(void *ctx, const struct http_request *req, struct http_response *out,
                     struct error_info *err) {
  pthread_mutex_lock(&fake.lock);
  for (size_t i = 0; i < req->header_count; i++) /* the API is public */
    fake.authorization |= strcmp(req->headers[i].name, "Authorization") == 0;
  int n = fake.requests++;
  if (n < 8)
    snprintf(fake.urls[n], sizeof fake.urls[n], "%s", req->url);
  while (fake.hold && strstr(req->url, "Standard_B"))
    pthread_cond_wait(&fake.released, &fake.lock);
  pthread_mutex_unlock(&fake.lock);
  if (fake.fail)
    return error_set(err, fake.fail, "", "connection refused");
  bool first = strstr(req->url, "$skip=") == NULL;
  char *body = read_data(first ? "eastus_d4s_v3_page1.json" : "eastus_d4s_v3_page2.json");
  if ((first && fake.second_link) || fake.endless) {
    json_t *doc = json_loads(body, 0, NULL);
    char next[128];
    snprintf(next, sizeof next, ENDPOINT "/api/retail/prices?$skip=%d", (n + 1) * 4);
    json_object_set_new(doc, "NextPageLink",
                        json_string(fake.endless ? next : fake.second_link));
    free(body);
    body = json_dumps(doc, 0);
    json_decref(doc);
  }
  out->status = 200;
  out->body = body;
  out->body_len = strlen(body);
  return RESULT_OK;
}

static const char *getenv_prices(void *ctx, const char *name) {
  return strcmp(name, RETAIL_PRICES_SETTING) == 0 ? ENDPOINT "/" : NULL;
}

static int64_t fake_now;
static int64_t fake_clock(void) {
  return fake_now;
}

static int setup(void **state) {
  fake.requests = 0;
  fake.fail = 0;
  fake.second_link = NULL;
  fake.endless = false;
  struct retail_prices *p = NULL;
  assert_int_equal(retail_prices_new(getenv_prices, NULL, &p, NULL), RESULT_OK);
  retail_prices_set_transport_for_test(p, transport, NULL);
  *state = p;
  return 0;
}

static int teardown(void **state) {
  retail_prices_free(*state);
  time_set_clock(NULL, NULL);
  return 0;
}

static int hourly(struct retail_prices *p, bool low, double *usd,
                  struct error_info *err) {
  struct price_query q = {"eastus", "STANDARD_D4S_V3", low};
  return retail_prices_hourly(p, &q, time_mono_ms() + 5000, usd, err);
}

static void pages_followed_and_cached(void **state) {
  struct retail_prices *p = *state;
  struct retail_prices_stats stats;
  double usd = 0;
  struct error_info err = {0};
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_OK);
  assert_true(usd == 0.192);
  assert_int_equal(fake.requests, 2);
  assert_string_equal(fake.urls[0], FIRST_URL);
  assert_non_null(strstr(fake.urls[1], "prices.example:443/api/retail/prices?"));
  for (int i = 0; i < 5; i++) {
    assert_int_equal(hourly(p, false, &usd, &err), RESULT_OK);
    assert_true(usd == 0.192);
  }
  assert_int_equal(fake.requests, 2); /* one lookup per key */
  assert_int_equal(hourly(p, true, &usd, &err), RESULT_OK);
  assert_true(usd == 0.0384);
  assert_int_equal(fake.requests, 4); /* low priority is another key */
  retail_prices_get_stats(p, &stats);
  assert_int_equal(stats.lookups, 2);
  assert_int_equal(stats.requests, 4);
  assert_int_equal(stats.cache_hits, 5);
  assert_false(fake.authorization);
}

static void link_to_another_host_refused(void **state) {
  struct retail_prices *p = *state;
  double usd = 0;
  struct error_info err = {0};
  fake.second_link = "https://elsewhere.example/api/retail/prices?$skip=5";
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_PERMANENT);
  assert_non_null(strstr(err.message, "NextPageLink"));
  assert_int_equal(fake.requests, 1);
}

/* The price is on page 2, but pages go on past the last one read: an unread
 * page could hold a newer or a disagreeing price, so none is taken. */
static void no_price_from_a_partial_read(void **state) {
  struct retail_prices *p = *state;
  double usd = 0;
  struct error_info err = {0};
  fake.endless = true;
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_PERMANENT);
  assert_non_null(strstr(err.message, "partial read"));
  assert_int_equal(fake.requests, RETAIL_PRICES_MAX_PAGES);
}

static void failure_remembered_then_retried(void **state) {
  struct retail_prices *p = *state;
  double usd = 0;
  struct error_info err = {0};
  fake_now = time_mono_ms();
  time_set_clock(NULL, fake_clock);
  fake.fail = RESULT_TRANSIENT;
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "could not be reached"));
  assert_int_equal(fake.requests, 1);
  fake.fail = 0;
  fake_now += RETAIL_PRICES_FAILURE_TTL_MS - 1; /* still remembered: not asked */
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_TRANSIENT);
  assert_int_equal(fake.requests, 1);
  fake_now += 1; /* a later run asks again and gets the price */
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_OK);
  assert_true(usd == 0.192);
  assert_int_equal(fake.requests, 3);
  fake_now += RETAIL_PRICES_TTL_MS; /* a day later: looked up again */
  assert_int_equal(hourly(p, false, &usd, &err), RESULT_OK);
  assert_int_equal(fake.requests, 5);
}

/* With every cache slot held by a pending lookup, a caller still gets its
 * price: the lookup runs on its own thread, uncached. */
static void price_found_with_every_slot_pending(void **state) {
  struct retail_prices *p = *state;
  double usd = 0;
  struct error_info err = {0};
  char size[32];
  fake.hold = true;
  for (int i = 0; i < RETAIL_PRICES_CACHE; i++) {
    snprintf(size, sizeof size, "Standard_B%d", i);
    struct price_query q = {"eastus", size, false};
    assert_int_equal(retail_prices_hourly(p, &q, time_mono_ms(), &usd, &err),
                     RESULT_TIMEOUT);
  }
  int r = hourly(p, false, &usd, &err);
  pthread_mutex_lock(&fake.lock); /* release the held lookups before asserting */
  fake.hold = false;
  pthread_cond_broadcast(&fake.released);
  pthread_mutex_unlock(&fake.lock);
  assert_int_equal(r, RESULT_OK);
  assert_true(usd == 0.192);
}

static void endpoint_setting_checked(void **state) {
  struct retail_prices *p = NULL;
  struct error_info err = {0};
  assert_int_equal(retail_prices_new(NULL, NULL, &p, &err), RESULT_OK); /* default */
  retail_prices_free(p);
}

static const char *ftp_endpoint(void *ctx, const char *name) {
  return "ftp://prices.example";
}

static void endpoint_must_be_http(void **state) {
  struct retail_prices *p = NULL;
  struct error_info err = {0};
  assert_int_equal(retail_prices_new(ftp_endpoint, NULL, &p, &err), RESULT_INVALID);
  assert_string_equal(err.field, RETAIL_PRICES_SETTING);
  assert_null(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(linux_pay_as_you_go_chosen),
      cmocka_unit_test(low_priority_meter_for_low_priority_nodes),
      cmocka_unit_test(other_region_or_size_not_chosen),
      cmocka_unit_test(equal_rank_different_prices_is_ambiguous),
      cmocka_unit_test(filter_refuses_odd_names),
      cmocka_unit_test_setup_teardown(pages_followed_and_cached, setup, teardown),
      cmocka_unit_test_setup_teardown(link_to_another_host_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(no_price_from_a_partial_read, setup, teardown),
      cmocka_unit_test_setup_teardown(failure_remembered_then_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(price_found_with_every_slot_pending, setup,
                                      teardown),
      cmocka_unit_test(endpoint_setting_checked),
      cmocka_unit_test(endpoint_must_be_http),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
