/* Unit tests of the App Insights connection and authentication strings: every
 * endpoint form of docs/protocols.md §6, the tokenizer's trimming and casing rules,
 * and errors that name the setting without showing the key whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/connection_string.h"

#define KEY "00000000-1111-2222-3333-444444444444"
#define SETTING "APPLICATIONINSIGHTS_CONNECTION_STRING"

static void parse_ok(const char *text, const char *endpoint) {
  struct connection_string cs;
  struct error_info err = {0};
  int r = connection_string_parse(text, SETTING, &cs, &err);
  if (r != 0)
    fail_msg("%s: %s", text, err.message);
  assert_string_equal(cs.instrumentation_key, KEY);
  assert_string_equal(cs.ingestion_endpoint, endpoint);
}

static void endpoint_forms(void **state) {
  parse_ok("InstrumentationKey=" KEY, "https://dc.services.visualstudio.com");
  parse_ok("InstrumentationKey=" KEY ";IngestionEndpoint=https://westeurope-5.in."
           "applicationinsights.azure.com/",
           "https://westeurope-5.in.applicationinsights.azure.com");
  parse_ok("InstrumentationKey=" KEY ";IngestionEndpoint=https://127.0.0.1:8443///",
           "https://127.0.0.1:8443");
  parse_ok("InstrumentationKey=" KEY ";EndpointSuffix=applicationinsights.azure.cn",
           "https://dc.applicationinsights.azure.cn");
  parse_ok("InstrumentationKey=" KEY ";EndpointSuffix=ai.contoso.com;Location=westus2",
           "https://westus2.dc.ai.contoso.com");
  /* IngestionEndpoint wins over EndpointSuffix. */
  parse_ok("EndpointSuffix=x.com;IngestionEndpoint=https://in.example.com;"
           "InstrumentationKey=" KEY,
           "https://in.example.com");
}

static void tokenizer_rules(void **state) {
  /* Keys case-insensitive, parts trimmed, empty parts skipped, unknown keys
   * ignored, split on the first '=' only. */
  parse_ok("  instrumentationkey = " KEY
           " ;; ;INGESTIONENDPOINT= https://a.example/x=y/ ;"
           "LiveEndpoint=https://live.example/;ApplicationId=abc;",
           "https://a.example/x=y");
  /* The key is lower-cased. */
  struct connection_string cs;
  assert_int_equal(connection_string_parse("InstrumentationKey=ABCDEF00-1111-2222-3333-"
                                           "444444444444",
                                           SETTING, &cs, NULL),
                   0);
  assert_string_equal(cs.instrumentation_key, "abcdef00-1111-2222-3333-444444444444");
}

static void parse_err(const char *text, const char *needle) {
  struct connection_string cs;
  struct error_info err = {0};
  assert_int_equal(connection_string_parse(text, SETTING, &cs, &err), RESULT_INVALID);
  assert_string_equal(err.field, SETTING);
  assert_non_null(strstr(err.message, SETTING));
  if (!strstr(err.message, needle))
    fail_msg("'%s' does not mention '%s'", err.message, needle);
}

static void errors(void **state) {
  parse_err("", "empty");
  parse_err("IngestionEndpoint=https://x", "no InstrumentationKey");
  parse_err("InstrumentationKey=", "no InstrumentationKey");
  parse_err("InstrumentationKey=" KEY ";garbage", "not key=value");
  parse_err("InstrumentationKey=" KEY ";=value", "not key=value");
  parse_err("InstrumentationKey=" KEY ";IngestionEndpoint=ftp://x", "http(s)");
  parse_err("InstrumentationKey=" KEY ";IngestionEndpoint=https://", "empty");
  parse_err("InstrumentationKey=" KEY ";EndpointSuffix=a/b", "host name");
  /* A malformed key is shown masked, never whole. */
  const char *secretish = "InstrumentationKey=supersecretvalue-not-a-guid-0123456789";
  struct error_info err = {0};
  struct connection_string cs;
  assert_int_equal(connection_string_parse(secretish, SETTING, &cs, &err),
                   RESULT_INVALID);
  assert_non_null(strstr(err.message, "not a GUID"));
  assert_null(strstr(err.message, "supersecretvalue-not"));
  assert_non_null(strstr(err.message, "supe..."));
  /* Too long. */
  char *big = malloc(CONNECTION_STRING_MAX + 10);
  memset(big, 'a', CONNECTION_STRING_MAX + 9);
  memcpy(big, "InstrumentationKey=" KEY ";x=", 58);
  big[CONNECTION_STRING_MAX + 9] = '\0';
  parse_err(big, "longer than 4096");
  free(big);
  /* The setting name given is the one reported. */
  assert_int_equal(
      connection_string_parse("x", "APPINSIGHTS_CONNECTION_STRING", &cs, &err),
      RESULT_INVALID);
  assert_string_equal(err.field, "APPINSIGHTS_CONNECTION_STRING");
}

static void guid_shape(void **state) {
  assert_true(connection_string_is_guid(KEY));
  assert_true(connection_string_is_guid("ABCDEF00-1111-2222-3333-44444444444f"));
  assert_false(connection_string_is_guid("00000000111122223333444444444444"));
  assert_false(connection_string_is_guid("00000000-1111-2222-3333-44444444444g"));
  assert_false(connection_string_is_guid("00000000-1111-2222-3333-4444444444444"));
  assert_false(connection_string_is_guid(NULL));
}

static void authentication_string(void **state) {
  struct authentication_string a;
  struct error_info err = {0};
  assert_int_equal(authentication_string_parse(NULL, &a, &err), 0);
  assert_false(a.aad);
  assert_int_equal(authentication_string_parse("Authorization=AAD", &a, &err), 0);
  assert_true(a.aad);
  assert_string_equal(a.client_id, "");
  assert_int_equal(
      authentication_string_parse(" authorization = aad ; ClientId= abc-123 ;", &a, &err),
      0);
  assert_true(a.aad);
  assert_string_equal(a.client_id, "abc-123");
  assert_int_equal(authentication_string_parse("Authorization=Basic", &a, &err),
                   RESULT_INVALID);
  assert_string_equal(err.field, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING");
  assert_int_equal(authentication_string_parse("ClientId=abc", &a, &err), RESULT_INVALID);
  assert_int_equal(authentication_string_parse("Authorization=AAD;ClientId=", &a, &err),
                   RESULT_INVALID);
  assert_int_equal(authentication_string_parse("AAD", &a, &err), RESULT_INVALID);
}

/* The ingestion token scope, as the official Python exporter builds it
 * (azure-monitor-opentelemetry-exporter _utils._get_scope): the public cloud's
 * scope by default, else AADAudience + "/.default" (issue 11 item 4). */
static void ingestion_scope_from_aad_audience(void **state) {
  static const char key[] = "InstrumentationKey=00000000-1111-2222-3333-444444444444;";
  struct {
    const char *extra, *scope;
  } cases[] = {
      {"", "https://monitor.azure.com//.default"},
      {"AADAudience=https://monitor.azure.us/", "https://monitor.azure.us//.default"},
      {"aadaudience = https://monitor.azure.cn/ ", "https://monitor.azure.cn//.default"},
      {"AADAudience=https://monitor.azure.us", "https://monitor.azure.us/.default"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char text[256];
    snprintf(text, sizeof text, "%s%s", key, cases[i].extra);
    struct connection_string cs;
    struct error_info err;
    assert_int_equal(connection_string_parse(text, NULL, &cs, &err), RESULT_OK);
    assert_string_equal(cs.ingestion_scope, cases[i].scope);
  }
  struct connection_string cs;
  struct error_info err;
  assert_int_equal(connection_string_parse("InstrumentationKey=00000000-1111-2222-3333-"
                                           "444444444444;AADAudience=monitor.azure.us",
                                           "APPLICATIONINSIGHTS_CONNECTION_STRING", &cs,
                                           &err),
                   RESULT_INVALID);
  assert_non_null(strstr(err.message, "AADAudience"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(endpoint_forms),
      cmocka_unit_test(tokenizer_rules),
      cmocka_unit_test(errors),
      cmocka_unit_test(guid_shape),
      cmocka_unit_test(authentication_string),
      cmocka_unit_test(ingestion_scope_from_aad_audience),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
