/* Test hooks of the App Insights exporter (appinsights.c): not for production.
 *
 * appinsights_exporter_new_with() takes the tuning knobs and a replaceable
 * transport so unit tests answer POSTs without a network. */
#ifndef HANDLER_APPINSIGHTS_INTERNAL_H
#define HANDLER_APPINSIGHTS_INTERNAL_H

#include <stddef.h>

#include "export/appinsights.h"
#include "azure/http_client.h"
#include "azure/retry.h"

/* Same contract as http_client_send(). */
typedef int (*appinsights_transport_fn)(void *ctx, const struct http_request *request,
                                        struct http_response *out,
                                        struct error_info *err);

struct appinsights_tuning {
  int window_ms;                      /* group commit window; 0 = 20 */
  size_t max_batch_items;             /* 0 = 1000 */
  size_t max_batch_bytes;             /* uncompressed; 0 = 1 MiB */
  struct retry_policy retry;          /* max_attempts unused; zeros = default */
  appinsights_transport_fn transport; /* NULL = http_client_send */
  void *transport_ctx;
  size_t dedup_capacity; /* 0 = DEDUP_DEFAULT_CAPACITY */
};

int appinsights_exporter_new_with(const struct config *cfg, settings_getenv_fn getenv_fn,
                                  void *ctx, const struct appinsights_tuning *tuning,
                                  struct exporter **out, struct error_info *err);

#endif
