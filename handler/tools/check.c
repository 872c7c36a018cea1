/* `handler check`; see check.h. */
#include "tools/check.h"

#include <stdlib.h>
#include <string.h>

#include "aml/aml_client.h"
#include "export/appinsights.h"
#include "core/resource_path.h"
#include "base/crypto.h"
#include "base/timeutil.h"

struct tally {
  FILE *out;
  int failed;
};

void check_print(FILE *out, const char *step, int result, const char *reason,
                 const char *hint) {
  if (result == RESULT_OK)
    fprintf(out, "ok    %s\n", step);
  else
    fprintf(out, "FAIL  %s: %s -- fix: %s\n", step,
            reason && *reason ? reason : result_str(result), hint);
}

static void report(void *ctx, const char *step, int result, const char *reason,
                   const char *hint) {
  struct tally *t = ctx;
  check_print(t->out, step, result, reason, hint);
  t->failed += result != RESULT_OK;
}

static void check_workspaces(const struct check_subjects *s, struct tally *t) {
  const struct config *cfg = s->config;
  if (!s->aml) {
    fprintf(t->out,
            "skip  run details: no Azure credential is configured, so records carry "
            "only what events say -- set a credential (README, Configuration)\n");
    return;
  }
  if (cfg->workspace_count == 0) {
    fprintf(t->out, "skip  workspace access: no workspace is configured to check -- set "
                    "SUBSCRIPTION_ID, AML_RESOURCE_GROUP and AML_WORKSPACE_NAME, or "
                    "AML_WORKSPACES\n");
    return;
  }
  for (size_t i = 0; i < cfg->workspace_count; i++) {
    char *sub, *rg, *ws;
    if (workspace_id_parse(cfg->workspaces[i], &sub, &rg, &ws) != RESULT_OK)
      continue; /* config stored only ids it could parse */
    fprintf(t->out, "--    workspace %s (resource group %s, subscription %s)\n", ws, rg,
            sub);
    aml_client_check(s->aml, sub, rg, ws, time_mono_ms() + s->budget_ms, report, t);
    free(sub);
    free(rg);
    free(ws);
  }
}

static void check_prices(const struct check_subjects *s, struct tally *t) {
  if (!s->prices) {
    fprintf(t->out, "skip  Retail Prices API: no cost estimate (HANDLER_COST=off, or no "
                    "credential for run details)\n");
    return;
  }
  struct error_info err = {0};
  int r = retail_prices_check(s->prices, time_mono_ms() + s->budget_ms, &err);
  report(t, "Retail Prices API answers (cost estimate)", r, err.message,
         "allow outbound HTTPS to prices.azure.com (or HANDLER_RETAIL_PRICES_ENDPOINT); "
         "runs are still recorded without it, with cost_unknown_reason, and "
         "HANDLER_COST=off turns the estimate off");
}

static void check_ingestion(const struct check_subjects *s, struct tally *t) {
  if (!s->appinsights) {
    fprintf(t->out, "skip  ingestion: no App Insights connection string, records go to "
                    "stdout -- set APPLICATIONINSIGHTS_CONNECTION_STRING\n");
    return;
  }
  struct error_info err = {0};
  int r = appinsights_exporter_check(s->exporter, s->dry_run,
                                     time_mono_ms() + s->budget_ms, &err);
  report(t,
         s->dry_run ? "ingestion reachable (dry run)" : "ingestion accepts a test item",
         r, err.message,
         "check the connection string's IngestionEndpoint and InstrumentationKey; with "
         "APPLICATIONINSIGHTS_AUTHENTICATION_STRING the identity needs the Monitoring "
         "Metrics Publisher role on the App Insights resource");
}

/* Create if missing, then write, read and delete a probe entity. */
static void check_run_table(const struct check_subjects *s, struct tally *t) {
  if (!s->runs) {
    fprintf(t->out, "skip  workspace watch: off, no storage account configured -- set "
                    "AzureWebJobsStorage (or AzureWebJobsStorage__accountName) to watch "
                    "for stuck runs\n");
    return;
  }
  struct table_client *tc = run_table_client(s->runs);
  int64_t deadline = time_mono_ms() + s->budget_ms;
  const char *hint = "check AzureWebJobsStorage (the account key), or give the identity "
                     "the Storage Table Data Contributor role on the account";
  struct error_info err = {0};
  char step[160], probe[37];
  snprintf(step, sizeof step, "run table %s exists (created if missing)",
           table_client_table(tc));
  int r = table_client_create_table(tc, deadline, &err);
  report(t, step, r, err.message, hint);
  if (r != RESULT_OK)
    return;
  if (crypto_uuid4(probe) != RESULT_OK) {
    report(t, "run table write, read and delete of a probe entity", RESULT_NOMEM,
           "no random id for the probe", hint);
    return;
  }
  json_t *entity = json_pack("{s:s, s:s, s:b}", "PartitionKey", "handler-check", "RowKey",
                             probe, "Open", 0);
  json_t *read = NULL;
  r = table_client_insert(tc, entity, deadline, NULL, &err);
  if (r == RESULT_OK)
    r = table_client_get(tc, "handler-check", probe, deadline, &read, &err);
  if (r == RESULT_OK)
    r = table_client_delete(tc, "handler-check", probe, "*", deadline, &err);
  report(t, "run table write, read and delete of a probe entity", r, err.message, hint);
  json_decref(entity);
  json_decref(read);
}

int check_run(const struct check_subjects *s, FILE *out) {
  struct tally t = {.out = out};
  check_print(out, "settings", RESULT_OK, NULL, NULL);
  check_workspaces(s, &t);
  check_prices(s, &t);
  check_ingestion(s, &t);
  check_run_table(s, &t);
  fprintf(out, "%s\n", t.failed ? "check: some steps failed" : "check: all steps passed");
  return t.failed;
}
