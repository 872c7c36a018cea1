/* Test hooks of the Retail Prices API client: not for production callers.
 *
 * Lookups normally go through http_client_send_retry(); unit tests swap in a
 * transport that answers pages from files and counts what was asked, so price
 * selection, paging and the cache are tested without network. The hook is per
 * client.
 *
 * Threading: set the hook before the first lookup; it is then called from the
 * lookup threads, concurrently. */
#ifndef HANDLER_RETAIL_PRICES_TESTING_H
#define HANDLER_RETAIL_PRICES_TESTING_H

#include "azure/http_client.h"
#include "cost/retail_prices.h"

/* NULL restores http_client_send_retry() (see http_transport_fn). */
void retail_prices_set_transport_for_test(struct retail_prices *prices,
                                          http_transport_fn fn, void *ctx);

#endif
