/* Settings from the environment; see config.h. */
#include "core/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "core/resource_path.h"

/* Every setting, in the README's order: name, aliases, reader, summary, secret. */
/* clang-format off */
const struct config_setting config_settings[] = {
    {"FUNCTIONS_CUSTOMHANDLER_PORT", {"FUNCTIONS_HTTPWORKER_PORT"}, "config",
     "port on 127.0.0.1; set by the Functions host", false},
    {"FUNCTIONS_APP_ROOT_PATH", {NULL}, "config",
     "the function app folder; set by the Functions host (default: .)", false},
    {"SUBSCRIPTION_ID", {NULL}, "config",
     "the watched workspace's subscription (with the next two)", false},
    {"AML_RESOURCE_GROUP", {NULL}, "config",
     "the watched workspace's resource group", false},
    {"AML_WORKSPACE_NAME", {NULL}, "config",
     "the watched workspace's name", false},
    {"AML_WORKSPACES", {NULL}, "config",
     "comma-separated workspace resource ids to watch", false},
    {"AZURE_TENANT_ID", {"TENANT_ID"}, "credential",
     "Entra ID tenant of the service principal", false},
    {"AZURE_CLIENT_ID", {"APP_ID"}, "credential",
     "service principal, or user-assigned managed identity", false},
    {"AZURE_CLIENT_SECRET", {"SERVICE_PRINCIPAL_PASSWORD"}, "credential",
     "service principal secret", true},
    {"AZURE_CLIENT_CERTIFICATE_PATH", {NULL}, "credential",
     "service principal certificate (PEM with the key)", false},
    {"AZURE_CLIENT_CERTIFICATE_PASSWORD", {NULL}, "credential",
     "password of the certificate's key", true},
    {"AZURE_FEDERATED_TOKEN_FILE", {NULL}, "credential",
     "workload identity federation token file", false},
    {"IDENTITY_ENDPOINT", {NULL}, "credential",
     "managed identity; set by the platform", false},
    {"IDENTITY_HEADER", {NULL}, "credential",
     "managed identity; set by the platform", true},
    {"AZURE_AUTHORITY_HOST", {NULL}, "credential",
     "Entra ID authority (default https://login.microsoftonline.com/)", false},
    {"AZURE_RESOURCE_MANAGER_ENDPOINT", {NULL}, "aml",
     "ARM endpoint (default https://management.azure.com)", false},
    {"APPLICATIONINSIGHTS_CONNECTION_STRING", {"APPINSIGHTS_CONNECTION_STRING"}, "config",
     "where telemetry goes; unset: JSON lines on stdout", true},
    {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING", {NULL}, "config",
     "Authorization=AAD[;ClientId=<id>]: ingestion with Entra ID", false},
    {"SSL_CERT_FILE", {NULL}, "main",
     "CA bundle to trust instead of the system's", false},
    {"HANDLER_LOG_LEVEL", {NULL}, "config",
     "debug, info (default), warn, error, off", false},
    {"HANDLER_INVOCATION_BUDGET_MS", {NULL}, "config",
     "time budget of one invocation in ms (default 20000)", false},
    {"HANDLER_LEGACY_TRACES", {NULL}, "telemetry",
     "true: also write the original sample's trace per run", false},
    {"HANDLER_COST", {NULL}, "config",
     "on (default) or off: estimate each finished run's compute cost", false},
    {"HANDLER_RETAIL_PRICES_ENDPOINT", {NULL}, "cost",
     "Azure Retail Prices API base (default https://prices.azure.com)", false},
    {"WEBSITE_SITE_NAME", {NULL}, "telemetry",
     "telemetry cloud role; set by the platform", false},
    {"WEBSITE_INSTANCE_ID", {NULL}, "telemetry",
     "telemetry cloud role instance; set by the platform", false},
    {"AzureWebJobsStorage", {NULL}, "storage",
     "storage account of the run table (workspace watch); unset: watch off", true},
    {"AzureWebJobsStorage__accountName", {NULL}, "storage",
     "storage account by name, Entra ID auth (workspace watch)", false},
    {"AzureWebJobsStorage__tableServiceUri", {NULL}, "storage",
     "Table endpoint, Entra ID auth (workspace watch)", false},
    {"HANDLER_RUNS_TABLE", {NULL}, "config",
     "the run table's name (default amlruns)", false},
    {"HANDLER_STUCK_WAITING_MINUTES", {NULL}, "config",
     "a run waiting longer is stuck (default 60; 0 off)", false},
    {"HANDLER_STUCK_RUNNING_HOURS", {NULL}, "config",
     "a run Running longer is stuck (default 24; 0 off)", false},
    {"HANDLER_WATCH_MAX_CHECKS", {NULL}, "config",
     "run history reads per watch tick (default 100)", false},
    {"HANDLER_WATCH_SCHEDULE", {NULL}, "host",
     "the watch's timer schedule (NCRONTAB, default 0 */5 * * * *); "
     "resolved by the Functions host, which needs it set", false},
};
/* clang-format on */
const size_t config_settings_count = sizeof config_settings / sizeof *config_settings;

const struct config_setting *config_setting_find(const char *name) {
  for (size_t i = 0; i < config_settings_count; i++) {
    const struct config_setting *s = &config_settings[i];
    if (strcmp(s->name, name) == 0)
      return s;
    for (size_t a = 0; a < 2 && s->aliases[a]; a++)
      if (strcmp(s->aliases[a], name) == 0)
        return s;
  }
  return NULL;
}

/* A setting of the table by its name, else its aliases; *out_name says which. */
static const char *setting_with_aliases(settings_getenv_fn getenv_fn, void *ctx,
                                        const char *name, const char **out_name) {
  const struct config_setting *s = config_setting_find(name);
  const char *names[4] = {name, s ? s->aliases[0] : NULL, s ? s->aliases[1] : NULL, NULL};
  return settings_first(getenv_fn, ctx, names, out_name);
}

bool config_parse_port(const char *text, uint16_t *out_port) {
  if (!text || !*text)
    return false;
  char *end;
  long v = strtol(text, &end, 10);
  if (*end != '\0' || !isdigit((unsigned char)*text) || v < 1 || v > 65535)
    return false;
  *out_port = (uint16_t)v;
  return true;
}

/* The canonical (lower-case) resource id of a workspace. */
static char *workspace_key(const char *sub, const char *rg, const char *ws) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "/subscriptions/%s/resourcegroups/%s/providers/"
                   "microsoft.machinelearningservices/workspaces/%s",
                   sub, rg, ws);
  if (n < 0 || (size_t)n >= sizeof buf)
    return NULL;
  for (char *p = buf; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  return strdup(buf);
}

static int add_workspace(struct config *cfg, const char *sub, const char *rg,
                         const char *ws) {
  char **grown = realloc(cfg->workspaces, (cfg->workspace_count + 1) * sizeof *grown);
  if (!grown)
    return RESULT_NOMEM;
  cfg->workspaces = grown;
  if (!(grown[cfg->workspace_count] = workspace_key(sub, rg, ws)))
    return RESULT_NOMEM;
  cfg->workspace_count++;
  return RESULT_OK;
}

static int load_workspaces(struct config *cfg, settings_getenv_fn getenv_fn, void *ctx,
                           struct error_info *err) {
  const char *list = settings_get(getenv_fn, ctx, "AML_WORKSPACES");
  if (list) {
    char *copy = strdup(list), *save = NULL;
    if (!copy)
      return RESULT_NOMEM;
    int r = RESULT_OK;
    for (char *item = strtok_r(copy, ",", &save); item && r == RESULT_OK;
         item = strtok_r(NULL, ",", &save)) {
      while (isspace((unsigned char)*item))
        item++;
      char *end = item + strlen(item);
      while (end > item && isspace((unsigned char)end[-1]))
        *--end = '\0';
      if (!*item)
        continue;
      char *sub, *rg, *ws;
      if (workspace_id_parse(item, &sub, &rg, &ws) != RESULT_OK) {
        r = error_set(
            err, RESULT_INVALID, "AML_WORKSPACES",
            "\"%.200s\" is not a workspace resource id (/subscriptions/<id>/"
            "resourceGroups/<group>/providers/Microsoft.MachineLearningServices/"
            "workspaces/<name>)",
            item);
        break;
      }
      r = add_workspace(cfg, sub, rg, ws);
      free(sub);
      free(rg);
      free(ws);
    }
    free(copy);
    if (r != RESULT_OK)
      return r;
  }

  const char *names[3] = {"SUBSCRIPTION_ID", "AML_RESOURCE_GROUP", "AML_WORKSPACE_NAME"};
  const char *values[3];
  int given = 0;
  for (int i = 0; i < 3; i++)
    given += (values[i] = settings_get(getenv_fn, ctx, names[i])) != NULL;
  if (given == 0)
    return RESULT_OK;
  if (given < 3) {
    for (int i = 0; i < 3; i++)
      if (!values[i])
        return error_set(err, RESULT_INVALID, names[i],
                         "%s is not set, but %s, %s and %s name the watched workspace "
                         "together",
                         names[i], names[0], names[1], names[2]);
  }
  for (int i = 0; i < 3; i++)
    if (strchr(values[i], '/'))
      return error_set(err, RESULT_INVALID, names[i], "%s must not contain '/'",
                       names[i]);
  return add_workspace(cfg, values[0], values[1], values[2]);
}

/* An integer setting in [min, max], `fallback` when unset. */
static int whole_number(settings_getenv_fn getenv_fn, void *ctx, const char *name,
                        int fallback, int min, int max, int *out,
                        struct error_info *err) {
  const char *v = settings_get(getenv_fn, ctx, name);
  *out = fallback;
  if (!v)
    return RESULT_OK;
  char *end;
  long n = strtol(v, &end, 10);
  if (end == v || *end || n < min || n > max)
    return error_set(err, RESULT_INVALID, name, "%s must be a whole number from %d to %d",
                     name, min, max);
  *out = (int)n;
  return RESULT_OK;
}

int config_load(struct config *out, settings_getenv_fn getenv_fn, void *ctx,
                struct error_info *err) {
  memset(out, 0, sizeof *out);
  out->log_level = LOG_INFO;
  out->invocation_budget_ms = 20000;
  int r = RESULT_NOMEM;

  const char *port_name;
  const char *port =
      setting_with_aliases(getenv_fn, ctx, "FUNCTIONS_CUSTOMHANDLER_PORT", &port_name);
  if (port && !config_parse_port(port, &out->port)) {
    r = error_set(err, RESULT_INVALID, port_name,
                  "%s is \"%.20s\", not a port number (1-65535)", port_name, port);
    goto fail;
  }
  if (port)
    out->port_setting = port_name;

  const char *root = settings_get(getenv_fn, ctx, "FUNCTIONS_APP_ROOT_PATH");
  if (!(out->app_root = strdup(root ? root : ".")))
    goto nomem;

  if ((r = load_workspaces(out, getenv_fn, ctx, err)) == RESULT_NOMEM)
    goto nomem;
  if (r != RESULT_OK)
    goto fail;

  const char *ai_name;
  const char *ai = setting_with_aliases(
      getenv_fn, ctx, "APPLICATIONINSIGHTS_CONNECTION_STRING", &ai_name);
  if (ai && !(out->appinsights_connection_string = strdup(ai)))
    goto nomem;
  if (ai)
    out->appinsights_setting = ai_name;
  const char *auth =
      settings_get(getenv_fn, ctx, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING");
  if (auth && !(out->appinsights_authentication_string = strdup(auth)))
    goto nomem;

  const char *level = settings_get(getenv_fn, ctx, "HANDLER_LOG_LEVEL");
  if (level && (out->log_level = log_level_parse(level)) < 0) {
    r = error_set(err, RESULT_INVALID, "HANDLER_LOG_LEVEL",
                  "HANDLER_LOG_LEVEL is \"%.20s\"; use debug, info, warn, error or off",
                  level);
    goto fail;
  }
  const char *budget = settings_get(getenv_fn, ctx, "HANDLER_INVOCATION_BUDGET_MS");
  if (budget) {
    char *end;
    long v = strtol(budget, &end, 10);
    if (*end || v < 100 || v > 600000) {
      r = error_set(
          err, RESULT_INVALID, "HANDLER_INVOCATION_BUDGET_MS",
          "HANDLER_INVOCATION_BUDGET_MS must be a number of milliseconds from 100 "
          "to 600000");
      goto fail;
    }
    out->invocation_budget_ms = (int)v;
  }
  const char *table = settings_get(getenv_fn, ctx, "HANDLER_RUNS_TABLE");
  if (!(out->runs_table = strdup(table ? table : "amlruns")))
    goto nomem;
  if ((r = whole_number(getenv_fn, ctx, "HANDLER_STUCK_WAITING_MINUTES", 60, 0, 525600,
                        &out->stuck_waiting_minutes, err)) != RESULT_OK ||
      (r = whole_number(getenv_fn, ctx, "HANDLER_STUCK_RUNNING_HOURS", 24, 0, 8760,
                        &out->stuck_running_hours, err)) != RESULT_OK ||
      (r = whole_number(getenv_fn, ctx, "HANDLER_WATCH_MAX_CHECKS", 100, 1, 10000,
                        &out->watch_max_checks, err)) != RESULT_OK)
    goto fail;
  if ((r = settings_get_switch(getenv_fn, ctx, "HANDLER_COST", true, &out->cost, err)) !=
      RESULT_OK)
    goto fail;
  return RESULT_OK;
nomem:
  r = error_set(err, RESULT_NOMEM, "", "out of memory reading the settings");
fail:
  config_cleanup(out);
  return r;
}

void config_cleanup(struct config *cfg) {
  for (size_t i = 0; i < cfg->workspace_count; i++)
    free(cfg->workspaces[i]);
  free(cfg->workspaces);
  free(cfg->app_root);
  free(cfg->appinsights_connection_string);
  free(cfg->appinsights_authentication_string);
  free(cfg->runs_table);
  memset(cfg, 0, sizeof *cfg);
}

bool config_watches(const struct config *cfg, const char *subscription_id,
                    const char *resource_group, const char *workspace) {
  if (cfg->workspace_count == 0)
    return true;
  char *key = workspace_key(subscription_id, resource_group, workspace);
  bool found = false;
  for (size_t i = 0; key && i < cfg->workspace_count && !found; i++)
    found = strcmp(cfg->workspaces[i], key) == 0;
  free(key);
  return found;
}
