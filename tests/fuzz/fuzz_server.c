/* Fuzz target: the HTTP request path through the server. One server is started
 * (server_start on 127.0.0.1, port 0) for the whole run; each input is sent as
 * raw bytes on a new loopback connection, the write side is shut, and the
 * answer is read until the server closes or 1 s passes. This is real libmicrohttpd
 * parsing plus the handler's routing (GET /, POST /{function}, 404, 405, 413,
 * chunked bodies), so it is slower than the pure parsers (a few thousand inputs
 * a second), which is the price of testing what the host's bytes really hit.
 * The invoke callback reads the body as JSON and answers with a JSON object.
 * After each input the server must still accept a connection. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "host/server.h"
#include "base/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void invoke(void *ctx, const struct server_request *request,
                   struct server_response *response) {
  json_t *doc =
      jsonx_parse(request->body, request->body_len, JSONX_DEFAULT_MAX_DEPTH, NULL, NULL);
  response->status = doc ? 200 : 400;
  response->body = strdup(doc ? "{\"Outputs\":{},\"Logs\":[]}" : "{\"error\":\"bad\"}");
  json_decref(doc);
}

/* A new connection to the server, or -1. libFuzzer's timer signal (SIGALRM,
 * once a second for -timeout) can interrupt connect(): that is retried. */
static int connect_to(uint16_t port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int attempt = 0; attempt < 10; attempt++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
      return fd;
    int saved = errno;
    close(fd);
    errno = saved;
    if (saved != EINTR)
      return -1;
  }
  return -1;
}

/* Waits for `events` on fd until the deadline; true when ready. */
static int wait_fd(int fd, short events, int64_t deadline) {
  int64_t left = deadline - time_mono_ms();
  if (left <= 0)
    return 0;
  struct pollfd p = {.fd = fd, .events = events};
  int n;
  while ((n = poll(&p, 1, (int)left)) < 0 && errno == EINTR) {
    left = deadline - time_mono_ms();
    if (left <= 0)
      return 0;
  }
  return n > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct server *server;
  static uint16_t port;
  if (!server) {
    log_set_level(LOG_OFF);
    static const char *const functions[] = {"function_app", "aml_events", NULL};
    struct server_options options = {.port = 0,
                                     .functions = functions,
                                     .max_body = 64 * 1024,
                                     .max_connections = 32,
                                     .invoke = invoke};
    struct error_info err = {0};
    if (server_start(&options, &server, &err) != RESULT_OK)
      abort();
    port = server_port(server);
  }
  int fd = connect_to(port);
  if (fd < 0) { /* the server stopped accepting */
    fprintf(stderr, "fuzz_server: connect to 127.0.0.1:%u: %s\n", port, strerror(errno));
    abort();
  }
  int64_t deadline = time_mono_ms() + 1000;
  size_t sent = 0;
  while (sent < size && wait_fd(fd, POLLOUT, deadline)) {
    ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0)
      break;
    sent += (size_t)n;
  }
  shutdown(fd, SHUT_WR);
  char buf[4096];
  while (wait_fd(fd, POLLIN, deadline)) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0)
      break;
  }
  close(fd);
  return 0;
}
