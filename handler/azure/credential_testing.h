/* Test hooks of the credential module: not for production callers.
 *
 * The token requests normally go through http_client_send_retry(); unit tests
 * swap in a transport that answers from a table and records what was sent, so
 * form bodies, URLs, headers and JWTs are checked without a network. The
 * parsers of the two token-response shapes are exposed for table tests.
 *
 * Threading: credential_set_transport_for_test() is not thread-safe; call it
 * before any thread asks for a token. The transport itself is called
 * concurrently only when different scopes refresh at once. */
#ifndef HANDLER_CREDENTIAL_TESTING_H
#define HANDLER_CREDENTIAL_TESTING_H

#include <stdbool.h>
#include <stdint.h>

#include "azure/http_client.h"
#include "base/result.h"

/* NULL restores http_client_send_retry() (see http_transport_fn). Process-wide,
 * unlike the other modules' hooks, because credentials are also made inside
 * other modules (the App Insights exporter's managed identity). */
void credential_set_transport_for_test(http_transport_fn fn, void *ctx);

/* A token response parsed: the token (malloc'd), when it expires and when it
 * should be refreshed (wall clock, ms since the epoch; refresh_at_ms is 0 when
 * the service did not say). */
struct credential_token {
  char *access_token;
  int64_t expires_at_ms;
  int64_t refresh_at_ms;
};

/* Entra ID shape: access_token, expires_in (number or numeric string), optional
 * refresh_in. `now_ms` is the wall clock at the request. RESULT_TRANSIENT with a
 * sentence when malformed. */
HANDLER_NODISCARD int credential_parse_aad_response(const char *body, size_t len,
                                                    int64_t now_ms,
                                                    struct credential_token *out,
                                                    struct error_info *err);

/* Managed identity shape: access_token, expires_on as seconds since the epoch
 * (number or numeric string) or a date ("11/28/2026 10:00:00 +00:00",
 * "6/20/2019 4:58:10 PM +00:00", ISO-8601); expires_in accepted as a fallback. */
HANDLER_NODISCARD int credential_parse_msi_response(const char *body, size_t len,
                                                    int64_t now_ms,
                                                    struct credential_token *out,
                                                    struct error_info *err);

/* Parses an expires_on date string into ms since the epoch; false when malformed. */
bool credential_parse_expires_on(const char *text, int64_t *out_ms);

#endif
