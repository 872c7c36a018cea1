/* Settings: what users configure in the Function App (README, Configuration),
 * read once at start-up from the environment.
 *
 * config_settings is the one list of every setting the handler reads, with its
 * aliases: `handler --help` prints it and tests check that no module reads a
 * setting it does not hold. Every setting is read with settings_get
 * (base/settings.h), so blank means unset for all of them.
 *
 * config_load() reads through a getenv-like callback so tests can supply their
 * own table. A setting that is present but unusable fails with RESULT_INVALID and
 * `err.field` naming it; main prints that one line and exits. Secrets are kept
 * but never logged (see log_mask).
 *
 * Credentials are read by the credential module, the App Insights connection
 * string is parsed by the exporter, the telemetry and ARM settings by their
 * modules; this module reads the rest and finds which connection string is set.
 *
 * Ownership: the caller owns the struct; config_cleanup() frees it. Read-only
 * after loading, so thread-safe to share. */
#ifndef HANDLER_CONFIG_H
#define HANDLER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"
#include "base/settings.h"

/* One setting the handler reads. */
struct config_setting {
  const char *name;
  const char *aliases[2]; /* older names read when `name` is unset; NULL-padded */
  const char *module;     /* who reads it: "config", "credential", "aml", ...;
                             "host": the Functions host, for our function.json */
  const char *summary;    /* one line, for `handler --help` */
  bool secret;            /* the value is a secret: never logged or printed */
};

/* Every setting the handler reads, in the order of the README's table:
 *   for (size_t i = 0; i < config_settings_count; i++) config_settings[i].name */
extern const struct config_setting config_settings[];
extern const size_t config_settings_count;

/* The entry whose name or one of whose aliases is `name`, or NULL. */
const struct config_setting *config_setting_find(const char *name);

struct config {
  uint16_t port; /* FUNCTIONS_CUSTOMHANDLER_PORT / FUNCTIONS_HTTPWORKER_PORT; 0 = unset */
  const char *port_setting; /* the name the port came from, for messages */
  char *app_root;           /* FUNCTIONS_APP_ROOT_PATH, else "." */

  /* Watched workspaces as lower-cased resource ids; none means every workspace. */
  char **workspaces;
  size_t workspace_count;

  char *appinsights_connection_string; /* NULL: console exporter */
  const char *appinsights_setting;     /* which name it came from */
  char *appinsights_authentication_string;

  int log_level;            /* HANDLER_LOG_LEVEL, default info */
  int invocation_budget_ms; /* HANDLER_INVOCATION_BUDGET_MS, default 20000 */

  /* The workspace watch (its storage account is read by azure/storage_account). */
  char *runs_table;          /* HANDLER_RUNS_TABLE, default "amlruns" */
  int stuck_waiting_minutes; /* HANDLER_STUCK_WAITING_MINUTES, default 60; 0 = off */
  int stuck_running_hours;   /* HANDLER_STUCK_RUNNING_HOURS, default 24; 0 = off */
  int watch_max_checks;      /* HANDLER_WATCH_MAX_CHECKS: run history reads per tick */
  bool cost; /* HANDLER_COST: on (default) or off; the Retail Prices API endpoint
              * (HANDLER_RETAIL_PRICES_ENDPOINT) is read by cost/retail_prices */
};

HANDLER_NODISCARD int config_load(struct config *out, settings_getenv_fn getenv_fn,
                                  void *ctx, struct error_info *err);
void config_cleanup(struct config *cfg);

/* True when events of this workspace are to be recorded (case-insensitive). */
bool config_watches(const struct config *cfg, const char *subscription_id,
                    const char *resource_group, const char *workspace);

/* Parses a TCP port ("1".."65535"); false otherwise. */
bool config_parse_port(const char *text, uint16_t *out_port);

#endif
