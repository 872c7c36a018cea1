/* The HTTP client for upstream calls: the one module that includes libcurl.
 *
 * Entra ID, managed identity, ARM, AML and App Insights are all reached through
 * http_client_send(). It reuses connections across invocations (keep-alive, TLS
 * session reuse, a shared DNS cache), always verifies TLS (SSL_CERT_FILE replaces
 * the CA bundle; nothing turns verification off), bounds response sizes, and
 * applies a connect timeout and the caller's absolute deadline to the whole
 * request. http_client_send_retry() adds the retry policy of retry.h on top:
 * transport errors and 408/429/500/502/503/504 are retried, honouring the
 * server's retry-after headers, but never past the deadline.
 *
 * Only https:// URLs are accepted, plus http:// to a loopback host (127.0.0.1,
 * localhost, [::1]: App Service's managed identity endpoint, and tests); anything
 * else is RESULT_INVALID before any network access. Redirects are not followed:
 * a 307/308 comes back with `location` set.
 *
 * Results: an HTTP answer of any status is RESULT_OK: callers judge the status.
 * Otherwise RESULT_INVALID (refused URL, a header with a line break),
 * RESULT_TOOBIG (body over max_response), RESULT_TIMEOUT (the deadline passed,
 * before or during the exchange), RESULT_TRANSIENT (any other transport failure,
 * TLS verification failures included), each with a sentence in `err` naming the
 * method and host (never a header value or the query string).
 *
 * Ownership: `out` is overwritten (its previous contents are not freed); after
 * RESULT_OK the caller releases it with http_response_cleanup(); after a failure
 * it is empty (cleanup is harmless). Request fields are borrowed for the call.
 *
 * Threading: after http_client_global_init(), every function is thread-safe;
 * connections are pooled behind the module's own locks. */
#ifndef HANDLER_HTTP_CLIENT_H
#define HANDLER_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

struct http_header {
  const char *name;
  const char *value;
};

struct http_request {
  const char *method; /* "GET" (NULL too), "POST", "HEAD", or another verb */
  const char *url;
  const struct http_header *headers;
  size_t header_count;
  const void *body; /* may be NULL */
  size_t body_len;
  int64_t deadline_ms; /* absolute, time_mono_ms(); the whole exchange ends by then */
  size_t max_response; /* cap on the body; 0 = HTTP_CLIENT_DEFAULT_MAX_RESPONSE */
};

#define HTTP_CLIENT_DEFAULT_MAX_RESPONSE (4u * 1024 * 1024)

struct http_response {
  long status;
  char *body; /* NUL-terminated, malloc'd */
  size_t body_len;
  /* The response headers callers need (malloc'd, NULL when absent). */
  char *retry_after;         /* Retry-After */
  char *retry_after_ms;      /* retry-after-ms */
  char *x_ms_retry_after_ms; /* x-ms-retry-after-ms */
  char *location;            /* Location */
  char *content_type;
  char *etag;               /* ETag (Table storage's optimistic concurrency) */
  char *next_partition_key; /* x-ms-continuation-NextPartitionKey (Table queries) */
  char *next_row_key;       /* x-ms-continuation-NextRowKey */
};

/* Counters for benchmarks and tests. */
struct http_client_stats {
  uint64_t requests;    /* attempts sent */
  uint64_t connections; /* new TCP connections opened */
  uint64_t retries;     /* attempts that were retries */
};

struct http_client_options {
  const char *ca_file;    /* SSL_CERT_FILE, or NULL for the system bundle */
  int connect_timeout_ms; /* 0 = 5000 */
  const char *user_agent; /* not browser-like (App Insights reads it) */
};

/* Once, before any thread sends. RESULT_INVALID when options->ca_file is not
 * readable (field "SSL_CERT_FILE") or when already initialized. `options` may be
 * NULL (system CA bundle, defaults); its strings are copied. */
HANDLER_NODISCARD int http_client_global_init(const struct http_client_options *options,
                                              struct error_info *err);
/* After every sending thread stopped; closes pooled connections. */
void http_client_global_cleanup(void);

/* One attempt. */
HANDLER_NODISCARD int http_client_send(const struct http_request *request,
                                       struct http_response *out, struct error_info *err);

/* Attempts until a non-retryable answer, the retry budget, or the deadline. On
 * RESULT_OK, `out` holds the last answer (which may still be a retryable status
 * when the deadline left no room for another attempt). */
HANDLER_NODISCARD int http_client_send_retry(const struct http_request *request,
                                             struct http_response *out,
                                             struct error_info *err);

void http_response_cleanup(struct http_response *response);

/* A way to send one request with the contract of http_client_send() /
 * http_client_send_retry(): fills `out` (the caller frees it with
 * http_response_cleanup()). Modules send through the real functions; their test
 * hooks (*_testing.h, *_set_transport_for_test) swap in one of these. */
typedef int (*http_transport_fn)(void *ctx, const struct http_request *request,
                                 struct http_response *out, struct error_info *err);

void http_client_get_stats(struct http_client_stats *out);

/* Percent-encodes `text` for a URL path segment or query value into a malloc'd
 * string (unreserved characters kept). NULL on allocation failure. */
HANDLER_NODISCARD char *http_client_escape(const char *text);

#endif
