/* The cost of a finished AML run: which VM, how many nodes, what price.
 *
 * For a run (a step or a run outside any pipeline) the Run document says where
 * it ran and on how many nodes (the members it reads are in
 * run_details_select, which the AML client parses the Run with); a named compute is read
 * through ARM (compute.h), serverless compute is described by the Run itself; the price
 * is the Retail Prices API's (cost/retail_prices.h) and the arithmetic cost.h's. For a
 * pipeline the step list is read once (`GET {P}/runs/{id}/children`, paged, nested
 * pipelines followed two levels down, at most RUN_COST_MAX_STEPS steps) and the
 * pipeline's cost is the sum of its steps' costs.
 *
 * What is priced, and what is left out with a reason in cost_unknown_reason
 * (docs/records.md "Cost"):
 *   - AmlCompute clusters: the cluster's VM size and priority (Low Priority
 *     priced at the Low Priority, else Spot, meter), the run's node count
 *     (compute.instanceCount, else computeRequest.nodeCount, else
 *     runDefinition.nodeCount); Windows clusters are left out (the Linux price
 *     would be wrong);
 *   - compute instances: the instance's VM size, one node, dedicated;
 *   - serverless compute: the Run's compute.vmSize (else instanceType),
 *     compute.region and compute.priority (Dedicated when absent);
 *   - local runs, attached Kubernetes / AKS, Databricks, HDInsight, attached
 *     VMs, Synapse and any other type: left out, their VMs are not known per
 *     run (or cost nothing in Azure);
 *   - a reused pipeline step (properties azureml.isreused = true) used no
 *     compute: cost 0;
 *   - a pipeline: the sum over its steps when every step that ran is priced,
 *     else left out, naming how many steps lack a price and why the first does;
 *     a pipeline inside a pipeline is left out (its steps count in the outer
 *     pipeline's sum and carry their own cost).
 * Nothing here fails an invocation: every failure becomes the reason.
 *
 * Threading: thread-safe (the readers and the price cache have their own
 * locks). Ownership: the env's members are borrowed for the call. */
#ifndef HANDLER_RUN_COST_H
#define HANDLER_RUN_COST_H

#include <stdint.h>

#include "aml/compute.h"
#include "base/lookup_cache.h"
#include "base/jsonx.h"
#include "core/record.h"
#include "cost/retail_prices.h"

#define RUN_COST_MAX_STEPS 1000
#define RUN_COST_MAX_PAGES 20
#define RUN_COST_PAGE_SIZE 100
#define RUN_COST_MAX_DEPTH 2

struct run_cost_env {
  struct retail_prices *prices;
  struct compute_reader *computes;
  compute_fetch_fn fetch; /* authenticated GET of ARM and run history JSON */
  void *fetch_ctx;
  const char *compute_url_prefix; /* ".../workspaces/{ws}/computes/" (escaped ids) */
  const char *compute_key_prefix; /* "sub/rg/ws/" lower-cased */
  const char *runs_url_prefix;    /* "{api}/history/v1.0/.../workspaces/{ws}/runs/" */
  int64_t deadline_ms;
  atomic_uint_fast64_t *step_list_requests; /* counter, may be NULL */
  /* Pipeline sums by "sub/rg/ws/runid", may be NULL: concurrent and repeated
   * terminal events of one pipeline share one step-list read. */
  struct lookup_cache *pipeline_sums;
};

/* Pipeline sums are kept this long (the events of a pipeline's end). */
#define RUN_COST_PIPELINE_TTL_MS (10 * 60 * 1000LL)
#define RUN_COST_PIPELINE_CACHE 64

/* Sets the cost fields of `rec` (a finished step or plain run) from its Run
 * document `run`, or cost_unknown_reason. RESULT_OK or RESULT_NOMEM. */
HANDLER_NODISCARD int run_cost_of_run(const struct run_cost_env *env, const json_t *run,
                                      struct record *rec);

/* Sets cost_estimate_usd of `rec` (a finished pipeline run `run_id`) to the sum
 * over its steps, or cost_unknown_reason. RESULT_OK or RESULT_NOMEM. */
HANDLER_NODISCARD int run_cost_of_pipeline(const struct run_cost_env *env,
                                           const char *run_id, struct record *rec);

#endif
