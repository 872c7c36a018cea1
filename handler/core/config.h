/* Settings: what users configure in the Function App (INTERFACE.md), read once
 * at start-up from the environment.
 *
 * config_load() reads through a getenv-like callback so tests can supply their
 * own table. A setting that is present but unusable fails with RESULT_INVALID and
 * `err.field` naming it; main prints that one line and exits. Secrets are kept
 * but never logged (see log_mask).
 *
 * Credentials are read by the credential module, the App Insights connection
 * string is parsed by the exporter; this module only finds which one is set.
 *
 * Ownership: the caller owns the struct; config_cleanup() frees it. Read-only
 * after loading, so thread-safe to share. */
#ifndef HANDLER_CONFIG_H
#define HANDLER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

typedef const char *(*config_getenv_fn)(void *ctx, const char *name);

/* getenv() as a config_getenv_fn (ctx unused). */
const char *config_process_env(void *ctx, const char *name);

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
};

int config_load(struct config *out, config_getenv_fn getenv_fn, void *ctx,
                struct error_info *err);
void config_cleanup(struct config *cfg);

/* True when events of this workspace are to be recorded (case-insensitive). */
bool config_watches(const struct config *cfg, const char *subscription_id,
                    const char *resource_group, const char *workspace);

/* Parses a TCP port ("1".."65535"); false otherwise. */
bool config_parse_port(const char *text, uint16_t *out_port);

#endif
