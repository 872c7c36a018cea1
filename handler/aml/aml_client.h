/* The AML client: completes a run record from the AML REST API.
 *
 * It implements the enricher interface (enricher.h). For a run event it finds
 * the workspace's regional API through ARM and the discovery document (cached
 * per workspace), reads the run's Run document (and its RunDetails only when
 * the Run lacks a runDefinition), the parent pipeline run of a
 * step (cached, so a pipeline of many steps costs one lookup), and for a
 * completed run its scalar metrics (last value of each, at most
 * RECORD_MAX_METRICS). The mapping of those documents is run_details.h. With
 * aml_client_enable_cost(), a finished run also gets its cost estimate
 * (run_cost.h: the compute read through ARM, cached; a pipeline's step list;
 * the Retail Prices API), within at most half the time left and
 * AML_CLIENT_COST_MAX_MS, and never at the price of the event.
 *
 * Outcomes (the enricher contract):
 *   - RESULT_OK with `enrichment` = "ok": the record was completed;
 *   - RESULT_OK with `enrichment` = a short reason: the details cannot be had
 *     for a reason redelivery will not fix: run or workspace not found (404),
 *     forbidden (403), another 4xx, or a discovery/API URL that is not https;
 *   - RESULT_DENIED (err filled): the credential was refused (by Entra ID, or
 *     401 from ARM or AML). The invocation fails, the log says which setting to
 *     check, and Event Grid keeps delivering the events, so none is recorded
 *     without details once the credential is fixed (within Event Grid's 24 h);
 *   - RESULT_TRANSIENT / RESULT_TIMEOUT (err filled): network failures, 408,
 *     429 and 5xx after http_client_send_retry()'s retries, or a token service
 *     that failed in a way that may pass: the invocation fails and Event Grid
 *     delivers the event again.
 * A failure to read the Run, the parent run or the metrics never loses the
 * event: it is logged and the record keeps what it has.
 *
 * The bearer token is for ARM: scope `{AZURE_RESOURCE_MANAGER_ENDPOINT}/.default`
 * when the endpoint is a cloud's ARM host (`https://management.<suffix>`, the
 * sovereign clouds), else CREDENTIAL_SCOPE_ARM_DEFAULT (an endpoint elsewhere, such
 * as a proxy or a local stand-in, fronts public ARM). It is sent
 * to the ARM endpoint and to the discovered API only, and only over https (or
 * http to a loopback host, for local stand-ins); the discovery document itself
 * is read without it. Tokens never reach a log line.
 *
 * Threading: enrich() is thread-safe; the caches have their own lock and are
 * single-flight (concurrent first events of a workspace or pipeline share one
 * lookup). Ownership: the client borrows `cred`, which must outlive it; free it
 * with client->free(client). */
#ifndef HANDLER_AML_CLIENT_H
#define HANDLER_AML_CLIENT_H

#include <stdint.h>

#include "azure/credential.h"
#include "core/enricher.h"
#include "base/jsonx.h"
#include "cost/retail_prices.h"
#include "base/result.h"
#include "base/settings.h"

/* Size of the parent pipeline run cache (least recently used entries go). */
#define AML_CLIENT_PARENT_CACHE 256
/* The most time the cost estimate of one event may take. */
#define AML_CLIENT_COST_MAX_MS 5000
/* Size of the workspace discovery cache. */
#define AML_CLIENT_WORKSPACE_CACHE 64
/* Pages read of one paged answer (metric list, one metric's values) at most. */
#define AML_CLIENT_MAX_PAGES 20

/* Counters for benchmarks and tests (monotonic since aml_client_new). */
struct aml_client_stats {
  uint64_t enrich_calls;         /* enrich() calls for run events */
  uint64_t discovery_requests;   /* ARM workspace + discovery document requests */
  uint64_t discovery_cache_hits; /* workspace API found in the cache */
  uint64_t run_requests;         /* RunDetails and Run requests (parents too) */
  uint64_t parent_lookups;       /* parent pipeline runs fetched */
  uint64_t parent_cache_hits;    /* parent pipeline run found in the cache */
  uint64_t metric_requests;      /* metrics list and full requests */
  uint64_t permanent_failures;   /* records acknowledged without details */
  uint64_t transient_failures;   /* enrich() calls that asked for redelivery */
  uint64_t compute_reads;        /* ARM compute reads (cost estimate) */
  uint64_t compute_cache_hits;   /* computes found in the cache */
  uint64_t step_list_requests;   /* pipeline step list pages read (cost estimate) */
};

/* Reads AZURE_RESOURCE_MANAGER_ENDPOINT through getenv_fn (default
 * https://management.azure.com; trailing slashes dropped; must be https, or
 * http to a loopback host, else RESULT_INVALID naming the setting). `cred` is
 * borrowed. On success *out is the enricher (name "aml"). */
HANDLER_NODISCARD int aml_client_new(struct credential *cred,
                                     settings_getenv_fn getenv_fn, void *ctx,
                                     struct enricher **out, struct error_info *err);

/* Turns the cost estimate on, with `prices` (borrowed; it must outlive the
 * client). Call before any enrich(); no effect on another enricher. */
void aml_client_enable_cost(struct enricher *client, struct retail_prices *prices);

/* Counters of a client made by aml_client_new() (zero for another enricher).
 * Thread-safe. */
void aml_client_get_stats(const struct enricher *client, struct aml_client_stats *out);

/* The workspace watch's question: the run's Run document as run history has it
 * now (one GET, after the cached discovery). RESULT_OK with *out_run (new
 * reference); RESULT_NOTFOUND when run history answers 404; otherwise the
 * outcomes of enrich() (transient, denied, permanent) with `err` filled.
 * Thread-safe. */
int aml_client_get_run(struct enricher *client, const char *subscription_id,
                       const char *resource_group, const char *workspace,
                       const char *experiment_id, const char *run_id, int64_t deadline_ms,
                       json_t **out_run, struct error_info *err);

/* One step of `handler check`: what was checked, its result, why it failed (may
 * be empty) and what to do about it. */
typedef void (*aml_check_report_fn)(void *ctx, const char *step, int result,
                                    const char *reason, const char *hint);

/* For `handler check`: a token for ARM, the workspace's discovery, and a read of
 * the run history (of a run id that cannot exist, so 404 is success), each
 * reported through `report`. Returns RESULT_OK when all passed. */
int aml_client_check(struct enricher *client, const char *subscription_id,
                     const char *resource_group, const char *workspace,
                     int64_t deadline_ms, aml_check_report_fn report, void *ctx);

#endif
