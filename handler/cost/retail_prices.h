/* The Azure Retail Prices API client: the hourly pay-as-you-go Linux price of a
 * VM size in a region, cached for a day and shared by every invocation.
 *
 * One lookup is `GET {endpoint}/api/retail/prices?$filter=serviceName eq
 * 'Virtual Machines' and armRegionName eq '{region}' and armSkuName eq '{size}'
 * and priceType eq 'Consumption'` (public, no authentication; Microsoft Learn,
 * "Azure Retail Prices overview",
 * https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices),
 * answered as pages `{"BillingCurrency", "Items": [...], "NextPageLink",
 * "Count"}`; NextPageLink is followed up to RETAIL_PRICES_MAX_PAGES pages (no
 * price when pages remain unread), and only to the endpoint's own origin. No api-version
 * is sent: the default version compares filter values case-insensitively, and AML spells
 * sizes in capitals ("STANDARD_DS3_V2") where the price list writes "Standard_DS3_v2".
 * The item is chosen by retail_prices_scan() (see there).
 *
 * The cache: one entry per region + size + priority. A price is kept for
 * RETAIL_PRICES_TTL_MS; a failed lookup (API unreachable, no such price) for
 * RETAIL_PRICES_FAILURE_TTL_MS, after which a later run asks again. A lookup
 * runs on a thread of its own with its own deadline (RETAIL_PRICES_LOOKUP_MS),
 * one per key however many runs ask at once; callers wait for it only until
 * their own deadline, so a slow API delays no invocation past its share of
 * time, and the price that arrives later serves the next runs. With every
 * cache slot held by a running lookup, a caller looks its price up on its own
 * thread, by its own deadline, uncached.
 *
 * Results of retail_prices_hourly(): RESULT_OK with the price; otherwise the
 * reason as a sentence in `err` (never a failed invocation: the caller records
 * the run without cost): RESULT_PERMANENT (no such price, or several that
 * disagree), RESULT_TRANSIENT (the API failed), RESULT_TIMEOUT (the lookup is
 * still running).
 *
 * Ownership: retail_prices_new() returns a heap object freed by
 * retail_prices_free(), which waits for lookups still running (each ends by its
 * own deadline). Threading: every function but new/free is thread-safe. Test
 * hooks: retail_prices_testing.h. */
#ifndef HANDLER_RETAIL_PRICES_H
#define HANDLER_RETAIL_PRICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/jsonx.h"
#include "base/result.h"
#include "base/settings.h"

#define RETAIL_PRICES_SETTING "HANDLER_RETAIL_PRICES_ENDPOINT"
#define RETAIL_PRICES_DEFAULT_ENDPOINT "https://prices.azure.com"
#define RETAIL_PRICES_TTL_MS (24 * 3600 * 1000LL)
#define RETAIL_PRICES_FAILURE_TTL_MS (5 * 60 * 1000LL)
#define RETAIL_PRICES_LOOKUP_MS 30000
#define RETAIL_PRICES_MAX_PAGES 10
#define RETAIL_PRICES_CACHE 256

struct retail_prices;

/* What to price. */
struct price_query {
  const char *region;  /* armRegionName, "eastus" */
  const char *vm_size; /* armSkuName, any casing */
  bool low_priority;   /* the Low Priority (else Spot) meter instead of the regular */
};

/* The best item seen so far, across pages (zero-initialise before the first). */
struct price_choice {
  bool found;
  bool ambiguous; /* two equally ranked items with different prices */
  double usd;
  int rank; /* lower is better; see retail_prices_scan */
  char effective[40];
};

/* Counters (monotonic since retail_prices_new). */
struct retail_prices_stats {
  uint64_t lookups;    /* lookups started (one per key per TTL, ideally) */
  uint64_t requests;   /* pages requested */
  uint64_t cache_hits; /* prices (or recent failures) served from the cache */
  uint64_t failures;   /* lookups that ended without a price */
};

/* Reads RETAIL_PRICES_SETTING through getenv_fn (default
 * RETAIL_PRICES_DEFAULT_ENDPOINT; trailing slashes dropped; https, or http to a
 * loopback host (base/loopback.h), without query; else RESULT_INVALID naming the
 * setting). */
HANDLER_NODISCARD int retail_prices_new(settings_getenv_fn getenv_fn, void *ctx,
                                        struct retail_prices **out,
                                        struct error_info *err);
void retail_prices_free(struct retail_prices *prices);

/* The hourly USD price for `query`, from the cache or a lookup; waits for a
 * running lookup until `deadline_ms`. See the results above. */
HANDLER_NODISCARD int retail_prices_hourly(struct retail_prices *prices,
                                           const struct price_query *query,
                                           int64_t deadline_ms, double *out_usd,
                                           struct error_info *err);

/* For `handler check`: one page of a lookup (Standard_D2s_v3 in eastus), not
 * cached; RESULT_OK when the API answers a prices page. */
HANDLER_NODISCARD int retail_prices_check(struct retail_prices *prices,
                                          int64_t deadline_ms, struct error_info *err);

void retail_prices_get_stats(struct retail_prices *prices,
                             struct retail_prices_stats *out);

/* Considers the Items of one page. An item qualifies when its type is
 * "Consumption" (not "DevTestConsumption" or "Reservation"), unitOfMeasure "1
 * Hour", currency USD (when given), armRegionName and armSkuName match
 * (case-insensitively), productName does not name Windows, tierMinimumUnits is
 * 0, retailPrice is a positive number, and its skuName/meterName says "Spot"
 * or "Low Priority" exactly when the query is low priority. Ranking: for a
 * low-priority query the "Low Priority" meter before the "Spot" one; then the
 * primary meter region before another; then the latest effectiveStartDate.
 * Equally ranked items with different prices make the choice ambiguous. */
void retail_prices_scan(const json_t *page, const struct price_query *query,
                        struct price_choice *choice);

/* The filter of a lookup (malloc'd, not escaped), or NULL when region or size
 * hold characters a region or VM size never has (or no memory). */
HANDLER_NODISCARD char *retail_prices_filter(const struct price_query *query);

#endif
