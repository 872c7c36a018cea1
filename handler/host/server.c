/* The HTTP server the Functions host talks to; see server.h.
 *
 * libmicrohttpd runs one thread per connection, so an invocation that waits on
 * upstream services blocks only its own connection. A POST body is gathered into
 * a buffer capped at max_body (413 beyond, decided from Content-Length when it is
 * given, else while chunks arrive) and handed to the invoke callback when
 * complete. `in_flight` counts invocations from their first byte until their
 * answer has been sent (MHD's completion callback), which is what a graceful stop
 * waits for. */
#include "host/server.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/deadline.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/timeutil.h"

struct server {
  struct MHD_Daemon *daemon;
  struct server_options options;
  uint16_t port;
  pthread_mutex_t lock;
  pthread_cond_t idle; /* signalled when in_flight drops to zero */
  unsigned in_flight;
  bool stopping;
};

/* What a request is answered with, decided from its method and path. */
enum route {
  ROUTE_READY,
  ROUTE_INVOKE,
  ROUTE_NOT_FOUND,
  ROUTE_NOT_ALLOWED,
  ROUTE_SHUTTING_DOWN
};

/* Per-request state, from the headers until the answer has been sent. Answers
 * are queued after the headers were taken in (not in the first callback), which
 * is what keeps MHD from closing a keep-alive connection. */
struct request_state {
  enum route route;
  bool counted; /* an invocation counted in in_flight */
  const char *function;
  char method[16];
  char invocation_id[80];
  char *body;
  size_t len, cap;
  bool too_big;
};

static void mhd_log(void *cls, const char *fmt, va_list ap) HANDLER_PRINTF(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  log_warn("event=http_server_warning detail=\"%s\"", line);
}

/* Queues `body` (malloc'd JSON, taken over) with `status`. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body,
                             const char *allow) {
  if (!body) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    body =
        strdup("{\"error\":{\"code\":\"InternalError\",\"message\":\"out of memory\"}}");
    if (!body)
      return MHD_NO;
  }
  struct MHD_Response *response =
      MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (!response) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (allow)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
  enum MHD_Result result = MHD_queue_response(conn, status, response);
  MHD_destroy_response(response);
  return result;
}

/* {"error": {"code": code, "message": message}} as a malloc'd string. */
static char *error_body(const char *code, const char *fmt, ...) HANDLER_PRINTF(2, 3);
static char *error_body(const char *code, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
  char *text = body ? jsonx_dump(body) : NULL;
  json_decref(body);
  return text;
}

static const char *find_function(const struct server *srv, const char *path) {
  if (path[0] != '/')
    return NULL;
  for (const char *const *f = srv->options.functions; f && *f; f++)
    if (strcmp(path + 1, *f) == 0)
      return *f;
  return NULL;
}

static void request_done(struct server *srv) {
  pthread_mutex_lock(&srv->lock);
  if (--srv->in_flight == 0)
    pthread_cond_broadcast(&srv->idle);
  pthread_mutex_unlock(&srv->lock);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
  struct request_state *state = *con_cls;
  if (!state)
    return;
  if (state->counted && code != MHD_REQUEST_TERMINATED_COMPLETED_OK)
    log_warn("event=answer_not_delivered invocation_id=%s code=%d", state->invocation_id,
             (int)code);
  if (state->counted)
    request_done(cls);
  free(state->body);
  free(state);
  *con_cls = NULL;
}

/* Appends an upload chunk, or notes that the body is over the cap. */
static void append_body(struct server *srv, struct request_state *state, const char *data,
                        size_t size) {
  if (state->too_big || state->len + size > srv->options.max_body) {
    state->too_big = true;
    return;
  }
  if (state->len + size + 1 > state->cap) {
    size_t cap = state->cap ? state->cap : 16384;
    while (cap < state->len + size + 1)
      cap *= 2;
    if (cap > srv->options.max_body + 1)
      cap = srv->options.max_body + 1;
    char *grown = realloc(state->body, cap);
    if (!grown) {
      state->too_big = true; /* answered as 413: we cannot hold it */
      return;
    }
    state->body = grown;
    state->cap = cap;
  }
  memcpy(state->body + state->len, data, size);
  state->len += size;
}

static enum MHD_Result invoke(struct server *srv, struct MHD_Connection *conn,
                              struct request_state *state) {
  if (state->too_big)
    return reply(conn, 413,
                 error_body("PayloadTooLarge",
                            "the request body is larger than %zu bytes",
                            srv->options.max_body),
                 NULL);
  if (!state->body && !(state->body = calloc(1, 1)))
    return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
  state->body[state->len] = '\0';

  log_set_invocation(state->invocation_id);
  struct server_request request = {.function = state->function,
                                   .invocation_id = state->invocation_id,
                                   .body = state->body,
                                   .body_len = state->len};
  struct server_response response = {0};
  srv->options.invoke(srv->options.invoke_ctx, &request, &response);
  log_set_invocation(NULL);
  return reply(conn, (unsigned)response.status, response.body, NULL);
}

static enum MHD_Result answer(struct server *srv, struct MHD_Connection *conn,
                              struct request_state *state, const char *url) {
  switch (state->route) {
    case ROUTE_READY:
      return reply(conn, MHD_HTTP_OK, strdup("{\"status\":\"ready\"}"), NULL);
    case ROUTE_INVOKE:
      return invoke(srv, conn, state);
    case ROUTE_NOT_FOUND:
      return reply(conn, MHD_HTTP_NOT_FOUND,
                   error_body("NotFound", "no function is served at %.200s", url), NULL);
    case ROUTE_NOT_ALLOWED:
      return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                   error_body("MethodNotAllowed", "%s is not allowed on %.200s",
                              state->method, url),
                   strcmp(url, "/") == 0 ? "GET, HEAD" : "POST");
    default:
      return reply(
          conn, MHD_HTTP_SERVICE_UNAVAILABLE,
          error_body("ShuttingDown", "the handler is shutting down; deliver again"),
          NULL);
  }
}

/* Decides the route of a new request; counts it when it is an invocation. */
static enum route route_request(struct server *srv, const char *url, const char *method,
                                struct request_state *state) {
  if (strcmp(url, "/") == 0) {
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
               strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    return get ? ROUTE_READY : ROUTE_NOT_ALLOWED;
  }
  if (!(state->function = find_function(srv, url)))
    return ROUTE_NOT_FOUND;
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return ROUTE_NOT_ALLOWED;
  pthread_mutex_lock(&srv->lock);
  bool stopping = srv->stopping;
  if (!stopping)
    srv->in_flight++;
  pthread_mutex_unlock(&srv->lock);
  state->counted = !stopping;
  return stopping ? ROUTE_SHUTTING_DOWN : ROUTE_INVOKE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  struct server *srv = cls;
  struct request_state *state = *con_cls;
  if (state) {
    if (*upload_data_size > 0) {
      if (state->route == ROUTE_INVOKE)
        append_body(srv, state, upload_data, *upload_data_size);
      *upload_data_size = 0; /* bodies sent to other routes are read and dropped */
      return MHD_YES;
    }
    return answer(srv, conn, state, url);
  }

  if (!(state = calloc(1, sizeof *state)))
    return MHD_NO;
  snprintf(state->method, sizeof state->method, "%s", method);
  state->route = route_request(srv, url, method, state);
  *con_cls = state; /* from here on, on_completed releases it */
  if (state->route != ROUTE_INVOKE)
    return MHD_YES;

  const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               "X-Azure-Functions-InvocationId");
  snprintf(state->invocation_id, sizeof state->invocation_id, "%s", id ? id : "");
  const char *length =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (length && strtoull(length, NULL, 10) > srv->options.max_body) {
    /* Answer before the body is read; MHD closes the connection afterwards. */
    state->too_big = true;
    return invoke(srv, conn, state);
  }
  return MHD_YES;
}

int server_start(const struct server_options *options, struct server **out_server,
                 struct error_info *err) {
  struct server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return error_set(err, RESULT_NOMEM, "", "out of memory starting the server");
  srv->options = *options;
  if (deadline_cond_init(&srv->idle) != RESULT_OK) {
    free(srv);
    return error_set(err, RESULT_NOMEM, "", "out of memory starting the server");
  }
  pthread_mutex_init(&srv->lock, NULL);

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(options->port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  srv->daemon = MHD_start_daemon(
      flags, options->port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT,
      options->max_connections ? options->max_connections : 256,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, srv, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
      MHD_OPTION_END);
  if (!srv->daemon) {
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    return error_set(err, RESULT_IO, "port",
                     "cannot listen on 127.0.0.1:%u (is the port in use?)",
                     (unsigned)options->port);
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : options->port;
  *out_server = srv;
  return RESULT_OK;
}

uint16_t server_port(const struct server *server) {
  return server->port;
}

unsigned server_in_flight(const struct server *server) {
  struct server *srv = (struct server *)server;
  pthread_mutex_lock(&srv->lock);
  unsigned n = srv->in_flight;
  pthread_mutex_unlock(&srv->lock);
  return n;
}

bool server_stop(struct server *srv, int drain_ms) {
  MHD_socket listener = MHD_quiesce_daemon(srv->daemon);
  if (listener != MHD_INVALID_SOCKET)
    close(listener);

  int64_t deadline = time_mono_ms() + drain_ms;
  pthread_mutex_lock(&srv->lock);
  srv->stopping = true;
  while (srv->in_flight > 0 && time_mono_ms() < deadline)
    (void)deadline_wait(&srv->idle, &srv->lock, deadline);
  unsigned left_over = srv->in_flight;
  pthread_mutex_unlock(&srv->lock);

  MHD_stop_daemon(srv->daemon);
  pthread_cond_destroy(&srv->idle);
  pthread_mutex_destroy(&srv->lock);
  free(srv);
  return left_over == 0;
}
