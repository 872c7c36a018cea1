/* Test hooks of the App Insights exporter (appinsights.c): not for production.
 *
 * appinsights_exporter_new_with() takes the tuning knobs, and
 * appinsights_exporter_set_transport_for_test() replaces the transport so unit
 * tests answer POSTs without a network.
 *
 * Threading: set the transport before the first export; the sender thread then
 * calls it. */
#ifndef HANDLER_APPINSIGHTS_TESTING_H
#define HANDLER_APPINSIGHTS_TESTING_H

#include <stddef.h>

#include "base/result.h"
#include "export/appinsights.h"
#include "azure/http_client.h"
#include "azure/retry.h"

struct appinsights_tuning {
  int window_ms;             /* group commit window; 0 = 20 */
  size_t max_batch_items;    /* 0 = 1000 */
  size_t max_batch_bytes;    /* uncompressed; 0 = 1 MiB */
  struct retry_policy retry; /* max_attempts unused; zeros = default */
  size_t dedup_capacity;     /* 0 = DEDUP_DEFAULT_CAPACITY */
};

HANDLER_NODISCARD int
appinsights_exporter_new_with(const struct config *cfg, settings_getenv_fn getenv_fn,
                              void *ctx, const struct appinsights_tuning *tuning,
                              struct exporter **out, struct error_info *err);

/* NULL restores http_client_send() (see http_transport_fn). */
void appinsights_exporter_set_transport_for_test(struct exporter *exp,
                                                 http_transport_fn fn, void *ctx);

#endif
