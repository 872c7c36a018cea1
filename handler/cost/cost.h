/* The cost estimate of a finished run: retail price per hour x nodes x hours.
 *
 * Pure arithmetic and the record fields it fills, so every rule is unit-tested
 * without a network. Where the inputs come from (the compute's VM size and
 * priority, the run's node count, the Retail Prices API) is the AML client's
 * business (aml/run_cost.h); docs/records.md "Cost" says what the estimate
 * leaves out (storage, networking, reservations, savings plans, discounts).
 *
 * Ownership: the record copies what it keeps. Thread-safe: no shared state. */
#ifndef HANDLER_COST_H
#define HANDLER_COST_H

#include <stdbool.h>

#include "core/record.h"

/* One priced run. */
struct cost_estimate {
  const char *vm_size;     /* as the compute or the run names it ("STANDARD_DS3_V2") */
  const char *vm_priority; /* "Dedicated" or "LowPriority" */
  double node_count;       /* > 0 */
  double price_per_hour_usd;
  double execution_ms; /* >= 0 */
};

/* price per hour x nodes x execution hours. */
double cost_usd(double price_per_hour_usd, double node_count, double execution_ms);

/* Sets vm_size, vm_priority, node_count, cost_price_per_hour_usd and
 * cost_estimate_usd, and clears cost_unknown_reason. RESULT_OK or
 * RESULT_NOMEM. */
HANDLER_NODISCARD int cost_apply(struct record *rec,
                                 const struct cost_estimate *estimate);

/* A pipeline's cost, the sum over its steps: sets cost_estimate_usd only (a
 * pipeline has no one VM size). A total that is not a finite number >= 0 (a sum
 * that overflowed) is no estimate: as cost_set_unknown. RESULT_OK or
 * RESULT_NOMEM. */
HANDLER_NODISCARD int cost_apply_total(struct record *rec, double total_usd);

/* Leaves every cost key out and says why in cost_unknown_reason. RESULT_OK or
 * RESULT_NOMEM. */
HANDLER_NODISCARD int cost_set_unknown(struct record *rec, const char *reason);

#endif
