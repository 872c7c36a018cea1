/* The cost of a finished AML run or pipeline; see run_cost.h.
 *
 * price_run() turns one Run document into either a priced estimate or a
 * reason; run_cost_of_run() applies it to the run's record, and
 * run_cost_of_pipeline() sums it over the steps the children list returns. */
#include "aml/run_cost.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure/http_client.h"
#include "base/text.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "cost/cost.h"

/* One run's outcome. */
struct priced {
  bool known;
  bool no_compute; /* known, cost 0, no VM (a reused step) */
  double usd;
  double nodes, price;
  char vm_size[64], priority[24];
  char reason[256];
};

static bool unknown(struct priced *out, const char *fmt, ...) HANDLER_PRINTF(2, 3);
static bool unknown(struct priced *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->reason, sizeof out->reason, fmt, ap);
  va_end(ap);
  out->known = false;
  return false;
}

static bool positive_at(const json_t *obj, const char *key, double *out) {
  json_t *v = jsonx_get_ci(obj, key);
  if (json_is_string(v)) {
    char *end = NULL;
    double d = strtod(json_string_value(v), &end);
    if (end && end != json_string_value(v) && !*end && isfinite(d) && d > 0)
      return *out = d, true;
    return false;
  }
  if (!json_is_number(v) || !(json_number_value(v) > 0))
    return false;
  *out = json_number_value(v);
  return true;
}

/* compute.instanceCount, computeRequest.nodeCount, runDefinition.nodeCount. */
static bool node_count(const json_t *run, double *out) {
  return positive_at(jsonx_get_ci(run, "compute"), "instanceCount", out) ||
         positive_at(jsonx_get_ci(run, "computeRequest"), "nodeCount", out) ||
         positive_at(jsonx_get_ci(run, "runDefinition"), "nodeCount", out);
}

static bool is_low_priority(const char *priority) {
  return priority &&
         (strncasecmp(priority, "low", 3) == 0 || strcasecmp(priority, "spot") == 0);
}

static bool is_true(const json_t *v) {
  return json_is_true(v) ||
         (json_is_string(v) && !strcasecmp(json_string_value(v), "true"));
}

/* The run's execution time: end - start. */
static bool execution_ms(const json_t *run, double *out) {
  int64_t start, end;
  const char *s = jsonx_string_ci(run, "startTimeUtc");
  const char *e = jsonx_string_ci(run, "endTimeUtc");
  if (!s || !e || !time_parse_iso8601_ms(s, &start) || !time_parse_iso8601_ms(e, &end) ||
      end < start)
    return false;
  *out = (double)(end - start);
  return true;
}

/* The compute's region, size and priority, from ARM; false with a reason. */
static bool named_compute(const struct run_cost_env *env, const char *target,
                          struct compute_info *info, struct priced *out) {
  char *name = http_client_escape(target);
  size_t ku = strlen(env->compute_key_prefix) + strlen(target) + 1;
  size_t nu = strlen(env->compute_url_prefix) + (name ? strlen(name) : 0) + 40;
  char *key = malloc(ku), *url = malloc(nu);
  struct error_info err = {0};
  int r = RESULT_NOMEM;
  if (name && key && url) {
    snprintf(key, ku, "%s%s", env->compute_key_prefix, target);
    for (char *k = key; *k; k++)
      *k = (char)tolower((unsigned char)*k);
    snprintf(url, nu, "%s%s?api-version=" COMPUTE_ARM_API_VERSION,
             env->compute_url_prefix, name);
    r = compute_reader_get(env->computes, key, url, env->deadline_ms, env->fetch,
                           env->fetch_ctx, info, &err);
  }
  free(name);
  free(key);
  free(url);
  if (r != RESULT_OK)
    return unknown(out, "the compute %s could not be read: %s", target,
                   err.message[0] ? err.message : result_str(r));
  return true;
}

/* Where the run ran: region, VM size, priority and nodes; false with a reason. */
static bool placement(const struct run_cost_env *env, const json_t *run,
                      struct priced *out, char *region, size_t region_size) {
  json_t *compute = jsonx_get_ci(run, "compute");
  const char *target = jsonx_string_ci(run, "target");
  const char *type = jsonx_string_ci(compute, "targetType");
  if (!target || !*target)
    target = jsonx_string_ci(compute, "target");
  if ((target && !strcasecmp(target, "local")) || (type && !strcasecmp(type, "local")))
    return unknown(out, "a local run uses no Azure compute");

  const char *size = jsonx_string_ci(compute, "vmSize");
  if (!size || !*size)
    size = jsonx_string_ci(compute, "instanceType");
  bool unnamed = !target || !*target;
  if ((unnamed && size && *size) || (target && !strcasecmp(target, "serverless")) ||
      (type && text_contains_ci(type, "serverless"))) {
    const char *where = jsonx_string_ci(compute, "region");
    const char *priority = jsonx_string_ci(compute, "priority");
    if (!size || !*size)
      return unknown(out, "the serverless run names no instance type");
    if (!where || !*where)
      return unknown(out, "the serverless run names no region");
    snprintf(out->vm_size, sizeof out->vm_size, "%s", size);
    snprintf(out->priority, sizeof out->priority, "%s",
             is_low_priority(priority) ? "LowPriority" : "Dedicated");
    snprintf(region, region_size, "%s", where);
    if (!node_count(run, &out->nodes))
      return unknown(out, "the run's node count is unknown");
    return true;
  }

  if (unnamed)
    return unknown(out, "the run names no compute target");
  struct compute_info info;
  if (!named_compute(env, target, &info, out))
    return false;
  bool instance = !strcasecmp(info.compute_type, "ComputeInstance");
  if (!instance && strcasecmp(info.compute_type, "AmlCompute") != 0)
    return unknown(out, "%s compute (%s) is not priced: its VMs are not known per run",
                   info.compute_type, target);
  if (!strcasecmp(info.os_type, "Windows"))
    return unknown(out, "the compute %s runs Windows; only Linux prices are used",
                   target);
  if (!info.vm_size[0] || !info.location[0])
    return unknown(out, "the compute %s has no VM size or location", target);
  snprintf(out->vm_size, sizeof out->vm_size, "%s", info.vm_size);
  snprintf(out->priority, sizeof out->priority, "%s",
           !instance && is_low_priority(info.vm_priority) ? "LowPriority" : "Dedicated");
  snprintf(region, region_size, "%s", info.location);
  if (instance)
    out->nodes = 1;
  else if (!node_count(run, &out->nodes))
    return unknown(out, "the run's node count is unknown");
  return true;
}

static bool price_run(const struct run_cost_env *env, const json_t *run,
                      struct priced *out) {
  char region[64];
  double exec_ms;
  memset(out, 0, sizeof *out);
  if (is_true(jsonx_get_ci(jsonx_get_ci(run, "properties"), "azureml.isreused")))
    return out->known = out->no_compute = true;
  if (!execution_ms(run, &exec_ms))
    return unknown(out, "the run's execution time is unknown");
  if (!placement(env, run, out, region, sizeof region))
    return false;
  struct price_query q = {region, out->vm_size, !strcmp(out->priority, "LowPriority")};
  struct error_info err = {0};
  int r = retail_prices_hourly(env->prices, &q, env->deadline_ms, &out->price, &err);
  if (r != RESULT_OK)
    return unknown(out, "no price: %s", err.message[0] ? err.message : result_str(r));
  out->usd = cost_usd(out->price, out->nodes, exec_ms);
  out->known = isfinite(out->usd);
  return out->known || unknown(out, "the estimate is not a number");
}

static bool is_pipeline(const json_t *run);

int run_cost_of_run(const struct run_cost_env *env, const json_t *run,
                    struct record *rec) {
  struct priced p;
  double exec_ms = 0;
  /* A pipeline inside a pipeline runs nothing itself; its steps carry the cost,
   * and a sum here would count them twice. */
  if (is_pipeline(run))
    return cost_set_unknown(rec, "a nested pipeline: its steps carry the cost");
  if (!price_run(env, run, &p))
    return cost_set_unknown(rec, p.reason);
  if (p.no_compute)
    return cost_apply_total(rec, 0);
  execution_ms(run, &exec_ms);
  struct cost_estimate e = {.vm_size = p.vm_size,
                            .vm_priority = p.priority,
                            .node_count = p.nodes,
                            .price_per_hour_usd = p.price,
                            .execution_ms = exec_ms};
  return cost_apply(rec, &e);
}

/* ---- pipelines -------------------------------------------------------------------- */

struct pipeline_sum {
  double usd;
  unsigned steps, priced, unpriced;
  char first_reason[320];
  bool failed; /* the step list could not be read */
};

static bool is_pipeline(const json_t *run) {
  const char *type = jsonx_string_ci(run, "runType");
  const char *source =
      jsonx_string_ci(jsonx_get_ci(run, "properties"), "azureml.runsource");
  return (type && !strcasecmp(type, "azureml.PipelineRun")) ||
         (source && !strcasecmp(source, "azureml.PipelineRun"));
}

static void walk(const struct run_cost_env *env, const char *run_id, int depth,
                 struct pipeline_sum *sum);

static void add_step(const struct run_cost_env *env, const json_t *step, int depth,
                     struct pipeline_sum *sum) {
  const char *id = jsonx_string_ci(step, "runId");
  if (is_pipeline(step) && id && depth < RUN_COST_MAX_DEPTH) {
    walk(env, id, depth + 1, sum);
    return;
  }
  sum->steps++;
  if (!jsonx_string_ci(step, "startTimeUtc")) /* never started: used nothing */
    return;
  struct priced p;
  if (price_run(env, step, &p)) {
    sum->priced++;
    sum->usd += p.usd;
    return;
  }
  if (sum->unpriced++ == 0) {
    const char *name = jsonx_string_ci(step, "displayName");
    snprintf(sum->first_reason, sizeof sum->first_reason, "step %s: %s",
             name ? name
             : id ? id
                  : "?",
             p.reason);
  }
}

static void walk(const struct run_cost_env *env, const char *run_id, int depth,
                 struct pipeline_sum *sum) {
  char *id = http_client_escape(run_id), *token = NULL;
  for (int page = 0; id && page < RUN_COST_MAX_PAGES && !sum->failed; page++) {
    char *escaped = token ? http_client_escape(token) : NULL;
    size_t n =
        strlen(env->runs_url_prefix) + strlen(id) + 64 + (escaped ? strlen(escaped) : 0);
    char *url = malloc(n);
    json_t *list = NULL;
    struct error_info err = {0};
    int r = RESULT_NOMEM;
    if (url) {
      snprintf(url, n, "%s%s/children?$top=%d%s%s", env->runs_url_prefix, id,
               RUN_COST_PAGE_SIZE, escaped ? "&$continuationtoken=" : "",
               escaped ? escaped : "");
      if (env->step_list_requests)
        atomic_fetch_add(env->step_list_requests, 1);
      r = env->fetch(env->fetch_ctx, url, "pipeline steps", &list, &err);
    }
    free(url);
    free(escaped);
    free(token);
    token = NULL;
    if (r != RESULT_OK) {
      sum->failed = true;
      snprintf(sum->first_reason, sizeof sum->first_reason,
               "the pipeline's steps could not be read: %.200s",
               err.message[0] ? err.message : result_str(r));
      break;
    }
    size_t i;
    json_t *step;
    json_array_foreach(jsonx_get_ci(list, "value"), i, step) {
      if (sum->steps >= RUN_COST_MAX_STEPS)
        break;
      add_step(env, step, depth, sum);
    }
    const char *next = jsonx_string_ci(list, "continuationToken");
    if (next && *next && sum->steps < RUN_COST_MAX_STEPS)
      token = strdup(next);
    json_decref(list);
    if (!token)
      break;
  }
  if (token && !sum->failed) {
    sum->failed = true;
    snprintf(sum->first_reason, sizeof sum->first_reason,
             "the pipeline has more steps than are read (%d pages)", RUN_COST_MAX_PAGES);
  }
  free(token);
  free(id);
}

/* The pipeline's sum, or why there is none (in `why`). */
static bool pipeline_total(const struct run_cost_env *env, const char *run_id,
                           double *out_usd, char *why, size_t why_size) {
  struct pipeline_sum sum = {0};
  walk(env, run_id, 0, &sum);
  if (sum.failed)
    snprintf(why, why_size, "%s", sum.first_reason);
  else if (sum.steps >= RUN_COST_MAX_STEPS)
    snprintf(why, why_size, "the pipeline has more steps than are read");
  else if (sum.steps == 0)
    snprintf(why, why_size, "the pipeline's step list is empty");
  else if (sum.unpriced > 0)
    snprintf(why, why_size, "%u of %u steps have no cost estimate (%.320s)", sum.unpriced,
             sum.steps, sum.first_reason);
  else {
    log_debug("event=pipeline_cost run_id=%s steps=%u priced=%u usd=%.6f", run_id,
              sum.steps, sum.priced, sum.usd);
    *out_usd = sum.usd;
    return true;
  }
  return false;
}

int run_cost_of_pipeline(const struct run_cost_env *env, const char *run_id,
                         struct record *rec) {
  char why[400] = "", *key = NULL, *value = NULL;
  uint64_t ticket = 0;
  struct error_info err = {0};
  double usd = 0;
  /* A pipeline's end comes as two events (RunStatusChanged, RunCompleted), often
   * at once: one step-list read serves both. */
  if (env->pipeline_sums) {
    size_t n = strlen(env->compute_key_prefix) + strlen(run_id) + 1;
    if (!(key = malloc(n)))
      return RESULT_NOMEM;
    snprintf(key, n, "%s%s", env->compute_key_prefix, run_id);
    for (char *k = key; *k; k++)
      *k = (char)tolower((unsigned char)*k);
    int r = lookup_cache_begin(env->pipeline_sums, key, env->deadline_ms, &value, &ticket,
                               &err);
    if (r == RESULT_OK && value) {
      usd = strtod(value, NULL);
      free(value);
      free(key);
      return cost_apply_total(rec, usd);
    }
    if (r != RESULT_OK) {
      free(key);
      return cost_set_unknown(rec, err.message[0] ? err.message : result_str(r));
    }
  }
  bool known = pipeline_total(env, run_id, &usd, why, sizeof why);
  if (key) {
    char text[40];
    snprintf(text, sizeof text, "%.17g", usd);
    /* Only a sum is kept: a reason may pass (a price still being looked up). */
    error_set(&err, RESULT_PERMANENT, "", "%s", why);
    lookup_cache_end(env->pipeline_sums, key, ticket, known ? text : NULL,
                     known ? RESULT_OK : RESULT_PERMANENT, &err);
    free(key);
  }
  return known ? cost_apply_total(rec, usd) : cost_set_unknown(rec, why);
}
