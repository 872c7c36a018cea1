/* The cost estimate; see cost.h. */
#include "cost/cost.h"

#include <math.h>
#include <stddef.h>

static const enum record_field cost_fields[] = {
    REC_VM_SIZE, REC_VM_PRIORITY, REC_NODE_COUNT, REC_COST_PRICE_PER_HOUR_USD,
    REC_COST_ESTIMATE_USD};

double cost_usd(double price_per_hour_usd, double node_count, double execution_ms) {
  if (!(price_per_hour_usd >= 0) || !(node_count >= 0) || !(execution_ms >= 0))
    return NAN;
  return price_per_hour_usd * node_count * (execution_ms / 3600000.0);
}

int cost_apply(struct record *rec, const struct cost_estimate *e) {
  double usd = cost_usd(e->price_per_hour_usd, e->node_count, e->execution_ms);
  if (!isfinite(usd))
    return cost_set_unknown(rec, "the price, node count or execution time is unusable");
  int r = record_set_string(rec, REC_VM_SIZE, e->vm_size);
  if (r == RESULT_OK)
    r = record_set_string(rec, REC_VM_PRIORITY, e->vm_priority);
  if (r != RESULT_OK)
    return r;
  record_set_number(rec, REC_NODE_COUNT, e->node_count);
  record_set_number(rec, REC_COST_PRICE_PER_HOUR_USD, e->price_per_hour_usd);
  record_set_number(rec, REC_COST_ESTIMATE_USD, usd);
  record_clear(rec, REC_COST_UNKNOWN_REASON);
  return RESULT_OK;
}

int cost_apply_total(struct record *rec, double total_usd) {
  if (!(total_usd >= 0) || !isfinite(total_usd))
    return cost_set_unknown(rec, "the pipeline's total is not a usable number");
  for (size_t i = 0; i < sizeof cost_fields / sizeof *cost_fields; i++)
    record_clear(rec, cost_fields[i]);
  record_clear(rec, REC_COST_UNKNOWN_REASON);
  record_set_number(rec, REC_COST_ESTIMATE_USD, total_usd);
  return RESULT_OK;
}

int cost_set_unknown(struct record *rec, const char *reason) {
  for (size_t i = 0; i < sizeof cost_fields / sizeof *cost_fields; i++)
    record_clear(rec, cost_fields[i]);
  return record_set_string(rec, REC_COST_UNKNOWN_REASON, reason);
}
