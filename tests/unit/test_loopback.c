/* Unit tests of loopback: the one rule for which hosts may be reached over
 * plain http. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/loopback.h"

static bool host(const char *h) {
  return loopback_host(h, strlen(h));
}

static void names_the_loopback_hosts(void **state) {
  assert_true(host("127.0.0.1"));
  assert_true(host("localhost"));
  assert_true(host("LocalHost"));
  assert_true(host("::1"));
  assert_true(host("[::1]"));
  assert_false(host("127.0.0.1.example.com"));
  assert_false(host("127.evil.com"));
  assert_false(host("localhost.example.com"));
  assert_false(host("10.0.0.1"));
  assert_false(host(""));
  assert_true(loopback_host("127.0.0.1:8080", 9));
}

static void reads_the_host_of_a_url(void **state) {
  assert_true(loopback_url("http://127.0.0.1:8443/path"));
  assert_true(loopback_url("http://localhost"));
  assert_true(loopback_url("HTTPS://[::1]:1/x"));
  assert_false(loopback_url("http://127.0.0.1.nip.io/"));
  assert_false(loopback_url("http://localhost@evil.com/"));
  assert_false(loopback_url("http://[::1"));
  assert_false(loopback_url("ftp://127.0.0.1/"));
  assert_false(loopback_url("https://management.azure.com"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_the_loopback_hosts),
      cmocka_unit_test(reads_the_host_of_a_url),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
