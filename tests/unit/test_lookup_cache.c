/* Unit tests of the single-flight lookup cache: a value is served until its
 * time to live passes and is then looked up again; a failure is served only to
 * its waiters without a negative time to live, and to everyone within it; a
 * waiter shares its leader's value; a full cache evicts the least recently used
 * settled key, never a pending one (a caller then leads uncached). The clock is a test
 * clock (time_set_clock). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/lookup_cache.h"
#include "base/timeutil.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void) {
  return fake_now;
}

static int setup(void **state) {
  fake_now = 1000000;
  time_set_clock(fake_clock, fake_clock);
  return 0;
}

static int teardown(void **state) {
  time_set_clock(NULL, NULL);
  return 0;
}

/* begin: expects to lead; returns the ticket. */
static uint64_t lead(struct lookup_cache *c, const char *key) {
  char *value = NULL;
  uint64_t ticket = 0;
  assert_int_equal(lookup_cache_begin(c, key, fake_now + 1000, &value, &ticket, NULL),
                   RESULT_OK);
  assert_null(value);
  assert_true(ticket != 0);
  return ticket;
}

static void value_expires_after_ttl(void **state) {
  struct lookup_cache c;
  assert_int_equal(lookup_cache_init(&c, 4, 60000, 0), RESULT_OK);
  lookup_cache_end(&c, "k", lead(&c, "k"), "v1", RESULT_OK, NULL);
  char *value = NULL;
  uint64_t ticket;
  fake_now += 59999;
  assert_int_equal(lookup_cache_begin(&c, "k", fake_now + 10, &value, &ticket, NULL),
                   RESULT_OK);
  assert_string_equal(value, "v1");
  free(value);
  fake_now += 1; /* expired: the next caller leads, then the new value serves */
  lookup_cache_end(&c, "k", lead(&c, "k"), "v2", RESULT_OK, NULL);
  assert_int_equal(lookup_cache_begin(&c, "k", fake_now + 10, &value, &ticket, NULL),
                   RESULT_OK);
  assert_string_equal(value, "v2");
  free(value);
  lookup_cache_cleanup(&c);
}

static void failure_without_negative_ttl_is_retried(void **state) {
  struct lookup_cache c;
  struct error_info err = {0};
  assert_int_equal(lookup_cache_init(&c, 4, 0, 0), RESULT_OK);
  error_set(&err, RESULT_TRANSIENT, "", "down");
  lookup_cache_end(&c, "k", lead(&c, "k"), NULL, RESULT_TRANSIENT, &err);
  lead(&c, "k"); /* nobody waited: the next caller leads again */
  lookup_cache_cleanup(&c);
}

static void failure_served_within_negative_ttl(void **state) {
  struct lookup_cache c;
  struct error_info err = {0}, got = {0};
  char *value = NULL;
  uint64_t ticket;
  assert_int_equal(lookup_cache_init(&c, 4, 0, 300000), RESULT_OK);
  error_set(&err, RESULT_TRANSIENT, "", "prices API down");
  lookup_cache_end(&c, "k", lead(&c, "k"), NULL, RESULT_TRANSIENT, &err);
  fake_now += 299999;
  assert_int_equal(lookup_cache_begin(&c, "k", fake_now + 10, &value, &ticket, &got),
                   RESULT_TRANSIENT);
  assert_string_equal(got.message, "prices API down");
  assert_null(value);
  assert_int_equal(ticket, 0);
  fake_now += 1; /* the negative entry expired: a new lookup */
  lead(&c, "k");
  lookup_cache_cleanup(&c);
}

struct waiter {
  struct lookup_cache *c;
  int result;
  char *value;
};

static void *wait_for_value(void *arg) {
  struct waiter *w = arg;
  uint64_t ticket;
  w->result = lookup_cache_begin(w->c, "k", fake_now + 1000000, &w->value, &ticket, NULL);
  return NULL;
}

static void waiter_shares_the_leaders_value(void **state) {
  time_set_clock(NULL, NULL); /* real time: the waiter blocks on a condition */
  struct lookup_cache c;
  assert_int_equal(lookup_cache_init(&c, 4, 0, 0), RESULT_OK);
  char *value = NULL;
  uint64_t ticket = 0;
  int64_t deadline = time_mono_ms() + 5000;
  assert_int_equal(lookup_cache_begin(&c, "k", deadline, &value, &ticket, NULL),
                   RESULT_OK);
  fake_now = time_mono_ms();
  struct waiter w = {.c = &c};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, wait_for_value, &w), 0);
  /* The waiter takes the pending entry or, arriving late, the settled value. */
  lookup_cache_end(&c, "k", ticket, "shared", RESULT_OK, NULL);
  pthread_join(thread, NULL);
  assert_int_equal(w.result, RESULT_OK);
  assert_string_equal(w.value, "shared");
  free(w.value);
  lookup_cache_cleanup(&c);
}

static void least_recently_used_evicted(void **state) {
  struct lookup_cache c;
  char *value = NULL;
  uint64_t ticket;
  assert_int_equal(lookup_cache_init(&c, 2, 0, 0), RESULT_OK);
  lookup_cache_end(&c, "a", lead(&c, "a"), "A", RESULT_OK, NULL);
  lookup_cache_end(&c, "b", lead(&c, "b"), "B", RESULT_OK, NULL);
  assert_int_equal(lookup_cache_begin(&c, "a", fake_now + 10, &value, &ticket, NULL),
                   RESULT_OK); /* "a" is now more recent than "b" */
  free(value);
  lookup_cache_end(&c, "c", lead(&c, "c"), "C", RESULT_OK, NULL);
  lead(&c, "b"); /* evicted */
  lookup_cache_cleanup(&c);
}

/* Pending entries are never evicted: with every slot pending, a new key's
 * caller leads uncached (ticket 0), and the pending lookup still settles. */
static void pending_entries_kept_when_full(void **state) {
  struct lookup_cache c;
  char *value = NULL;
  uint64_t ticket = 1;
  assert_int_equal(lookup_cache_init(&c, 1, 0, 0), RESULT_OK);
  uint64_t a = lead(&c, "a");
  assert_int_equal(lookup_cache_begin(&c, "b", fake_now + 10, &value, &ticket, NULL),
                   RESULT_OK);
  assert_null(value);
  assert_int_equal(ticket, 0);
  lookup_cache_end(&c, "b", ticket, "B", RESULT_OK, NULL); /* a no-op */
  lookup_cache_end(&c, "a", a, "A", RESULT_OK, NULL);
  assert_int_equal(lookup_cache_begin(&c, "a", fake_now + 10, &value, &ticket, NULL),
                   RESULT_OK);
  assert_string_equal(value, "A");
  free(value);
  lead(&c, "b"); /* "b" was never cached */
  lookup_cache_cleanup(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(value_expires_after_ttl, setup, teardown),
      cmocka_unit_test_setup_teardown(failure_without_negative_ttl_is_retried, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(failure_served_within_negative_ttl, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(waiter_shares_the_leaders_value, setup, teardown),
      cmocka_unit_test_setup_teardown(least_recently_used_evicted, setup, teardown),
      cmocka_unit_test_setup_teardown(pending_entries_kept_when_full, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
