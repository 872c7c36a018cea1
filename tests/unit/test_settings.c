/* Unit tests of the settings reader (one blank rule for every setting) and of
 * the settings table: every setting any module reads is in config_settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "azure/storage_account.h"
#include "aml/aml_client.h"
#include "azure/credential.h"
#include "base/settings.h"
#include "core/config.h"
#include "export/telemetry.h"
#include "cost/retail_prices.h"

/* A getenv over a NULL-terminated list of "NAME=value" strings that records
 * every name asked for. */
struct recording_env {
  const char *const *values;
  const char *asked[64];
  size_t asked_count;
};

static const char *recording_getenv(void *ctx, const char *name) {
  struct recording_env *env = ctx;
  bool seen = false;
  for (size_t i = 0; i < env->asked_count; i++)
    seen = seen || strcmp(env->asked[i], name) == 0;
  if (!seen && env->asked_count < sizeof env->asked / sizeof *env->asked)
    env->asked[env->asked_count++] = name;
  size_t n = strlen(name);
  for (const char *const *e = env->values; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

static void blank_is_unset_and_leading_blanks_are_skipped(void **state) {
  const char *values[] = {"EMPTY=", "BLANK= \t ", "SET=  value", NULL};
  struct recording_env env = {.values = values};
  assert_null(settings_get(recording_getenv, &env, "EMPTY"));
  assert_null(settings_get(recording_getenv, &env, "BLANK"));
  assert_null(settings_get(recording_getenv, &env, "MISSING"));
  assert_string_equal(settings_get(recording_getenv, &env, "SET"), "value");
  assert_null(settings_get(NULL, NULL, "SET"));
}

static void the_first_set_name_wins(void **state) {
  const char *values[] = {"NEW= ", "OLD=legacy", NULL};
  struct recording_env env = {.values = values};
  static const char *const names[] = {"NEW", "OLD", NULL};
  const char *from = NULL;
  assert_string_equal(settings_first(recording_getenv, &env, names, &from), "legacy");
  assert_string_equal(from, "OLD");
  const char *none[] = {NULL};
  env.values = none;
  assert_null(settings_first(recording_getenv, &env, names, &from));
  assert_string_equal(from, "NEW");
}

static void switches_read_one_vocabulary(void **state) {
  const char *values[] = {"A=On", "B=false ", "C=1", "D=no", "E= ", "F=maybe", NULL};
  struct recording_env env = {.values = values};
  struct error_info err = {0};
  bool v = false;
  assert_int_equal(settings_get_switch(recording_getenv, &env, "A", false, &v, &err), 0);
  assert_true(v);
  assert_int_equal(settings_get_switch(recording_getenv, &env, "B", true, &v, &err), 0);
  assert_false(v);
  assert_int_equal(settings_get_switch(recording_getenv, &env, "C", false, &v, &err), 0);
  assert_true(v);
  assert_int_equal(settings_get_switch(recording_getenv, &env, "D", true, &v, &err), 0);
  assert_false(v);
  assert_int_equal(settings_get_switch(recording_getenv, &env, "E", true, &v, &err), 0);
  assert_true(v); /* blank: the fallback */
  assert_int_equal(settings_get_switch(recording_getenv, &env, "F", true, &v, &err),
                   RESULT_INVALID);
  assert_string_equal(err.field, "F");
  assert_non_null(strstr(err.message, "maybe"));
}

static void the_table_has_unique_names_and_finds_aliases(void **state) {
  assert_true(config_settings_count > 20);
  for (size_t i = 0; i < config_settings_count; i++) {
    assert_non_null(config_settings[i].summary);
    assert_ptr_equal(config_setting_find(config_settings[i].name), &config_settings[i]);
    for (size_t j = i + 1; j < config_settings_count; j++)
      assert_string_not_equal(config_settings[i].name, config_settings[j].name);
  }
  assert_string_equal(config_setting_find("APP_ID")->name, "AZURE_CLIENT_ID");
  assert_string_equal(config_setting_find("FUNCTIONS_HTTPWORKER_PORT")->name,
                      "FUNCTIONS_CUSTOMHANDLER_PORT");
  assert_null(config_setting_find("NOT_A_SETTING"));
}

static void assert_all_in_table(const struct recording_env *env) {
  for (size_t i = 0; i < env->asked_count; i++) {
    if (!config_setting_find(env->asked[i]))
      fail_msg("%s is read but not in config_settings", env->asked[i]);
  }
}

/* Runs every module that reads settings with `values`; returns the names read. */
static void read_everything(struct recording_env *env) {
  struct config cfg;
  struct error_info err;
  if (config_load(&cfg, recording_getenv, env, &err) == RESULT_OK)
    config_cleanup(&cfg);
  struct credential *cred = NULL;
  if (credential_from_env(recording_getenv, env, &cred, &err) == RESULT_OK)
    credential_free(cred);
  struct enricher *aml = NULL;
  if (aml_client_new(NULL, recording_getenv, env, &aml, &err) == RESULT_OK)
    aml->free(aml);
  struct storage_account *account = NULL;
  if (storage_account_from_env(recording_getenv, env, &account, &err) == RESULT_OK)
    storage_account_free(account);
  struct retail_prices *prices = NULL;
  if (retail_prices_new(recording_getenv, env, &prices, &err) == RESULT_OK)
    retail_prices_free(prices);
  struct telemetry_options telemetry;
  if (telemetry_options_init(&telemetry, "key", recording_getenv, env, &err) != RESULT_OK)
    fail_msg("telemetry_options_init: %s", err.message);
}

static void every_setting_a_module_reads_is_in_the_table(void **state) {
  const char *nothing[] = {NULL};
  const char *service_principal[] = {"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c",
                                     "AZURE_CLIENT_SECRET=s", NULL};
  const char *managed_identity[] = {"IDENTITY_ENDPOINT=http://127.0.0.1:1/token",
                                    "IDENTITY_HEADER=h", NULL};
  const char *storage_by_name[] = {"AzureWebJobsStorage__accountName=acct", NULL};
  const char *const *cases[] = {nothing, service_principal, managed_identity,
                                storage_by_name};
  size_t total = 0;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    struct recording_env env = {.values = cases[c]};
    read_everything(&env);
    assert_all_in_table(&env);
    total += env.asked_count;
  }
  assert_true(total > 20); /* the recording saw the reads */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(blank_is_unset_and_leading_blanks_are_skipped),
      cmocka_unit_test(the_first_set_name_wins),
      cmocka_unit_test(switches_read_one_vocabulary),
      cmocka_unit_test(the_table_has_unique_names_and_finds_aliases),
      cmocka_unit_test(every_setting_a_module_reads_is_in_the_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
