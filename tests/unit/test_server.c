/* Unit tests of the server over real loopback sockets: routing, framing (length
 * and chunked), caps, keep-alive, concurrency and draining on stop. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/log.h"
#include "host/server.h"

#define CONCURRENT 8

static pthread_barrier_t all_inside;
static int slow_ms;

/* Echoes the function, invocation id and body length; optionally waits until
 * CONCURRENT invocations are inside at once, or sleeps. */
static void fake_invoke(void *ctx, const struct server_request *req,
                        struct server_response *out) {
  if (strstr(req->body, "barrier"))
    pthread_barrier_wait(&all_inside);
  if (slow_ms)
    usleep(slow_ms * 1000);
  char *body = malloc(256);
  snprintf(body, 256, "{\"function\":\"%s\",\"id\":\"%s\",\"len\":%zu}", req->function,
           req->invocation_id, req->body_len);
  out->status = 200;
  out->body = body;
}

static struct server *start(void) {
  static const char *const functions[] = {"fn", NULL};
  struct server_options options = {.functions = functions,
                                   .max_body = 1024,
                                   .max_connections = 64,
                                   .invoke = fake_invoke};
  struct server *srv;
  struct error_info err;
  assert_int_equal(server_start(&options, &srv, &err), RESULT_OK);
  return srv;
}

static int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  return fd;
}

/* Sends `request` and reads one whole response (headers + Content-Length body). */
static char *exchange(int fd, const char *request) {
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  size_t cap = 8192, len = 0;
  char *buf = calloc(1, cap);
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strcasestr(buf, "Content-Length:");
    if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
      break;
  }
  return buf;
}

static char *request_once(uint16_t port, const char *request) {
  int fd = connect_to(port);
  char *response = exchange(fd, request);
  close(fd);
  return response;
}

static void answers_readiness_and_routes(void **state) {
  struct server *srv = start();
  uint16_t port = server_port(srv);
  char *r = request_once(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  assert_non_null(strcasestr(r, "Content-Type: application/json"));
  free(r);
  r = request_once(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 404"));
  assert_non_null(strstr(r, "\"NotFound\""));
  free(r);
  r = request_once(port, "GET /fn HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 405"));
  assert_non_null(strcasestr(r, "Allow: POST"));
  assert_non_null(strcasestr(r, "Content-Type: application/json"));
  free(r);
  assert_true(server_stop(srv, 1000));
}

static void reads_both_framings_and_keeps_alive(void **state) {
  struct server *srv = start();
  int fd = connect_to(server_port(srv));
  char *r =
      exchange(fd, "POST /fn HTTP/1.1\r\nHost: x\r\nX-Azure-Functions-InvocationId: "
                   "inv-1\r\nContent-Length: 5\r\n\r\nhello");
  assert_non_null(strstr(r, "{\"function\":\"fn\",\"id\":\"inv-1\",\"len\":5}"));
  free(r);
  /* The same connection carries a chunked request next. */
  r = exchange(fd, "POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  assert_non_null(strstr(r, "\"len\":7"));
  free(r);
  close(fd);
  assert_true(server_stop(srv, 1000));
}

static void refuses_bodies_over_the_cap(void **state) {
  struct server *srv = start();
  uint16_t port = server_port(srv);
  char *r =
      request_once(port, "POST /fn HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  assert_non_null(strstr(r, "HTTP/1.1 413"));
  assert_non_null(strstr(r, "PayloadTooLarge"));
  free(r);

  /* Chunked: the cap is found while the chunks arrive. */
  char request[4096];
  int n = snprintf(request, sizeof request,
                   "POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "%x\r\n",
                   2000);
  memset(request + n, 'a', 2000);
  strcpy(request + n + 2000, "\r\n0\r\n\r\n");
  r = request_once(port, request);
  assert_non_null(strstr(r, "HTTP/1.1 413"));
  free(r);
  assert_true(server_stop(srv, 1000));
}

static void *post_barrier(void *arg) {
  char *r = request_once(*(uint16_t *)arg, "POST /fn HTTP/1.1\r\nHost: x\r\n"
                                           "Content-Length: 7\r\n\r\nbarrier");
  bool ok = strstr(r, "HTTP/1.1 200") != NULL;
  free(r);
  return ok ? arg : NULL;
}

static void serves_invocations_concurrently(void **state) {
  pthread_barrier_init(&all_inside, NULL, CONCURRENT);
  struct server *srv = start();
  uint16_t port = server_port(srv);
  pthread_t threads[CONCURRENT];
  for (int i = 0; i < CONCURRENT; i++)
    pthread_create(&threads[i], NULL, post_barrier, &port);
  /* Each invocation waits until all are inside: this only finishes when they
   * really run at the same time. */
  for (int i = 0; i < CONCURRENT; i++) {
    void *ok;
    pthread_join(threads[i], &ok);
    assert_non_null(ok);
  }
  assert_true(server_stop(srv, 1000));
  pthread_barrier_destroy(&all_inside);
}

static void *post_plain(void *arg) {
  char *r = request_once(*(uint16_t *)arg, "POST /fn HTTP/1.1\r\nHost: x\r\n"
                                           "Content-Length: 2\r\n\r\n{}");
  return r;
}

static void stop_drains_in_flight_invocations(void **state) {
  slow_ms = 300;
  struct server *srv = start();
  uint16_t port = server_port(srv);
  pthread_t thread;
  pthread_create(&thread, NULL, post_plain, &port);
  while (server_in_flight(srv) == 0)
    usleep(1000);
  assert_true(server_stop(srv, 5000));
  char *r;
  pthread_join(thread, (void **)&r);
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  free(r);
  slow_ms = 0;
}

int main(void) {
  log_set_level(LOG_OFF);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(answers_readiness_and_routes),
      cmocka_unit_test(reads_both_framings_and_keeps_alive),
      cmocka_unit_test(refuses_bodies_over_the_cap),
      cmocka_unit_test(serves_invocations_concurrently),
      cmocka_unit_test(stop_drains_in_flight_invocations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
