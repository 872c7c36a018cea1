/* Test hooks of the Table storage client: not for production callers.
 *
 * Unit tests swap in a transport that answers from a script and records what
 * was sent (URLs, verbs, headers, bodies), so the Shared Key and bearer
 * requests, conditional writes and paging are checked without a network.
 * Threading: set the hook before any thread uses the client. */
#ifndef HANDLER_TABLE_CLIENT_TESTING_H
#define HANDLER_TABLE_CLIENT_TESTING_H

#include "azure/http_client.h"
#include "azure/table_client.h"

/* NULL restores http_client_send_retry(). */
void table_client_set_transport_for_test(struct table_client *client,
                                         http_transport_fn fn, void *ctx);

#endif
