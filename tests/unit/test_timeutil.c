/* Unit tests of timeutil: ISO-8601 and HTTP dates in, ISO-8601 and App Insights
 * durations out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/timeutil.h"

static void parses_iso8601_forms(void **state) {
  int64_t ms;
  assert_true(time_parse_iso8601_ms("1970-01-01T00:00:00Z", &ms));
  assert_int_equal(ms, 0);
  assert_true(time_parse_iso8601_ms("2024-01-02T03:04:05.123Z", &ms));
  assert_int_equal(ms, 1704164645123);
  /* AML writes seven fractional digits; extra digits are dropped. */
  assert_true(time_parse_iso8601_ms("2024-01-02T03:04:05.1234567Z", &ms));
  assert_int_equal(ms, 1704164645123);
  assert_true(time_parse_iso8601_ms("2024-01-02T05:04:05.5+02:00", &ms));
  assert_int_equal(ms, 1704164645500);
  assert_true(time_parse_iso8601_ms("2024-01-02T03:04:05", &ms));
  assert_int_equal(ms, 1704164645000);
  assert_true(time_parse_iso8601_ms("2024-02-29T00:00:00-0130", &ms));
  assert_int_equal(ms, 1709170200000);
}

static void refuses_malformed_iso8601(void **state) {
  int64_t ms;
  const char *bad[] = {"",
                       "2024-01-02",
                       "2024-13-02T03:04:05Z",
                       "2024-01-02T25:04:05Z",
                       "2024-01-02T03:04:05.Z",
                       "2024-01-02T03:04:05Zjunk",
                       "24-01-02T03:04:05Z",
                       "2024-01-02T03:04:05+2"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(time_parse_iso8601_ms(bad[i], &ms));
  assert_false(time_parse_iso8601_ms(NULL, &ms));
}

static void formats_iso8601_round_trip(void **state) {
  char buf[32];
  time_format_iso8601(1704164645123, buf, sizeof buf);
  assert_string_equal(buf, "2024-01-02T03:04:05.123Z");
  int64_t ms;
  assert_true(time_parse_iso8601_ms(buf, &ms));
  assert_int_equal(ms, 1704164645123);
}

static void formats_durations(void **state) {
  char buf[32];
  time_format_duration(0, buf, sizeof buf);
  assert_string_equal(buf, "00:00:00.0000000");
  time_format_duration(3723456, buf, sizeof buf);
  assert_string_equal(buf, "01:02:03.4560000");
  time_format_duration(86400000LL * 2 + 1, buf, sizeof buf);
  assert_string_equal(buf, "2.00:00:00.0010000");
  time_format_duration(-5, buf, sizeof buf);
  assert_string_equal(buf, "00:00:00.0000000");
}

static void parses_http_dates(void **state) {
  int64_t ms;
  assert_true(time_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &ms));
  assert_int_equal(ms, 784111777000);
  assert_false(time_parse_http_date("Sun, 06 Nov 1994 08:49:37 PST", &ms));
  assert_false(time_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT", &ms));
  assert_false(time_parse_http_date("120", &ms));
}

static int64_t fixed_clock(void) {
  return 42;
}

static void clock_can_be_replaced(void **state) {
  time_set_clock(fixed_clock, fixed_clock);
  assert_int_equal(time_now_ms(), 42);
  assert_int_equal(time_mono_ms(), 42);
  time_set_clock(NULL, NULL);
  assert_true(time_now_ms() > 1700000000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_iso8601_forms),
      cmocka_unit_test(refuses_malformed_iso8601),
      cmocka_unit_test(formats_iso8601_round_trip),
      cmocka_unit_test(formats_durations),
      cmocka_unit_test(parses_http_dates),
      cmocka_unit_test(clock_can_be_replaced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
