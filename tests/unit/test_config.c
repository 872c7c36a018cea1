/* Unit tests of config: ports, watched workspaces, and the one-line errors that
 * name the setting at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"

/* A getenv over a NULL-terminated list of "NAME=value" strings. */
static const char *table_getenv(void *ctx, const char *name) {
  size_t n = strlen(name);
  for (const char *const *e = ctx; *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

static int load(const char *const *env, struct config *cfg, struct error_info *err) {
  return config_load(cfg, table_getenv, (void *)env, err);
}

static void defaults_without_settings(void **state) {
  const char *env[] = {NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_OK);
  assert_int_equal(cfg.port, 0);
  assert_string_equal(cfg.app_root, ".");
  assert_int_equal(cfg.workspace_count, 0);
  assert_true(config_watches(&cfg, "any", "any", "any"));
  assert_null(cfg.appinsights_connection_string);
  config_cleanup(&cfg);
}

static void reads_ports_with_fallback(void **state) {
  const char *legacy[] = {"FUNCTIONS_HTTPWORKER_PORT=7071", NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(legacy, &cfg, &err), RESULT_OK);
  assert_int_equal(cfg.port, 7071);
  config_cleanup(&cfg);

  const char *both[] = {"FUNCTIONS_HTTPWORKER_PORT=7071",
                        "FUNCTIONS_CUSTOMHANDLER_PORT=8080", NULL};
  assert_int_equal(load(both, &cfg, &err), RESULT_OK);
  assert_int_equal(cfg.port, 8080);
  assert_string_equal(cfg.port_setting, "FUNCTIONS_CUSTOMHANDLER_PORT");
  config_cleanup(&cfg);

  const char *bad[] = {"FUNCTIONS_CUSTOMHANDLER_PORT=70000", NULL};
  assert_int_equal(load(bad, &cfg, &err), RESULT_INVALID);
  assert_string_equal(err.field, "FUNCTIONS_CUSTOMHANDLER_PORT");
  uint16_t port;
  assert_false(config_parse_port("12a", &port));
  assert_false(config_parse_port("-1", &port));
  assert_false(config_parse_port("0", &port));
  assert_true(config_parse_port("65535", &port));
}

static void watches_the_sample_workspace_case_insensitively(void **state) {
  const char *env[] = {"SUBSCRIPTION_ID=Sub1", "AML_RESOURCE_GROUP=RG",
                       "AML_WORKSPACE_NAME=ws", NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_OK);
  assert_true(config_watches(&cfg, "sub1", "rg", "WS"));
  assert_false(config_watches(&cfg, "sub1", "rg", "other"));
  config_cleanup(&cfg);
}

static void half_a_workspace_names_the_missing_setting(void **state) {
  const char *env[] = {"SUBSCRIPTION_ID=s", "AML_WORKSPACE_NAME=ws", NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_INVALID);
  assert_string_equal(err.field, "AML_RESOURCE_GROUP");
  assert_non_null(strstr(err.message, "AML_RESOURCE_GROUP is not set"));
}

static void reads_a_workspace_list(void **state) {
  const char *env[] = {
      "AML_WORKSPACES= /subscriptions/a/resourceGroups/g/providers/"
      "Microsoft.MachineLearningServices/workspaces/w1 ,,"
      "/subscriptions/b/resourcegroups/h/providers/microsoft.machinelearningservices/"
      "workspaces/w2",
      NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_OK);
  assert_int_equal(cfg.workspace_count, 2);
  assert_true(config_watches(&cfg, "a", "g", "w1"));
  assert_true(config_watches(&cfg, "B", "H", "W2"));
  assert_false(config_watches(&cfg, "a", "g", "w2"));
  config_cleanup(&cfg);

  const char *bad[] = {"AML_WORKSPACES=/subscriptions/a/resourceGroups/g", NULL};
  assert_int_equal(load(bad, &cfg, &err), RESULT_INVALID);
  assert_string_equal(err.field, "AML_WORKSPACES");
}

static void blank_settings_count_as_unset(void **state) {
  const char *env[] = {"SUBSCRIPTION_ID=", "AML_RESOURCE_GROUP=  ", "AML_WORKSPACE_NAME=",
                       "APPLICATIONINSIGHTS_CONNECTION_STRING=", NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_OK);
  assert_int_equal(cfg.workspace_count, 0);
  assert_null(cfg.appinsights_connection_string);
  config_cleanup(&cfg);
}

static void prefers_the_standard_connection_string_name(void **state) {
  const char *env[] = {"APPINSIGHTS_CONNECTION_STRING=old",
                       "APPLICATIONINSIGHTS_CONNECTION_STRING=new", NULL};
  struct config cfg;
  struct error_info err;
  assert_int_equal(load(env, &cfg, &err), RESULT_OK);
  assert_string_equal(cfg.appinsights_connection_string, "new");
  config_cleanup(&cfg);
  const char *old[] = {"APPINSIGHTS_CONNECTION_STRING=old", NULL};
  assert_int_equal(load(old, &cfg, &err), RESULT_OK);
  assert_string_equal(cfg.appinsights_setting, "APPINSIGHTS_CONNECTION_STRING");
  config_cleanup(&cfg);
}

static void refuses_bad_log_level_and_budget(void **state) {
  struct config cfg;
  struct error_info err;
  const char *level[] = {"HANDLER_LOG_LEVEL=chatty", NULL};
  assert_int_equal(load(level, &cfg, &err), RESULT_INVALID);
  assert_string_equal(err.field, "HANDLER_LOG_LEVEL");
  const char *budget[] = {"HANDLER_INVOCATION_BUDGET_MS=5s", NULL};
  assert_int_equal(load(budget, &cfg, &err), RESULT_INVALID);
  assert_string_equal(err.field, "HANDLER_INVOCATION_BUDGET_MS");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_without_settings),
      cmocka_unit_test(reads_ports_with_fallback),
      cmocka_unit_test(watches_the_sample_workspace_case_insensitively),
      cmocka_unit_test(half_a_workspace_names_the_missing_setting),
      cmocka_unit_test(reads_a_workspace_list),
      cmocka_unit_test(blank_settings_count_as_unset),
      cmocka_unit_test(prefers_the_standard_connection_string_name),
      cmocka_unit_test(refuses_bad_log_level_and_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
