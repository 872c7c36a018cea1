/* Unit tests of the Table storage client's pure parts and of the storage
 * account settings: the Shared Key string to sign laid out as Microsoft's
 * "Authorize with Shared Key" page gives it for the Table service (VERB,
 * Content-MD5, Content-Type, Date, CanonicalizedResource = "/" + account + path,
 * "?comp=" kept), HMAC-SHA256 against RFC 4231's test case 2, the Authorization
 * value against one computed independently (Python's hmac over the same string
 * with Azurite's published development key), key escaping, and connection
 * strings (UseDevelopmentStorage, explicit endpoints, refusals). That Azure
 * accepts the signature is shown end to end against Azurite (test_watch.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "azure/storage_account.h"
#include "azure/table_client.h"
#include "base/crypto.h"

static void string_to_sign_layout(void **state) {
  char *s = table_string_to_sign("GET", NULL, "application/json",
                                 "Sun, 06 Dec 2026 20:00:00 GMT", "myaccount",
                                 "/mytable()", NULL);
  assert_string_equal(s, "GET\n\napplication/json\nSun, 06 Dec 2026 20:00:00 GMT\n"
                         "/myaccount/mytable()");
  free(s);
  s = table_string_to_sign("GET", "md5", "", "d", "myaccount", "/mytable", "acl");
  assert_string_equal(s, "GET\nmd5\n\nd\n/myaccount/mytable?comp=acl");
  free(s);
}

static void hmac_sha256_rfc4231_case_2(void **state) {
  uint8_t mac[32];
  char hex[65];
  const char *data = "what do ya want for nothing?";
  crypto_hmac_sha256("Jefe", 4, data, strlen(data), mac);
  crypto_hex(mac, 32, hex);
  assert_string_equal(hex,
                      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void shared_key_authorization(void **state) {
  uint8_t *key;
  size_t key_len;
  assert_int_equal(crypto_base64_decode(STORAGE_DEV_KEY, &key, &key_len), RESULT_OK);
  assert_int_equal(key_len, 64);
  char *s = table_string_to_sign(
      "PUT", NULL, "application/json", "Sun, 06 Dec 2026 20:00:00 GMT",
      "devstoreaccount1", "/devstoreaccount1/amlruns(PartitionKey='a',RowKey='b')", NULL);
  char *auth = table_shared_key("devstoreaccount1", key, key_len, s);
  assert_string_equal(
      auth, "SharedKey devstoreaccount1:SP+TWAAgMw4uFka+mq+k4yVOgWpP0LmTPRwmX+lwFXI=");
  free(auth);
  free(s);
  free(key);
}

static void base64_round_trip(void **state) {
  char *text = crypto_base64("any carnal pleas", 16);
  assert_string_equal(text, "YW55IGNhcm5hbCBwbGVhcw==");
  uint8_t *back;
  size_t len;
  assert_int_equal(crypto_base64_decode(text, &back, &len), RESULT_OK);
  assert_int_equal(len, 16);
  assert_memory_equal(back, "any carnal pleas", 16);
  free(back);
  free(text);
  assert_int_equal(crypto_base64_decode("not base64!", &back, &len), RESULT_INVALID);
}

static void key_escape(void **state) {
  char *k = table_key_escape("6f3a/ml-rg/ml-ws");
  assert_string_equal(k, "6f3a~2Fml-rg~2Fml-ws");
  free(k);
  k = table_key_escape("HD_1a2b.c#d?e'f~");
  assert_string_equal(k, "HD_1a2b.c~23d~3Fe~27f~7E");
  free(k);
}

static void development_storage(void **state) {
  struct storage_account *a;
  struct error_info err = {0};
  assert_int_equal(storage_account_parse("UseDevelopmentStorage=true", &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "http://127.0.0.1:10002/devstoreaccount1");
  assert_string_equal(a->account_name, "devstoreaccount1");
  assert_int_equal(a->key_len, 64);
  storage_account_free(a);
}

static void account_connection_strings(void **state) {
  struct storage_account *a;
  struct error_info err = {0};
  assert_int_equal(storage_account_parse(
                       "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
                       "YW55IGNhcm5hbCBwbGVhcw==;EndpointSuffix=core.usgovcloudapi.net",
                       &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "https://acct.table.core.usgovcloudapi.net");
  storage_account_free(a);
  assert_int_equal(storage_account_parse(
                       "AccountName=acct;AccountKey=YW55IGNhcm5hbCBwbGVhcw==", &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "https://acct.table.core.windows.net");
  storage_account_free(a);
  assert_int_equal(storage_account_parse(
                       "AccountName=devstoreaccount1;AccountKey=YW55IGNhcm5hbCBwbGVhcw==;"
                       "TableEndpoint=http://127.0.0.1:5555/devstoreaccount1/",
                       &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "http://127.0.0.1:5555/devstoreaccount1");
  storage_account_free(a);
  /* Spaces around keys and values (found by fuzz_storage: the value's length
   * was taken from the untrimmed key). */
  assert_int_equal(
      storage_account_parse(
          " AccountName = acct ;AccountKey    = YW55IGNhcm5hbCBwbGVhcw== ", &a, &err),
      RESULT_OK);
  assert_string_equal(a->account_name, "acct");
  assert_int_equal(a->key_len, 16);
  storage_account_free(a);
}

static void refused_connection_strings(void **state) {
  static const char *const bad[] = {
      "AccountName=acct",
      "AccountName=acct;AccountKey=!!!",
      "AccountName=acct;SharedAccessSignature=sv=2020&sig=x",
      "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=YW55IGNhcm5hbCBwbGVhcw="
      "=",
      /* A name that would move the host the signed requests go to. */
      "AccountName=evil.example/x#;AccountKey=YW55IGNhcm5hbCBwbGVhcw==",
      "AccountName=acct;AccountKey=YW55IGNhcm5hbCBwbGVhcw==;"
      "TableEndpoint=https://acct.table.core.windows.net/?sv=1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct storage_account *a = NULL;
    struct error_info err = {0};
    assert_int_equal(storage_account_parse(bad[i], &a, &err), RESULT_INVALID);
    assert_null(a);
    assert_string_equal(err.field, "AzureWebJobsStorage");
    assert_null(strstr(err.message, "YW55"));
  }
}

static const char *env_value(void *ctx, const char *name) {
  const char *const *pairs = ctx;
  for (size_t i = 0; pairs[i]; i += 2)
    if (strcmp(pairs[i], name) == 0)
      return pairs[i + 1];
  return NULL;
}

static void identity_settings(void **state) {
  struct storage_account *a;
  struct error_info err = {0};
  const char *none[] = {NULL};
  assert_int_equal(storage_account_from_env(env_value, (void *)none, &a, &err),
                   RESULT_OK);
  assert_null(a);
  const char *by_name[] = {"AzureWebJobsStorage__accountName", "acct", NULL};
  assert_int_equal(storage_account_from_env(env_value, (void *)by_name, &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "https://acct.table.core.windows.net");
  assert_null(a->key);
  storage_account_free(a);
  const char *by_uri[] = {"AzureWebJobsStorage__tableServiceUri",
                          "https://acct.table.core.chinacloudapi.cn/", NULL};
  assert_int_equal(storage_account_from_env(env_value, (void *)by_uri, &a, &err),
                   RESULT_OK);
  assert_string_equal(a->table_endpoint, "https://acct.table.core.chinacloudapi.cn");
  storage_account_free(a);
  const char *plain_http[] = {"AzureWebJobsStorage__tableServiceUri",
                              "http://example.com", NULL};
  assert_int_equal(storage_account_from_env(env_value, (void *)plain_http, &a, &err),
                   RESULT_INVALID);
  assert_string_equal(err.field, "AzureWebJobsStorage__tableServiceUri");
}

static void table_names(void **state) {
  struct storage_account *a;
  struct error_info err = {0};
  struct table_client *tc;
  assert_int_equal(storage_account_parse("UseDevelopmentStorage=true", &a, &err),
                   RESULT_OK);
  assert_int_equal(table_client_new(a, NULL, "aml-runs", &tc, &err), RESULT_INVALID);
  assert_string_equal(err.field, "HANDLER_RUNS_TABLE");
  assert_int_equal(table_client_new(a, NULL, "1runs", &tc, &err), RESULT_INVALID);
  assert_int_equal(table_client_new(a, NULL, "amlruns", &tc, &err), RESULT_OK);
  assert_string_equal(table_client_table(tc), "amlruns");
  table_client_free(tc);
  storage_account_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(string_to_sign_layout),
      cmocka_unit_test(hmac_sha256_rfc4231_case_2),
      cmocka_unit_test(shared_key_authorization),
      cmocka_unit_test(base64_round_trip),
      cmocka_unit_test(key_escape),
      cmocka_unit_test(development_storage),
      cmocka_unit_test(account_connection_strings),
      cmocka_unit_test(refused_connection_strings),
      cmocka_unit_test(identity_settings),
      cmocka_unit_test(table_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
