/* `handler check`: validates a configuration end to end and says, one line per
 * step, what passed and how to fix what did not.
 *
 * Steps: the settings parse (config, credential, AML client, exporter); for each
 * watched workspace, a token for ARM, the workspace's discovery, and a read of
 * the run history (aml_client_check); ingestion reachable and accepting our key
 * or token (appinsights_exporter_check), with a test item or, with --dry-run,
 * an item the service refuses by design so nothing is stored; the run table of
 * the workspace watch (created if missing, then a probe entity written, read
 * and deleted), or a line saying the watch is off.
 *
 * Threading: single-threaded. */
#ifndef HANDLER_CHECK_H
#define HANDLER_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "base/result.h"
#include "cost/retail_prices.h"
#include "core/config.h"
#include "azure/credential.h"
#include "core/enricher.h"
#include "core/exporter.h"
#include "watch/run_table.h"

struct check_subjects {
  const struct config *config;
  struct credential *credential; /* may be NULL */
  struct enricher *aml;          /* may be NULL (no credential) */
  struct retail_prices *prices;  /* may be NULL (no credential, or HANDLER_COST=off) */
  struct exporter *exporter;     /* console or App Insights */
  bool appinsights;              /* the exporter is the App Insights one */
  bool dry_run;
  int budget_ms;
  struct run_table *runs; /* NULL: no storage account, the watch is off */
};

/* Prints one line per step to `out`; returns the number of failed steps. */
HANDLER_NODISCARD int check_run(const struct check_subjects *subjects, FILE *out);

/* The line for a step: "ok    step" or "FAIL  step: reason -- fix: hint". */
void check_print(FILE *out, const char *step, int result, const char *reason,
                 const char *hint);

#endif
