/* The HTTP server the Functions host talks to: the one module that includes
 * libmicrohttpd.
 *
 * It listens on 127.0.0.1 only. `GET /` answers 200 (the host's readiness probe).
 * `POST /{FunctionName}` for a function in the options' list reads the body
 * (Content-Length or chunked, capped at max_body bytes: 413 beyond) and hands it
 * to the invoke callback, whose status and JSON body become the answer. Every
 * other path is 404, every other method 405; all answers are JSON objects with
 * `Content-Type: application/json`. Keep-alive is on.
 *
 * Threading: one thread per connection, so invocations run concurrently and the
 * callback may block (on upstream calls) without stalling others; the callback
 * must be thread-safe. server_stop() stops accepting, lets in-flight invocations
 * finish and their answers go out (up to a timeout), then closes everything. */
#ifndef HANDLER_SERVER_H
#define HANDLER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/result.h"

struct server_request {
  const char *function;      /* the path without its '/', a configured function */
  const char *invocation_id; /* X-Azure-Functions-InvocationId, or "" */
  const char *body;          /* NUL-terminated; body_len excludes the NUL */
  size_t body_len;
};

struct server_response {
  int status;
  char *body; /* malloc'd JSON object; the server frees it. NULL -> 500 */
};

typedef void (*server_invoke_fn)(void *ctx, const struct server_request *request,
                                 struct server_response *response);

struct server_options {
  uint16_t port;                /* 0 picks a free port (tests) */
  const char *const *functions; /* NULL-terminated list of function names */
  size_t max_body;              /* bytes */
  unsigned max_connections;     /* concurrent connections accepted */
  server_invoke_fn invoke;
  void *invoke_ctx;
};

struct server;

/* Starts listening and serving. Returns RESULT_OK and *out_server, or RESULT_IO
 * with `err` saying why (port in use, ...). */
HANDLER_NODISCARD int server_start(const struct server_options *options,
                                   struct server **out_server, struct error_info *err);

/* The port actually bound. */
uint16_t server_port(const struct server *server);

/* Invocations currently being processed. */
unsigned server_in_flight(const struct server *server);

/* Stops accepting, waits up to `drain_ms` for in-flight invocations to be
 * answered, then stops and frees the server. Returns true when everything in
 * flight was answered. */
bool server_stop(struct server *server, int drain_ms);

#endif
