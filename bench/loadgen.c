/* Load generator for the benchmarks: speaks the Functions host's invocation
 * protocol (docs/protocols.md §1) to a handler on 127.0.0.1.
 *
 *   loadgen run  --port P --concurrency C --events N [--steps S] [--failed-every F]
 *   loadgen cold --port P [--invoke] [--log FILE] -- EXECUTABLE [ARGS...]
 *   loadgen file --events N [--steps S] [--failed-every F]   (a JSON array of events)
 *
 * `run` opens C keep-alive connections, one thread each, and POSTs N
 * invocations to /function_app between them (each thread takes the next event
 * index from a shared counter); it prints one JSON line: events, errors,
 * elapsed seconds, events/s, latency p50/p90/p99/max in microseconds. Every
 * event is unique (a random salt per run): a step run of a pipeline of S steps
 * (RunStatusChanged, terminal status; every F-th step Failed, the rest
 * Completed). The run id encodes what the nginx stand-in needs to answer for
 * it: {pipeline:8}-{step:4}-{4000 Completed | 4f00 Failed}-8000-{salt:12}; the
 * pipeline run is {pipeline:8}-0000-4000-8000-{salt:12}.
 *
 * `cold` measures start-up: it takes the time, forks and execs the handler
 * (FUNCTIONS_CUSTOMHANDLER_PORT must be in the environment), polls GET / every
 * 100 us (the host polls every 25 ms; finer polling measures the handler, not
 * the poll), and with --invoke then sends one invocation and waits for its
 * answer. It prints {"ready_ms":..,"first_ms":..,"status":..} and stops the
 * child with SIGTERM.
 *
 * Single file, no dependencies; threads only share the event counter and the
 * latency array (each slot written by one thread). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define SUB "6f3a1b2c-0000-4000-8000-000000000001"
#define RG "ml-rg"
#define WS "ml-ws"
#define EXP "82c99df0-345e-47f5-9f37-17182d398f02"

static int port;
static long events = 1000, steps = 5, failed_every = 5;
static int concurrency = 1;
static uint64_t salt;
static atomic_long next_index;
static atomic_long errors;
static double *latency_us;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void iso_now(char *buf, size_t size) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, size - n, ".%07ldZ", ts.tv_nsec / 100);
}

static void guid(uint64_t a, uint64_t b, char out[37]) {
  snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
           (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
           0x8000 | ((unsigned)(b >> 48) & 0x3fff),
           (unsigned long long)(b & 0xffffffffffffULL));
}

/* The Event Grid event of index i (a JSON object) into buf. */
static int event_json(long i, char *buf, size_t size) {
  long pipeline = i / steps + 1, step = i % steps + 1;
  bool failed = failed_every > 0 && step % failed_every == 0;
  char run[37], parent[37], id[37], node[9], when[40];
  unsigned long long s12 = salt & 0xffffffffffffULL;
  snprintf(run, sizeof run, "%08lx-%04lx-%s-8000-%012llx", pipeline & 0xffffffff, step,
           failed ? "4f00" : "4000", s12);
  snprintf(parent, sizeof parent, "%08lx-0000-4000-8000-%012llx", pipeline & 0xffffffff,
           s12);
  guid(salt ^ ((uint64_t)i << 20), (uint64_t)i * 0x9e3779b97f4a7c15ULL ^ salt, id);
  snprintf(node, sizeof node, "%08lx", (step * 2654435761u) & 0xffffffff);
  iso_now(when, sizeof when);
  return snprintf(
      buf, size,
      "{\"id\":\"%s\",\"topic\":\"/subscriptions/" SUB "/resourceGroups/" RG
      "/providers/Microsoft.MachineLearningServices/workspaces/" WS "\","
      "\"subject\":\"experiments/" EXP "/runs/%s\","
      "\"eventType\":\"Microsoft.MachineLearningServices.RunStatusChanged\","
      "\"eventTime\":\"%s\",\"data\":{\"experimentId\":\"" EXP "\","
      "\"experimentName\":\"bench-pipeline\",\"runId\":\"%s\",\"runType\":\"azureml."
      "StepRun\","
      "\"runTags\":{\"azureml.pipelinerunid\":\"%s\",\"azureml.nodeid\":\"%s\","
      "\"azureml.pipeline\":\"%s\",\"azureml.pipelineComponent\":\"masterescloud\"},"
      "\"runProperties\":{\"azureml.nodeid\":\"%s\",\"azureml.moduleName\":\"step%ld\","
      "\"ContentSnapshotId\":\"807a507e-b727-41de-a146-e2632d638d29\","
      "\"StepType\":\"PythonScriptStep\",\"_azureml.ComputeTargetType\":\"amlcompute\","
      "\"azureml.runsource\":\"azureml.StepRun\",\"azureml.pipelinerunid\":\"%s\"},"
      "\"runStatus\":\"%s\"},\"dataVersion\":\"2\",\"metadataVersion\":\"1\"}",
      id, run, when, run, parent, node, parent, node, step, parent,
      failed ? "Failed" : "Completed");
}

/* A whole HTTP request: POST /function_app with the invocation of event i. */
static int invocation_request(long i, char *buf, size_t size) {
  char ev[4096], body[8192], when[40], inv[37], rand_guid[37];
  int evlen = event_json(i, ev, sizeof ev);
  /* Metadata.data is the event's data object: find it in the event text. */
  const char *data = strstr(ev, "\"data\":{");
  data += 7;
  int datalen = (int)(strstr(data, ",\"dataVersion\"") - data);
  iso_now(when, sizeof when);
  guid(salt + (uint64_t)i * 7 + 1, (uint64_t)i, inv);
  guid(salt + (uint64_t)i * 7 + 3, (uint64_t)i ^ 0x5555, rand_guid);
  int blen = snprintf(body, sizeof body,
                      "{\"Data\":{\"event\":%.*s},\"Metadata\":{\"data\":%.*s,\"sys\":{"
                      "\"MethodName\":\"function_app\",\"UtcNow\":\"%s\","
                      "\"RandGuid\":\"%s\"}}}",
                      evlen, ev, datalen, data, when, rand_guid);
  return snprintf(buf, size,
                  "POST /function_app HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                  "X-Azure-Functions-InvocationId: %s\r\n"
                  "X-Azure-Functions-HostVersion: 4.1036.1.23224\r\n"
                  "User-Agent: Azure-Functions-Host/4.1036.1.23224\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                  port, inv, blen, body);
}

static int connect_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads one answer (Content-Length framing); returns the status or -1. */
static int read_answer(int fd, char *buf, size_t size) {
  size_t len = 0;
  char *end = NULL;
  while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
    if (len == size)
      return -1;
    ssize_t r = recv(fd, buf + len, size - len, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    len += (size_t)r;
  }
  int status = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
    return -1;
  long content_length = -1;
  for (char *p = buf; p < end; p++) {
    if ((*p == '\n') && strncasecmp(p + 1, "content-length:", 15) == 0)
      content_length = strtol(p + 16, NULL, 10);
  }
  if (content_length < 0)
    return -1;
  size_t have = len - (size_t)(end + 4 - buf);
  while (have < (size_t)content_length) {
    char sink[16384];
    ssize_t r = recv(fd, sink, sizeof sink, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    have += (size_t)r;
  }
  return status;
}

static void *worker(void *arg) {
  (void)arg;
  char *req = malloc(16384), *ans = malloc(65536);
  int fd = -1;
  for (;;) {
    long i = atomic_fetch_add(&next_index, 1);
    if (i >= events)
      break;
    int n = invocation_request(i, req, 16384);
    double t0 = now_s();
    int status = -1;
    for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
      if (fd < 0 && (fd = connect_port()) < 0)
        break;
      if (send_all(fd, req, (size_t)n) == 0)
        status = read_answer(fd, ans, 65536);
      if (status < 0) {
        close(fd);
        fd = -1;
      }
    }
    latency_us[i] = (now_s() - t0) * 1e6;
    if (status != 200) {
      long e = atomic_fetch_add(&errors, 1);
      if (e < 3)
        fprintf(stderr, "loadgen: event %ld answered %d\n", i, status);
    }
  }
  if (fd >= 0)
    close(fd);
  free(req);
  free(ans);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(const double *sorted, long n, double p) {
  long i = (long)(p * (double)(n - 1) + 0.5);
  return sorted[i < n ? i : n - 1];
}

static int cmd_run(void) {
  latency_us = calloc((size_t)events, sizeof *latency_us);
  pthread_t *t = calloc((size_t)concurrency, sizeof *t);
  double t0 = now_s();
  for (int i = 0; i < concurrency; i++)
    pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < concurrency; i++)
    pthread_join(t[i], NULL);
  double elapsed = now_s() - t0;
  qsort(latency_us, (size_t)events, sizeof *latency_us, cmp_double);
  printf("{\"events\":%ld,\"errors\":%ld,\"concurrency\":%d,\"elapsed_s\":%.6f,"
         "\"events_per_s\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
         "\"max_us\":%.1f}\n",
         events, atomic_load(&errors), concurrency, elapsed, events / elapsed,
         pct(latency_us, events, 0.50), pct(latency_us, events, 0.90),
         pct(latency_us, events, 0.99), latency_us[events - 1]);
  return atomic_load(&errors) ? 1 : 0;
}

static int cmd_file(void) {
  char ev[4096];
  fputs("[\n", stdout);
  for (long i = 0; i < events; i++) {
    event_json(i, ev, sizeof ev);
    printf("%s%s\n", ev, i + 1 < events ? "," : "");
  }
  fputs("]\n", stdout);
  return 0;
}

static int cmd_cold(char **argv, bool invoke, const char *log) {
  char ans[65536], req[16384];
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  double ready = -1, first = -1;
  int status = -1;
  while (now_s() - t0 < 10) {
    int fd = connect_port();
    if (fd < 0) {
      if (waitpid(pid, NULL, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      usleep(100);
      continue;
    }
    static const char get[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int st =
        send_all(fd, get, sizeof get - 1) == 0 ? read_answer(fd, ans, sizeof ans) : -1;
    close(fd);
    if (st > 0) {
      ready = now_s() - t0;
      break;
    }
    usleep(100);
  }
  if (ready >= 0 && invoke) {
    int fd = connect_port();
    int n = invocation_request(0, req, sizeof req);
    if (fd >= 0 && send_all(fd, req, (size_t)n) == 0)
      status = read_answer(fd, ans, sizeof ans);
    first = now_s() - t0;
    if (fd >= 0)
      close(fd);
  }
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
  printf("{\"ready_ms\":%.3f,\"first_ms\":%.3f,\"status\":%d}\n", ready * 1e3,
         first >= 0 ? first * 1e3 : -1.0, status);
  return ready >= 0 && (!invoke || status == 200) ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen run|cold|file [options]\n");
    return 2;
  }
  const char *mode = argv[1], *log = NULL;
  bool invoke = false;
  int i = 2;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (strcmp(argv[i], "--invoke") == 0) {
      invoke = true;
      continue;
    }
    if (i + 1 >= argc)
      break;
    const char *v = argv[++i], *k = argv[i - 1];
    if (!strcmp(k, "--port"))
      port = atoi(v);
    else if (!strcmp(k, "--concurrency"))
      concurrency = atoi(v);
    else if (!strcmp(k, "--events"))
      events = atol(v);
    else if (!strcmp(k, "--steps"))
      steps = atol(v);
    else if (!strcmp(k, "--failed-every"))
      failed_every = atol(v);
    else if (!strcmp(k, "--log"))
      log = v;
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", k);
      return 2;
    }
  }
  int fd = open("/dev/urandom", O_RDONLY);
  if (fd < 0 || read(fd, &salt, sizeof salt) != (ssize_t)sizeof salt)
    salt = (uint64_t)time(NULL) * 2654435761u;
  if (fd >= 0)
    close(fd);
  if (concurrency < 1 || events < 1 || steps < 1)
    return 2;
  if (!strcmp(mode, "run"))
    return cmd_run();
  if (!strcmp(mode, "file"))
    return cmd_file();
  if (!strcmp(mode, "cold") && i < argc)
    return cmd_cold(argv + i, invoke, log);
  fprintf(stderr, "loadgen: bad mode or missing command\n");
  return 2;
}
