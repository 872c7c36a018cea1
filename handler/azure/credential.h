/* Azure credentials: Entra ID access tokens for ARM/AML and App Insights.
 *
 * credential_from_env() picks the credential as DefaultAzureCredential does:
 *   1. service principal with a secret: AZURE_TENANT_ID, AZURE_CLIENT_ID,
 *      AZURE_CLIENT_SECRET (aliases TENANT_ID, APP_ID, SERVICE_PRINCIPAL_PASSWORD);
 *   2. service principal with a certificate: AZURE_CLIENT_CERTIFICATE_PATH (PEM
 *      with certificate and key), AZURE_CLIENT_CERTIFICATE_PASSWORD; the client
 *      assertion is a JWT signed RS256 with `x5t`;
 *   3. workload identity: AZURE_FEDERATED_TOKEN_FILE (+ tenant and client id),
 *      the file read afresh for every token request;
 *   4. managed identity: IDENTITY_ENDPOINT + IDENTITY_HEADER; AZURE_CLIENT_ID
 *      picks a user-assigned identity.
 * AZURE_AUTHORITY_HOST selects the authority (sovereign clouds). A setting that
 * is present but unusable (half a service principal, unreadable certificate)
 * fails with RESULT_INVALID naming it. With nothing configured, *out is NULL and
 * the result RESULT_OK: records are written without run details.
 *
 * Tokens are cached per scope and refreshed ahead of expiry (5 minutes before,
 * half-way for short-lived tokens, or at the service's refresh_in, whichever is
 * first); a token is handed out for as long as it is valid, however soon it
 * expires (a managed identity endpoint keeps handing out its cached token
 * until it has a new one); only an expired token is refused. Under
 * concurrency one caller refreshes and the others wait for it and share its
 * outcome; while a still-valid token exists, callers keep using it instead of
 * waiting, and a failed early refresh keeps it (retried after 30 s). A refused
 * credential is RESULT_DENIED with a sentence naming the credential kind, the
 * setting to check and the service's error code (AADSTS...); a failure that may
 * pass (transport, 408/429/5xx, a malformed answer) is RESULT_TRANSIENT or
 * RESULT_TIMEOUT; an unreadable or empty federated token file is RESULT_IO.
 * Secrets and tokens never reach a log line or an error sentence. Token
 * requests go through http_client_send_retry() with the caller's deadline (the
 * managed identity secret travels in the X-IDENTITY-HEADER request header).
 *
 * Threading: credential_get_token() is thread-safe. Ownership: the token string
 * returned is malloc'd; the caller frees it. */
#ifndef HANDLER_CREDENTIAL_H
#define HANDLER_CREDENTIAL_H

#include <stdint.h>

#include "base/settings.h"
#include "base/result.h"

#define CREDENTIAL_SCOPE_ARM_DEFAULT "https://management.azure.com/.default"
#define CREDENTIAL_SCOPE_MONITOR "https://monitor.azure.com//.default"

struct credential;

HANDLER_NODISCARD int credential_from_env(settings_getenv_fn getenv_fn, void *ctx,
                                          struct credential **out,
                                          struct error_info *err);

/* A managed identity credential (App Insights' Authorization=AAD[;ClientId=...]),
 * from IDENTITY_ENDPOINT/IDENTITY_HEADER; client_id may be NULL. */
HANDLER_NODISCARD int credential_managed_identity(settings_getenv_fn getenv_fn, void *ctx,
                                                  const char *client_id,
                                                  struct credential **out,
                                                  struct error_info *err);

/* "client secret", "client certificate", "workload identity", "managed identity". */
const char *credential_kind(const struct credential *cred);

/* A bearer token for `scope` ("https://management.azure.com/.default"), still
 * valid now, obtained before `deadline_ms` (time_mono_ms). */
HANDLER_NODISCARD int credential_get_token(struct credential *cred, const char *scope,
                                           int64_t deadline_ms, char **out_token,
                                           struct error_info *err);

/* Counters for benchmarks and tests: token requests sent upstream. */
uint64_t credential_token_requests(const struct credential *cred);

void credential_free(struct credential *cred);

#endif
