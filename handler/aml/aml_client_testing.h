/* Test hooks of the AML client: not for production callers.
 *
 * Requests normally go through http_client_send_retry() and tokens come from
 * credential_get_token(); unit tests swap in a transport that answers from a
 * table and records what was sent (URLs, escaping, headers), and a token source,
 * so the client is tested without network or credential. The hooks are per
 * client.
 *
 * Threading: set the hooks before any thread calls enrich(); the hooks are then
 * called concurrently. */
#ifndef HANDLER_AML_CLIENT_TESTING_H
#define HANDLER_AML_CLIENT_TESTING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/enricher.h"
#include "azure/http_client.h"
#include "base/result.h"

/* Same contract as credential_get_token(): *out_token malloc'd. */
typedef int (*aml_token_fn)(void *ctx, const char *scope, int64_t deadline_ms,
                            char **out_token, struct error_info *err);

/* NULL restores http_client_send_retry() (see http_transport_fn). */
void aml_client_set_transport_for_test(struct enricher *client, http_transport_fn fn,
                                       void *ctx);

/* NULL restores credential_get_token() with the client's credential. */
void aml_client_set_token_for_test(struct enricher *client, aml_token_fn fn, void *ctx);

/* True when the bearer token may be sent to `url`: https, or http to 127.0.0.1,
 * localhost or [::1]. */
bool aml_client_url_trusted(const char *url);

#endif
