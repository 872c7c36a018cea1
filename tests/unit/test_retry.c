/* Unit tests of retry: the retryable statuses, every retry-after header form and
 * their precedence, backoff growth, cap and jitter bounds, and garbage headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "azure/retry.h"
#include "base/timeutil.h"

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define DATE_MS 784111777000LL

static const struct retry_policy policy = {
    .max_attempts = 5, .base_delay_ms = 100, .max_delay_ms = 1000};

static void classifies_statuses(void **state) {
  long yes[] = {408, 429, 500, 502, 503, 504};
  long no[] = {200, 201, 204, 301, 307, 308, 400, 401, 403, 404, 409, 413, 439, 501, 505};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    assert_true(retry_status_is_retryable(yes[i]));
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    assert_false(retry_status_is_retryable(no[i]));
}

static void defaults_match_azure_core(void **state) {
  assert_int_equal(RETRY_POLICY_DEFAULT.max_attempts, 5);
  assert_int_equal(RETRY_POLICY_DEFAULT.base_delay_ms, 200);
  assert_int_equal(RETRY_POLICY_DEFAULT.max_delay_ms, 8000);
}

static void reads_each_header_form(void **state) {
  assert_int_equal(retry_after_from_headers("1500", NULL, NULL, 0), 1500);
  assert_int_equal(retry_after_from_headers(NULL, "250", NULL, 0), 250);
  assert_int_equal(retry_after_from_headers(NULL, NULL, "3", 0), 3000);
  assert_int_equal(retry_after_from_headers(NULL, NULL, " 2 ", 0), 2000);
  assert_int_equal(retry_after_from_headers(NULL, NULL, "0", 0), 0);
  /* An HTTP date 5 s after now. */
  assert_int_equal(retry_after_from_headers(NULL, NULL, "Sun, 06 Nov 1994 08:49:37 GMT",
                                            DATE_MS - 5000),
                   5000);
  /* A date in the past means "now". */
  assert_int_equal(retry_after_from_headers(NULL, NULL, "Sun, 06 Nov 1994 08:49:37 GMT",
                                            DATE_MS + 5000),
                   0);
  assert_int_equal(retry_after_from_headers(NULL, NULL, NULL, 0), -1);
}

static void prefers_ms_headers_in_order(void **state) {
  assert_int_equal(retry_after_from_headers("10", "20", "30", 0), 10);
  assert_int_equal(retry_after_from_headers(NULL, "20", "30", 0), 20);
  /* An unusable header falls through to the next one. */
  assert_int_equal(retry_after_from_headers("soon", "20", "30", 0), 20);
  assert_int_equal(retry_after_from_headers("-5", "x", "30", 0), 30000);
  /* The server's value wins over the backoff, whatever the attempt. */
  assert_int_equal(retry_delay_ms(&policy, 4, NULL, NULL, "7", 0, 12345), 7000);
  assert_int_equal(retry_delay_ms(&policy, 0, "1", NULL, NULL, 0, 0), 1);
}

static void ignores_garbage(void **state) {
  const char *bad[] = {"",
                       " ",
                       "-1",
                       "-0.5",
                       "abc",
                       "1s",
                       "0x10",
                       "1 2",
                       "+5",
                       "1e3",
                       "Sun, 32 Nov 1994 08:49:37 GMT",
                       "tomorrow"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(retry_after_from_headers(bad[i], NULL, NULL, 0), -1);
    assert_int_equal(retry_after_from_headers(NULL, bad[i], NULL, 0), -1);
    assert_int_equal(retry_after_from_headers(NULL, NULL, bad[i], 0), -1);
  }
  /* Garbage everywhere: the backoff applies (attempt 0, jitter low end). */
  assert_int_equal(retry_delay_ms(&policy, 0, "x", "y", "z", 0, 0), 80);
}

static void clamps_absurd_values(void **state) {
  int64_t hour = 3600 * 1000LL;
  assert_int_equal(retry_after_from_headers("99999999999999999999999", NULL, NULL, 0),
                   hour);
  assert_int_equal(retry_after_from_headers(NULL, NULL, "9223372036854775807", 0), hour);
  assert_int_equal(retry_after_from_headers(NULL, NULL, "86400", 0), hour);
  assert_int_equal(
      retry_after_from_headers(NULL, NULL, "Fri, 31 Dec 9999 23:59:59 GMT", 0), hour);
  /* A fraction is dropped rather than refused. */
  assert_int_equal(retry_after_from_headers(NULL, NULL, "1.5", 0), 1000);
}

static void backs_off_exponentially_with_a_cap(void **state) {
  /* random % 1000 == 500 puts the jitter factor at exactly 1.0. */
  int64_t expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int attempt = 0; attempt < 7; attempt++)
    assert_int_equal(retry_delay_ms(&policy, attempt, NULL, NULL, NULL, 0, 500),
                     expected[attempt]);
  /* A huge attempt number neither overflows nor passes the cap. */
  assert_int_equal(retry_delay_ms(&policy, 1000000, NULL, NULL, NULL, 0, 500), 1000);
  assert_int_equal(retry_delay_ms(&RETRY_POLICY_DEFAULT, 10, NULL, NULL, NULL, 0, 500),
                   8000);
}

static void jitter_stays_within_20_percent(void **state) {
  int64_t lo = INT64_MAX, hi = 0;
  for (uint32_t r = 0; r < 5000; r += 7) {
    int64_t d = retry_delay_ms(&policy, 2, NULL, NULL, NULL, 0, r * 2654435761u);
    assert_in_range(d, 320, 480);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  /* and it actually spreads */
  assert_true(lo <= 330);
  assert_true(hi >= 470);
  assert_int_equal(retry_delay_ms(&policy, 2, NULL, NULL, NULL, 0, UINT32_MAX),
                   320 + (int64_t)(UINT32_MAX % 1000) * 160 / 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(classifies_statuses),
      cmocka_unit_test(defaults_match_azure_core),
      cmocka_unit_test(reads_each_header_form),
      cmocka_unit_test(prefers_ms_headers_in_order),
      cmocka_unit_test(ignores_garbage),
      cmocka_unit_test(clamps_absurd_values),
      cmocka_unit_test(backs_off_exponentially_with_a_cap),
      cmocka_unit_test(jitter_stays_within_20_percent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
