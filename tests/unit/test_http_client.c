/* Unit tests of http_client against a scripted HTTP/1.1 server on 127.0.0.1.
 *
 * The server runs in a thread of this process, on plain sockets (plain http is
 * allowed to loopback hosts only), serves one connection at a time, and answers
 * the n-th request with the n-th step of its script: a canned response, a slow
 * one, a connection closed without an answer, or an endless body. It counts the
 * connections it accepted, so keep-alive reuse is checked from the server's side.
 * Sleeps between retries go through the test hook, which records them. */
#define _GNU_SOURCE /* strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "azure/http_client.h"
#include "azure/http_client_testing.h"
#include "azure/retry.h"
#include "base/timeutil.h"

/* ---- the scripted server ---- */

enum step_kind { STEP_RESPOND, STEP_SLOW, STEP_CLOSE, STEP_ENDLESS };

struct step {
  enum step_kind kind;
  const char *response; /* STEP_RESPOND, STEP_SLOW */
  int delay_ms;         /* STEP_SLOW */
};

struct server {
  int listen_fd;
  int port;
  pthread_t thread;
  const struct step *script;
  size_t script_len;
  atomic_int accepts;
  atomic_int requests;
  atomic_bool stop;
  char last_request[8192]; /* head and body of the latest request */
  char buf[65536];         /* the connection's unread bytes */
};

static void pause_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void send_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    data += n;
    len -= (size_t)n;
  }
}

/* Reads until `buf` holds a whole request (head + Content-Length body); returns its
 * length, or 0 when the peer closed or the server stops. */
static size_t read_request(struct server *s, int fd, char *buf, size_t cap,
                           size_t *have) {
  for (;;) {
    buf[*have] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      size_t head = (size_t)(end + 4 - buf), body = 0;
      char *cl = strcasestr(buf, "\r\nContent-Length:");
      if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
      if (*have >= head + body)
        return head + body;
    }
    if (*have + 1 >= cap)
      return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (atomic_load(&s->stop))
      return 0;
    if (poll(&p, 1, 50) <= 0)
      continue;
    ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
    if (n <= 0)
      return 0;
    *have += (size_t)n;
  }
}

static void serve_connection(struct server *s, int fd) {
  char *buf = s->buf;
  size_t have = 0, len;
  while ((len = read_request(s, fd, buf, sizeof s->buf, &have)) > 0) {
    int index = atomic_fetch_add(&s->requests, 1);
    snprintf(s->last_request, sizeof s->last_request, "%.*s", (int)len, buf);
    memmove(buf, buf + len, have - len);
    have -= len;
    struct step step = {STEP_RESPOND,
                        "HTTP/1.1 500 Script Exhausted\r\nContent-Length: 0\r\n\r\n", 0};
    if ((size_t)index < s->script_len)
      step = s->script[index];
    switch (step.kind) {
      case STEP_CLOSE:
        return;
      case STEP_SLOW:
        for (int waited = 0; waited < step.delay_ms && !atomic_load(&s->stop);
             waited += 20)
          pause_ms(20);
        /* fall through */
      case STEP_RESPOND:
        send_all(fd, step.response, strlen(step.response));
        if (strcasestr(step.response, "Connection: close"))
          return;
        break;
      case STEP_ENDLESS: {
        const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Connection: close\r\n\r\n";
        send_all(fd, head, strlen(head));
        char chunk[16384];
        memset(chunk, 'x', sizeof chunk);
        for (int i = 0; i < 256 && !atomic_load(&s->stop); i++) /* 4 MiB at most */
          send_all(fd, chunk, sizeof chunk);
        return;
      }
    }
  }
}

static void *server_main(void *arg) {
  struct server *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
      continue;
    atomic_fetch_add(&s->accepts, 1);
    serve_connection(s, fd);
    close(fd);
  }
  return NULL;
}

static struct server *server_start(const struct step *script, size_t script_len) {
  struct server *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->script = script;
  s->script_len = script_len;
  s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->listen_fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t addr_len = sizeof addr;
  assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
  assert_int_equal(listen(s->listen_fd, 8), 0);
  assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
  s->port = ntohs(addr.sin_port);
  assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
  return s;
}

static void server_stop(struct server *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->thread, NULL);
  close(s->listen_fd);
  free(s);
}

#define START(script) server_start(script, sizeof script / sizeof *script)

/* ---- helpers ---- */

static int64_t sleeps[16];
static int sleep_count;

static void record_sleep(int64_t ms) {
  if (sleep_count < 16)
    sleeps[sleep_count] = ms;
  sleep_count++;
}

static char url_buf[256];

static const char *url_of(const struct server *s, const char *path) {
  snprintf(url_buf, sizeof url_buf, "http://127.0.0.1:%d%s", s->port, path);
  return url_buf;
}

static struct http_request get(const char *url, int64_t timeout_ms) {
  return (struct http_request){
      .method = "GET", .url = url, .deadline_ms = time_mono_ms() + timeout_ms};
}

static struct http_client_stats stats(void) {
  struct http_client_stats st;
  http_client_get_stats(&st);
  return st;
}

static int setup(void **state) {
  sleep_count = 0;
  http_client_set_sleep_for_test(record_sleep);
  http_client_set_retry_policy_for_test(NULL);
  return 0;
}

#define OK_HELLO                                                                         \
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"      \
  "{\"hello\":\"you\"}"

/* ---- tests ---- */

static void reuses_one_connection(void **state) {
  static const struct step script[] = {{STEP_RESPOND, OK_HELLO, 0},
                                       {STEP_RESPOND, OK_HELLO, 0},
                                       {STEP_RESPOND, OK_HELLO, 0}};
  struct server *s = START(script);
  struct http_client_stats before = stats();
  struct http_header headers[] = {{"X-Test", "yes"}, {"Content-Type", "text/plain"}};
  for (int i = 0; i < 3; i++) {
    struct http_request req = get(url_of(s, "/things?a=1"), 5000);
    if (i == 1) {
      req.method = "POST";
      req.body = "ping";
      req.body_len = 4;
      req.headers = headers;
      req.header_count = 2;
    }
    struct http_response resp;
    struct error_info err = {0};
    assert_int_equal(http_client_send(&req, &resp, &err), RESULT_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 15);
    assert_string_equal(resp.body, "{\"hello\":\"you\"}");
    assert_string_equal(resp.content_type, "application/json");
    assert_null(resp.retry_after);
    http_response_cleanup(&resp);
    if (i == 1) {
      assert_non_null(strstr(s->last_request, "POST /things?a=1 HTTP/1.1\r\n"));
      assert_non_null(strstr(s->last_request, "\r\nX-Test: yes\r\n"));
      assert_non_null(strstr(s->last_request, "\r\nUser-Agent: handler-test/1.0\r\n"));
      assert_null(strcasestr(s->last_request, "Expect:"));
      assert_non_null(strstr(s->last_request, "\r\n\r\nping"));
    }
  }
  struct http_client_stats after = stats();
  assert_int_equal(atomic_load(&s->accepts), 1);
  assert_int_equal(after.requests - before.requests, 3);
  assert_int_equal(after.connections - before.connections, 1);
  assert_int_equal(after.retries - before.retries, 0);
  server_stop(s);
}

static void honours_retry_after_seconds(void **state) {
  static const struct step script[] = {
      {STEP_RESPOND,
       "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy", 0},
      {STEP_RESPOND, OK_HELLO, 0}};
  struct server *s = START(script);
  struct http_client_stats before = stats();
  struct http_request req = get(url_of(s, "/"), 10000);
  struct http_response resp;
  struct error_info err = {0};
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_OK);
  assert_int_equal(resp.status, 200);
  assert_string_equal(resp.body, "{\"hello\":\"you\"}");
  assert_int_equal(sleep_count, 1);
  assert_int_equal(sleeps[0], 1000);
  assert_int_equal(atomic_load(&s->requests), 2);
  assert_int_equal(stats().retries - before.retries, 1);
  http_response_cleanup(&resp);
  server_stop(s);
}

static void honours_retry_after_ms_first(void **state) {
  static const struct step script[] = {
      {STEP_RESPOND,
       "HTTP/1.1 429 Too Many\r\nx-ms-retry-after-ms: 5000\r\nRETRY-AFTER-MS: 20\r\n"
       "Retry-After: 9\r\nContent-Length: 0\r\n\r\n",
       0},
      {STEP_RESPOND,
       "HTTP/1.1 500 Oops\r\nX-MS-Retry-After-Ms: 30\r\nRetry-After: 9\r\n"
       "Content-Length: 0\r\n\r\n",
       0},
      {STEP_RESPOND, OK_HELLO, 0}};
  struct server *s = START(script);
  struct http_request req = get(url_of(s, "/"), 10000);
  struct http_response resp;
  assert_int_equal(http_client_send_retry(&req, &resp, NULL), RESULT_OK);
  assert_int_equal(resp.status, 200);
  assert_int_equal(sleep_count, 2);
  assert_int_equal(sleeps[0], 20);
  assert_int_equal(sleeps[1], 30);
  assert_int_equal(atomic_load(&s->accepts), 1); /* retries reuse the connection too */
  http_response_cleanup(&resp);
  server_stop(s);
}

static void does_not_retry_final_answers(void **state) {
  static const struct step script[] = {
      {STEP_RESPOND, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", 0},
      {STEP_RESPOND,
       "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://elsewhere.example/x\r\n"
       "Content-Length: 0\r\n\r\n",
       0}};
  struct server *s = START(script);
  struct http_request req = get(url_of(s, "/"), 5000);
  struct http_response resp;
  assert_int_equal(http_client_send_retry(&req, &resp, NULL), RESULT_OK);
  assert_int_equal(resp.status, 404);
  assert_string_equal(resp.body, "not found");
  http_response_cleanup(&resp);
  /* redirects are handed back, not followed */
  assert_int_equal(http_client_send_retry(&req, &resp, NULL), RESULT_OK);
  assert_int_equal(resp.status, 307);
  assert_string_equal(resp.location, "https://elsewhere.example/x");
  assert_string_equal(resp.body, "");
  http_response_cleanup(&resp);
  assert_int_equal(sleep_count, 0);
  assert_int_equal(atomic_load(&s->requests), 2);
  server_stop(s);
}

static void retries_a_dropped_connection(void **state) {
  static const struct step script[] = {
      {STEP_CLOSE, NULL, 0}, {STEP_CLOSE, NULL, 0}, {STEP_RESPOND, OK_HELLO, 0}};
  struct server *s = START(script);
  struct http_request req = get(url_of(s, "/"), 5000);
  struct http_response resp;
  struct error_info err = {0};
  /* one attempt: a transport failure, said in a sentence */
  assert_int_equal(http_client_send(&req, &resp, &err), RESULT_TRANSIENT);
  assert_non_null(strstr(err.message, "127.0.0.1"));
  assert_null(resp.body);
  /* with retries: backoff (base 100 ms, +-20%), then the answer */
  static const struct retry_policy fast = {3, 100, 1000};
  http_client_set_retry_policy_for_test(&fast);
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_OK);
  assert_int_equal(resp.status, 200);
  assert_int_equal(sleep_count, 1);
  assert_in_range(sleeps[0], 80, 120);
  http_response_cleanup(&resp);
  server_stop(s);
}

static void gives_up_after_the_attempt_budget(void **state) {
  static const struct step script[] = {
      {STEP_CLOSE, NULL, 0}, {STEP_CLOSE, NULL, 0}, {STEP_CLOSE, NULL, 0}};
  struct server *s = START(script);
  static const struct retry_policy three = {3, 100, 150};
  http_client_set_retry_policy_for_test(&three);
  struct http_request req = get(url_of(s, "/"), 5000);
  struct http_response resp;
  struct error_info err = {0};
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_TRANSIENT);
  assert_true(err.message[0] != '\0');
  assert_int_equal(atomic_load(&s->requests), 3);
  assert_int_equal(sleep_count, 2);
  assert_in_range(sleeps[0], 80, 120);
  assert_in_range(sleeps[1], 120, 180); /* 200 capped at 150, +-20% */
  server_stop(s);
}

static void respects_the_deadline(void **state) {
  /* The server answers one connection at a time: the slow step gets its own. */
  static const struct step slow_script[] = {{STEP_SLOW, OK_HELLO, 3000}};
  static const struct step busy_script[] = {
      {STEP_RESPOND, "HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n",
       0}};
  struct server *slow = START(slow_script);
  struct server *busy = START(busy_script);
  struct http_response resp;
  struct error_info err = {0};

  /* a slow answer is cut at the deadline */
  int64_t start = time_mono_ms();
  struct http_request req = get(url_of(slow, "/slow"), 300);
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_TIMEOUT);
  int64_t took = time_mono_ms() - start;
  assert_in_range(took, 250, 1500);
  assert_non_null(strstr(err.message, "deadline"));
  assert_int_equal(sleep_count, 0);

  /* a retry-after beyond the deadline: the answer comes back at once, unslept */
  req = get(url_of(busy, "/busy"), 2000);
  start = time_mono_ms();
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_OK);
  assert_int_equal(resp.status, 503);
  assert_string_equal(resp.retry_after, "5");
  assert_int_equal(sleep_count, 0);
  assert_true(time_mono_ms() - start < 1000);
  http_response_cleanup(&resp);

  /* a deadline already past: no request at all */
  struct http_client_stats before = stats();
  req = get(url_of(busy, "/late"), -1);
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_TIMEOUT);
  assert_int_equal(stats().requests, before.requests);
  assert_int_equal(atomic_load(&busy->requests), 1);
  server_stop(slow);
  server_stop(busy);
}

static void caps_the_response_body(void **state) {
  static const struct step script[] = {
      {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", 0},
      {STEP_ENDLESS, NULL, 0},
      {STEP_RESPOND, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0}};
  struct server *s = START(script);
  struct http_response resp;
  struct error_info err = {0};
  /* announced too big: refused from the Content-Length */
  struct http_request req = get(url_of(s, "/"), 5000);
  req.max_response = 1000;
  assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_TOOBIG);
  assert_non_null(strstr(err.message, "1000-byte"));
  assert_null(resp.body);
  /* streamed without a length: aborted once past the cap, long before the end */
  req = get(url_of(s, "/"), 5000);
  req.max_response = 100000;
  assert_int_equal(http_client_send(&req, &resp, &err), RESULT_TOOBIG);
  /* exactly at the cap is fine */
  req = get(url_of(s, "/"), 5000);
  req.max_response = 10;
  assert_int_equal(http_client_send(&req, &resp, &err), RESULT_OK);
  assert_string_equal(resp.body, "0123456789");
  http_response_cleanup(&resp);
  assert_int_equal(sleep_count, 0);
  server_stop(s);
}

static void refuses_unsafe_requests_offline(void **state) {
  const char *bad_urls[] = {"http://example.invalid/",
                            "http://10.0.0.1/metadata",
                            "http://127.0.0.1.example.com/",
                            "ftp://127.0.0.1/file",
                            "file:///etc/passwd",
                            "not a url",
                            "",
                            NULL};
  struct http_client_stats before = stats();
  for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
    struct http_request req = get(bad_urls[i], 5000);
    struct http_response resp;
    struct error_info err = {0};
    assert_int_equal(http_client_send_retry(&req, &resp, &err), RESULT_INVALID);
    assert_string_equal(err.field, "url");
    assert_true(err.message[0] != '\0');
  }
  /* header injection */
  struct http_header evil[] = {{"X-A", "ok\r\nInjected: yes"}};
  struct http_request req = get("http://127.0.0.1:9/", 5000);
  req.headers = evil;
  req.header_count = 1;
  struct http_response resp;
  assert_int_equal(http_client_send(&req, &resp, NULL), RESULT_INVALID);
  assert_int_equal(stats().requests, before.requests);
  assert_int_equal(sleep_count, 0);
}

static void allows_loopback_http_and_https(void **state) {
  /* Nothing listens on port 9 of loopback: the URL passes the policy and the
   * connection is refused, a transient failure rather than RESULT_INVALID. */
  const char *urls[] = {"http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/",
                        "https://127.0.0.1:9/"};
  for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
    struct http_request req = get(urls[i], 3000);
    struct http_response resp;
    struct error_info err = {0};
    assert_int_equal(http_client_send(&req, &resp, &err), RESULT_TRANSIENT);
  }
}

#define CLOSE_HELLO "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"

static void *send_five(void *arg) {
  const char *url = arg;
  for (int i = 0; i < 5; i++) {
    struct http_request req = get(url, 10000);
    struct http_response resp;
    if (http_client_send_retry(&req, &resp, NULL) != RESULT_OK || resp.status != 200 ||
        strcmp(resp.body, "hi") != 0)
      return (void *)1;
    http_response_cleanup(&resp);
  }
  return NULL;
}

static void serves_threads_concurrently(void **state) {
  /* Every answer closes its connection, so the one-connection-at-a-time server
   * can interleave four client threads; the pool hands each thread a handle. */
  static struct step script[20];
  for (size_t i = 0; i < 20; i++)
    script[i] = (struct step){STEP_RESPOND, CLOSE_HELLO, 0};
  struct server *s = START(script);
  static char url[sizeof url_buf];
  snprintf(url, sizeof url, "%s", url_of(s, "/concurrent"));
  struct http_client_stats before = stats();
  pthread_t threads[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, send_five, url), 0);
  for (int i = 0; i < 4; i++) {
    void *failed = NULL;
    pthread_join(threads[i], &failed);
    assert_null(failed);
  }
  assert_int_equal(atomic_load(&s->requests), 20);
  assert_int_equal(atomic_load(&s->accepts), 20);
  assert_int_equal(stats().requests - before.requests, 20);
  assert_int_equal(stats().connections - before.connections, 20);
  server_stop(s);
}

static void escapes_url_parts(void **state) {
  char *e = http_client_escape("a b/c?d=e&f~g_h.i-j%");
  assert_string_equal(e, "a%20b%2Fc%3Fd%3De%26f~g_h.i-j%25");
  free(e);
  e = http_client_escape("https://management.azure.com/.default");
  assert_string_equal(e, "https%3A%2F%2Fmanagement.azure.com%2F.default");
  free(e);
  e = http_client_escape("\xc3\xa9");
  assert_string_equal(e, "%C3%A9");
  free(e);
  e = http_client_escape("");
  assert_string_equal(e, "");
  free(e);
}

static int group_setup(void **state) {
  struct error_info err = {0};
  struct http_client_options bad = {.ca_file = "/nonexistent/ca.pem"};
  if (http_client_global_init(&bad, &err) != RESULT_INVALID ||
      strcmp(err.field, "SSL_CERT_FILE") != 0)
    return -1;
  struct http_client_options options = {.user_agent = "handler-test/1.0",
                                        .connect_timeout_ms = 2000};
  if (http_client_global_init(&options, &err) != RESULT_OK)
    return -1;
  /* twice is a mistake, and says so */
  if (http_client_global_init(&options, &err) != RESULT_INVALID)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  http_client_global_cleanup();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(reuses_one_connection, setup),
      cmocka_unit_test_setup(honours_retry_after_seconds, setup),
      cmocka_unit_test_setup(honours_retry_after_ms_first, setup),
      cmocka_unit_test_setup(does_not_retry_final_answers, setup),
      cmocka_unit_test_setup(retries_a_dropped_connection, setup),
      cmocka_unit_test_setup(gives_up_after_the_attempt_budget, setup),
      cmocka_unit_test_setup(respects_the_deadline, setup),
      cmocka_unit_test_setup(caps_the_response_body, setup),
      cmocka_unit_test_setup(refuses_unsafe_requests_offline, setup),
      cmocka_unit_test_setup(allows_loopback_http_and_https, setup),
      cmocka_unit_test_setup(serves_threads_concurrently, setup),
      cmocka_unit_test_setup(escapes_url_parts, setup),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
