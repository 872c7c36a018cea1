/* Test hooks of the HTTP transport (http_client.c): not for production callers.
 *
 * http_client_send_retry() sleeps between attempts through a replaceable function
 * so unit tests record the requested delays instead of waiting, and runs the
 * retry policy set here (RETRY_POLICY_DEFAULT unless replaced).
 * Threading: set hooks before threads send (not synchronized). */
#ifndef HANDLER_HTTP_CLIENT_TESTING_H
#define HANDLER_HTTP_CLIENT_TESTING_H

#include <stdint.h>

#include "azure/retry.h"

typedef void (*http_client_sleep_fn)(int64_t delay_ms);

/* NULL restores nanosleep(). */
void http_client_set_sleep_for_test(http_client_sleep_fn fn);

/* NULL restores RETRY_POLICY_DEFAULT. The policy is copied. */
void http_client_set_retry_policy_for_test(const struct retry_policy *policy);

#endif
