/* AML compute targets as ARM describes them, read once and cached.
 *
 * `GET {arm}/subscriptions/{s}/resourceGroups/{rg}/providers/
 * Microsoft.MachineLearningServices/workspaces/{ws}/computes/{name}
 * ?api-version=2024-04-01` answers a ComputeResource: `location`,
 * `properties.computeType` (AmlCompute, ComputeInstance, Kubernetes, AKS,
 * Databricks, HDInsight, VirtualMachine, ...) and, for AmlCompute and
 * ComputeInstance, `properties.properties.vmSize`; AmlCompute adds `vmPriority`
 * (Dedicated / LowPriority) and `osType` (azure-rest-api-specs,
 * specification/machinelearningservices/resource-manager/
 * Microsoft.MachineLearningServices/stable/2024-04-01/examples/Compute/get/).
 *
 * The reader caches what the cost estimate needs per workspace and compute name
 * for COMPUTE_TTL_MS (a cluster's size rarely changes; a change shows within
 * the hour); a failed read is remembered for COMPUTE_FAILURE_TTL_MS. The
 * request itself is the caller's (compute_fetch_fn: the AML client's
 * authenticated, judged GET).
 *
 * Ownership: compute_info is plain data. Threading: compute_reader_get is
 * thread-safe and single-flight per compute. */
#ifndef HANDLER_COMPUTE_H
#define HANDLER_COMPUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/jsonx.h"
#include "base/lookup_cache.h"
#include "base/result.h"

#define COMPUTE_ARM_API_VERSION "2024-04-01"
#define COMPUTE_TTL_MS (3600 * 1000LL)
#define COMPUTE_FAILURE_TTL_MS (60 * 1000LL)
#define COMPUTE_CACHE 128

struct compute_info {
  char compute_type[40]; /* properties.computeType */
  char location[64];     /* location (an ARM region name) */
  char vm_size[64];      /* properties.properties.vmSize; "" when none */
  char vm_priority[24];  /* properties.properties.vmPriority; "" when none */
  char os_type[16];      /* properties.properties.osType; "" when none */
};

/* Reads a ComputeResource document. False when it has no computeType. */
bool compute_info_from_arm(const json_t *doc, struct compute_info *out);

/* GET `url` with the caller's credential; on RESULT_OK *out_doc is the JSON
 * object (new reference); otherwise a sentence in err. */
typedef int (*compute_fetch_fn)(void *ctx, const char *url, const char *what,
                                json_t **out_doc, struct error_info *err);

struct compute_reader {
  struct lookup_cache cache; /* key -> compute_info as text */
  atomic_uint_fast64_t reads, cache_hits;
};

HANDLER_NODISCARD int compute_reader_init(struct compute_reader *reader);
void compute_reader_cleanup(struct compute_reader *reader);

/* The compute `key` (lower-cased "sub/rg/ws/name") from the cache, or read from
 * `url` through `fetch`. RESULT_OK with *out; otherwise the reason in err. */
HANDLER_NODISCARD int compute_reader_get(struct compute_reader *reader, const char *key,
                                         const char *url, int64_t deadline_ms,
                                         compute_fetch_fn fetch, void *ctx,
                                         struct compute_info *out,
                                         struct error_info *err);

#endif
