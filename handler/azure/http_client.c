/* The HTTP transport over libcurl (the only file that includes it); see
 * http_client.h.
 *
 * Connection reuse. libcurl 7.88 documents that a connection cache shared through
 * a CURLSH must not be used by concurrent threads, so connections live in a pool
 * of easy handles instead: a sending thread takes an idle handle (LIFO, so a
 * sequential caller keeps hitting the same warm connection), runs one transfer and
 * puts it back after curl_easy_reset(), which keeps the handle's live connections.
 * DNS cache and TLS sessions are shared by all handles through one CURLSH with a
 * mutex per lock type, so a second handle's first connection still skips the DNS
 * lookup and the full TLS handshake. At most POOL_MAX_IDLE handles stay idle.
 *
 * Trusted roots. libcurl's mbedTLS backend parses its CA bundle into a fresh
 * mbedtls_x509_crt for every TLS connection (vtls/mbedtls.c in 7.88), ~140
 * roots with the system bundle, held as long as the connection. The roots are
 * instead parsed once, by the first request (not at start, where the
 * Functions host would wait for GET / meanwhile), into one mbedtls_x509_crt
 * that every TLS configuration shares through CURLOPT_SSL_CTX_FUNCTION
 * (libcurl hands it the connection's mbedtls_ssl_config); libcurl is told to
 * load no roots of its own. mbedTLS only reads a parsed chain while it
 * verifies, so concurrent handshakes can share it (the TSan stage runs
 * concurrent handshakes against it). When the roots cannot be
 * loaded, or the TLS backend is not mbedTLS, libcurl loads them itself, as
 * before, and reports what is wrong with them on each request.
 *
 * Policy applied to every transfer (nothing in a request can change it): TLS peer
 * and host verification on, TLS 1.2 or later, HTTPS only -- except plain http://
 * to a loopback host (127.0.0.1, localhost, ::1), which App Service's managed
 * identity endpoint and the unit tests use; loopback requests also bypass any
 * proxy. Redirects are never followed (callers handle 307/308 themselves). The
 * body is capped at max_response: a larger Content-Length, or more bytes than
 * announced, aborts the transfer with RESULT_TOOBIG. The connect timeout and the
 * whole transfer are bounded by the caller's absolute deadline; a deadline
 * already past fails without touching the network. HTTP/1.1 is used: the easy
 * interface sends one request per connection at a time anyway.
 *
 * Errors: CURLcode is translated here (bad URL -> RESULT_INVALID, deadline ->
 * RESULT_TIMEOUT, cap -> RESULT_TOOBIG, any other transport failure ->
 * RESULT_TRANSIENT) with a sentence naming the method and host, never a header
 * value or the query string.
 *
 * Threading: after http_client_global_init() every function is thread-safe; the
 * pool and the share have their own mutexes and the counters are atomic. */
#include "azure/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "azure/http_client_testing.h"
#include "base/log.h"
#include "base/loopback.h"
#include "azure/retry.h"
#include "base/timeutil.h"

#define POOL_MAX_IDLE 64
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
/* A transfer that timed out this close to the deadline ran into the deadline. */
#define DEADLINE_SLACK_MS 20
#define DEFAULT_USER_AGENT "aml-event-handler/" HANDLER_VERSION
#define MAX_HEADER_VALUE 8192 /* longer captured header values are cut */

static struct {
  bool initialized;
  CURLSH *share;
  pthread_mutex_t ca_lock;
  bool ca_tried;             /* under ca_lock: load_ca_roots() ran */
  bool ca_loaded;            /* ca_roots holds at least one certificate */
  mbedtls_x509_crt ca_roots; /* shared by every TLS configuration, read-only */
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
  pthread_mutex_t pool_lock;
  CURL *idle[POOL_MAX_IDLE];
  size_t idle_count;
  char *ca_file;
  char *user_agent;
  long connect_timeout_ms;
} client = {.pool_lock = PTHREAD_MUTEX_INITIALIZER, .ca_lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint64_t stat_requests;
static _Atomic uint64_t stat_connections;
static _Atomic uint64_t stat_retries;

static http_client_sleep_fn sleep_hook;
static struct retry_policy retry_override;
static bool has_retry_override;

/* One transfer's state, seen by the write and header callbacks. */
struct transfer {
  char *body; /* NUL-terminated once anything arrived */
  size_t len;
  size_t cap;
  size_t max;
  bool too_big;
  bool no_memory;
  struct http_response *response;
};

/* ---- share locks and the handle pool ---- */

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access,
                       void *userptr) {
  if (data >= 0 && data < CURL_LOCK_DATA_LAST)
    pthread_mutex_lock(&client.share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *userptr) {
  if (data >= 0 && data < CURL_LOCK_DATA_LAST)
    pthread_mutex_unlock(&client.share_locks[data]);
}

static CURL *handle_acquire(void) {
  CURL *h = NULL;
  pthread_mutex_lock(&client.pool_lock);
  if (client.idle_count > 0)
    h = client.idle[--client.idle_count];
  pthread_mutex_unlock(&client.pool_lock);
  if (h)
    return h;
  if (!(h = curl_easy_init()))
    return NULL;
  curl_easy_setopt(h, CURLOPT_SHARE, client.share); /* kept by curl_easy_reset() */
  return h;
}

/* Back to the pool with its connections; options are reset for the next user. */
static void handle_release(CURL *h) {
  curl_easy_reset(h);
  pthread_mutex_lock(&client.pool_lock);
  if (client.idle_count < POOL_MAX_IDLE) {
    client.idle[client.idle_count++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&client.pool_lock);
  if (h)
    curl_easy_cleanup(h);
}

/* ---- init and cleanup ---- */

void http_client_global_cleanup(void) {
  if (!client.initialized)
    return;
  for (size_t i = 0; i < client.idle_count; i++)
    curl_easy_cleanup(client.idle[i]);
  client.idle_count = 0;
  curl_share_cleanup(client.share);
  client.share = NULL;
  if (client.ca_tried)
    mbedtls_x509_crt_free(&client.ca_roots);
  client.ca_loaded = client.ca_tried = false;
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&client.share_locks[i]);
  free(client.ca_file);
  free(client.user_agent);
  client.ca_file = client.user_agent = NULL;
  curl_global_cleanup();
  client.initialized = false;
}

/* Parses the trusted roots into client.ca_roots when libcurl's TLS backend is
 * mbedTLS: SSL_CERT_FILE, else libcurl's compiled-in bundle and directory. As
 * libcurl does, a bundle counts if at least one certificate in it parses. */
static int load_ca_roots(struct error_info *err) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  if (!v->ssl_version || strncmp(v->ssl_version, "mbedTLS/", 8) != 0)
    return RESULT_OK;
  const char *file = client.ca_file, *dir = NULL;
  CURL *probe = NULL;
  if (!file) {
    if (!(probe = curl_easy_init()))
      return error_set(err, RESULT_NOMEM, "",
                       "out of memory initializing the HTTP client");
    curl_easy_getinfo(probe, CURLINFO_CAINFO, &file);
    curl_easy_getinfo(probe, CURLINFO_CAPATH, &dir);
  }
  int result = RESULT_OK;
  if (file && mbedtls_x509_crt_parse_file(&client.ca_roots, file) < 0) {
    result = error_set(err, RESULT_INVALID, client.ca_file ? "SSL_CERT_FILE" : "",
                       "no certificate could be loaded from the CA file %s", file);
  } else if (dir && mbedtls_x509_crt_parse_path(&client.ca_roots, dir) < 0) {
    result = error_set(err, RESULT_INVALID, "", "cannot use the CA directory %s", dir);
  } else if (!file && !dir) {
    result = error_set(err, RESULT_INVALID, "SSL_CERT_FILE",
                       "libcurl has no default CA bundle: set SSL_CERT_FILE");
  } else if (client.ca_roots.version == 0) {
    result = error_set(err, RESULT_INVALID, client.ca_file ? "SSL_CERT_FILE" : "",
                       "no certificate could be loaded from the CA file %s",
                       file ? file : dir);
  }
  client.ca_loaded = result == RESULT_OK;
  curl_easy_cleanup(probe);
  return result;
}

/* The shared roots, parsed by the first caller; NULL: libcurl loads its own. */
static mbedtls_x509_crt *shared_roots(void) {
  pthread_mutex_lock(&client.ca_lock);
  if (!client.ca_tried) {
    client.ca_tried = true;
    mbedtls_x509_crt_init(&client.ca_roots);
    struct error_info err = {0};
    if (load_ca_roots(&err) != RESULT_OK)
      log_warn("event=ca_store_unshared reason=\"%s\"", err.message);
  }
  mbedtls_x509_crt *roots = client.ca_loaded ? &client.ca_roots : NULL;
  pthread_mutex_unlock(&client.ca_lock);
  return roots;
}

int http_client_global_init(const struct http_client_options *options,
                            struct error_info *err) {
  if (client.initialized)
    return error_set(err, RESULT_INVALID, "", "the HTTP client is already initialized");
  const char *ca_file = options ? options->ca_file : NULL;
  if (ca_file && access(ca_file, R_OK) != 0)
    return error_set(err, RESULT_INVALID, "SSL_CERT_FILE",
                     "cannot read the CA file %s: %s", ca_file, strerror(errno));
  CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (cc != CURLE_OK)
    return error_set(err, RESULT_IO, "", "libcurl failed to initialize: %s",
                     curl_easy_strerror(cc));
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&client.share_locks[i], NULL);
  client.initialized = true; /* from here on, cleanup undoes whatever was done */
  const char *agent =
      options && options->user_agent ? options->user_agent : DEFAULT_USER_AGENT;
  client.connect_timeout_ms = options && options->connect_timeout_ms > 0
                                  ? options->connect_timeout_ms
                                  : DEFAULT_CONNECT_TIMEOUT_MS;
  if (!(client.user_agent = strdup(agent)) ||
      (ca_file && !(client.ca_file = strdup(ca_file))))
    goto nomem;
  if (!(client.share = curl_share_init()))
    goto nomem;
  if (curl_share_setopt(client.share, CURLSHOPT_LOCKFUNC, share_lock) ||
      curl_share_setopt(client.share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
      curl_share_setopt(client.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
      curl_share_setopt(client.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
    http_client_global_cleanup();
    return error_set(err, RESULT_IO, "", "libcurl refused to share DNS and TLS sessions");
  }
  log_debug("event=http_client_init ca_file=%s connect_timeout_ms=%ld",
            client.ca_file ? client.ca_file : "(system)", client.connect_timeout_ms);
  return RESULT_OK;
nomem:
  http_client_global_cleanup();
  return error_set(err, RESULT_NOMEM, "", "out of memory initializing the HTTP client");
}

/* ---- callbacks ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  struct transfer *t = userdata;
  size_t n = size * nmemb;
  if (n > t->max - t->len) {
    t->too_big = true;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + n + 1)
      cap *= 2;
    if (cap > t->max + 1)
      cap = t->max + 1;
    char *grown = realloc(t->body, cap);
    if (!grown) {
      t->no_memory = true;
      return 0;
    }
    t->body = grown;
    t->cap = cap;
  }
  memcpy(t->body + t->len, data, n);
  t->len += n;
  t->body[t->len] = '\0';
  return n;
}

static void clear_captured(struct http_response *r) {
  char **slots[] = {&r->retry_after,        &r->retry_after_ms, &r->x_ms_retry_after_ms,
                    &r->location,           &r->content_type,   &r->etag,
                    &r->next_partition_key, &r->next_row_key};
  for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
    free(*slots[i]);
    *slots[i] = NULL;
  }
}

/* Called once per header line, "Name: value\r\n", and for each status line. */
static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
  struct transfer *t = userdata;
  size_t n = size * nitems;
  if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
    clear_captured(t->response); /* a new response (after 100 Continue) starts */
    return n;
  }
  const char *colon = memchr(line, ':', n);
  if (!colon)
    return n;
  static const struct {
    const char *name;
    size_t offset;
  } wanted[] = {
      {"Retry-After", offsetof(struct http_response, retry_after)},
      {"retry-after-ms", offsetof(struct http_response, retry_after_ms)},
      {"x-ms-retry-after-ms", offsetof(struct http_response, x_ms_retry_after_ms)},
      {"Location", offsetof(struct http_response, location)},
      {"Content-Type", offsetof(struct http_response, content_type)},
      {"ETag", offsetof(struct http_response, etag)},
      {"x-ms-continuation-NextPartitionKey",
       offsetof(struct http_response, next_partition_key)},
      {"x-ms-continuation-NextRowKey", offsetof(struct http_response, next_row_key)},
  };
  size_t name_len = (size_t)(colon - line);
  for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++) {
    if (strlen(wanted[i].name) != name_len || strncasecmp(line, wanted[i].name, name_len))
      continue;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
      v++;
    while (end > v &&
           (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
      end--;
    size_t len = (size_t)(end - v);
    char **slot = (char **)((char *)t->response + wanted[i].offset);
    free(*slot);
    if (!(*slot = strndup(v, len > MAX_HEADER_VALUE ? MAX_HEADER_VALUE : len))) {
      t->no_memory = true;
      return 0;
    }
    break;
  }
  return n;
}

/* ---- one attempt ---- */

/* Parses and vets the URL. On success *out_url is the parsed form curl will use
 * (the same parse that was checked) and `host` names the host for messages. */
static int check_url(const char *url, CURLU **out_url, bool *out_loopback, char *host,
                     size_t host_size, struct error_info *err) {
  int result = RESULT_NOMEM;
  char *scheme = NULL, *h = NULL;
  CURLU *u = curl_url();
  if (!u)
    goto done;
  result = RESULT_INVALID;
  if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
    error_set(err, RESULT_INVALID, "url", "the request URL is not a valid absolute URL");
    goto done;
  }
  snprintf(host, host_size, "%s", h);
  *out_loopback = loopback_host(h, strlen(h));
  if (strcasecmp(scheme, "https") != 0 &&
      !(strcasecmp(scheme, "http") == 0 && *out_loopback)) {
    error_set(err, RESULT_INVALID, "url",
              "refusing %s:// to %s: only https, or http to a loopback host, is allowed",
              scheme, h);
    goto done;
  }
  *out_url = u;
  u = NULL;
  result = RESULT_OK;
done:
  curl_free(scheme);
  curl_free(h);
  curl_url_cleanup(u);
  return result;
}

static bool header_is_safe(const struct http_header *h) {
  return h->name && h->value && *h->name && !strpbrk(h->name, "\r\n:") &&
         !strpbrk(h->value, "\r\n");
}

/* Builds "Name: value" lines; "Name;" is curl's way to send an empty value. */
static int build_headers(const struct http_request *req, struct curl_slist **out,
                         struct error_info *err) {
  struct curl_slist *list = NULL, *next;
  bool has_expect = false;
  for (size_t i = 0; i < req->header_count; i++) {
    const struct http_header *h = &req->headers[i];
    if (!header_is_safe(h)) {
      curl_slist_free_all(list);
      return error_set(err, RESULT_INVALID, h->name ? h->name : "",
                       "a request header has an empty name or a line break");
    }
    has_expect |= strcasecmp(h->name, "Expect") == 0;
    size_t len = strlen(h->name) + strlen(h->value) + 3;
    char *line = malloc(len);
    if (!line)
      goto nomem;
    snprintf(line, len, *h->value ? "%s: %s" : "%s;", h->name, h->value);
    next = curl_slist_append(list, line);
    free(line);
    if (!next)
      goto nomem;
    list = next;
  }
  /* No "Expect: 100-continue" round trip before large bodies. */
  if (!has_expect) {
    if (!(next = curl_slist_append(list, "Expect:")))
      goto nomem;
    list = next;
  }
  *out = list;
  return RESULT_OK;
nomem:
  curl_slist_free_all(list);
  return error_set(err, RESULT_NOMEM, "", "out of memory building request headers");
}

/* TLS 1.2 suites offered, best first: forward secret and AEAD only (libcurl
 * would offer every suite mbedTLS has, CBC and static RSA included).
 * ChaCha20-Poly1305 comes first: in mbedTLS 2.28 it costs fewer instructions
 * per byte than AES-GCM (measured: ~260 k against ~350 k per event). Every
 * Azure endpoint the handler calls accepts the ECDHE AES-GCM suites. */
static const int tls_ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

/* Key exchange groups, best first. mbedTLS's default list starts with
 * secp521r1, which servers honouring the client's order then use: four times
 * the cost of a P-256 or X25519 exchange per full handshake. The list also
 * bounds the curves of ECDSA certificates, so P-384 and P-521 stay. */
static const mbedtls_ecp_group_id tls_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};

/* libcurl calls this for each new TLS connection with its mbedtls_ssl_config,
 * after its own TLS options and before the handshake. libcurl's mbedTLS backend
 * completes a handshake whatever the peer presents and rejects a bad peer
 * afterwards (MBEDTLS_SSL_VERIFY_OPTIONAL); requiring verification instead ends
 * the handshake itself with a fatal alert, before the client's Finished, as
 * OpenSSL does. `roots`: the shared roots, or NULL when libcurl loaded its own. */
static CURLcode tls_setup(CURL *h, void *ssl_config, void *roots) {
  mbedtls_ssl_conf_authmode(ssl_config, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ciphersuites(ssl_config, tls_ciphersuites);
  mbedtls_ssl_conf_curves(ssl_config, tls_curves);
  if (roots)
    mbedtls_ssl_conf_ca_chain(ssl_config, roots, NULL);
  return CURLE_OK;
}

static void configure(CURL *h, const struct http_request *req, CURLU *url, bool loopback,
                      struct curl_slist *headers, struct transfer *t,
                      int64_t remaining_ms, char *errbuf) {
  curl_easy_setopt(h, CURLOPT_CURLU, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, loopback ? "http,https" : "https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  mbedtls_x509_crt *roots = shared_roots();
  curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, tls_setup);
  curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, roots);
  if (roots) { /* the shared roots replace libcurl's own loading */
    curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
  } else if (client.ca_file) { /* replaces the system bundle and directory */
    curl_easy_setopt(h, CURLOPT_CAINFO, client.ca_file);
    curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
  }
  if (loopback)
    curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  /* libcurl copies each HTTPS request into an upload buffer it keeps per
   * handle, 64 kB by default; 16 kB (its minimum) holds our requests. */
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, client.user_agent);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* the cap applies after decoding */
  long connect_ms = client.connect_timeout_ms < remaining_ms ? client.connect_timeout_ms
                                                             : (long)remaining_ms;
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)remaining_ms);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  const char *method = req->method ? req->method : "GET";
  if (strcmp(method, "GET") == 0 && !req->body) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    /* POST semantics carry the body; another verb only renames the request. */
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
}

/* Maps a failed transfer to a result and a sentence. */
static int translate(CURLcode cc, const struct transfer *t, const char *method,
                     const char *host, int64_t deadline_ms, const char *errbuf,
                     struct error_info *err) {
  const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
  if (t->no_memory)
    return error_set(err, RESULT_NOMEM, "", "out of memory receiving from %s", host);
  if (t->too_big || cc == CURLE_FILESIZE_EXCEEDED)
    return error_set(err, RESULT_TOOBIG, "",
                     "the response of %s %s exceeds the %zu-byte limit", method, host,
                     t->max);
  switch (cc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return error_set(err, RESULT_INVALID, "url", "%s %s: bad URL (%s)", method, host,
                       detail);
    case CURLE_OPERATION_TIMEDOUT:
      /* curl's own clock may fire the whole-transfer timeout a millisecond before
       * ours reaches the deadline: that is the deadline, not a connect timeout */
      if (time_mono_ms() + DEADLINE_SLACK_MS >= deadline_ms)
        return error_set(err, RESULT_TIMEOUT, "",
                         "%s %s did not finish before the deadline", method, host);
      /* the connect timeout, with time left: worth another try */
      return error_set(err, RESULT_TRANSIENT, "", "%s %s: %s", method, host, detail);
    default:
      return error_set(err, RESULT_TRANSIENT, "", "%s %s failed: %s", method, host,
                       detail);
  }
}

int http_client_send(const struct http_request *request, struct http_response *out,
                     struct error_info *err) {
  memset(out, 0, sizeof *out);
  if (!client.initialized)
    return error_set(err, RESULT_INVALID, "", "http_client_global_init() was not called");
  const char *method = request->method ? request->method : "GET";
  int64_t remaining_ms = request->deadline_ms - time_mono_ms();
  if (remaining_ms <= 0)
    return error_set(err, RESULT_TIMEOUT, "", "the deadline passed before %s was sent",
                     method);
  if (remaining_ms > LONG_MAX)
    remaining_ms = LONG_MAX;

  int result;
  char host[256] = "", errbuf[CURL_ERROR_SIZE] = "";
  bool loopback = false;
  CURLU *url = NULL;
  CURL *h = NULL;
  struct curl_slist *headers = NULL;
  struct transfer t = {.response = out,
                       .max = request->max_response ? request->max_response
                                                    : HTTP_CLIENT_DEFAULT_MAX_RESPONSE};
  if (t.max > SIZE_MAX / 2) /* keeps `max + 1` and the doubling from wrapping */
    t.max = SIZE_MAX / 2;
  if ((result = check_url(request->url, &url, &loopback, host, sizeof host, err)) ||
      (result = build_headers(request, &headers, err)))
    goto done;
  if (!(h = handle_acquire())) {
    result = error_set(err, RESULT_NOMEM, "", "out of memory creating a transfer");
    goto done;
  }
  configure(h, request, url, loopback, headers, &t, remaining_ms, errbuf);
  atomic_fetch_add(&stat_requests, 1);
  CURLcode cc = curl_easy_perform(h);
  long connects = 0;
  if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
    atomic_fetch_add(&stat_connections, (uint64_t)connects);
  if (cc != CURLE_OK || t.too_big || t.no_memory) {
    result = translate(cc, &t, method, host, request->deadline_ms, errbuf, err);
    log_debug("event=http_error method=%s host=%s result=%s curl=%d", method, host,
              result_str(result), (int)cc);
    goto done;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
  if (!t.body && !(t.body = strdup(""))) {
    result = error_set(err, RESULT_NOMEM, "", "out of memory receiving from %s", host);
    goto done;
  }
  out->body = t.body;
  out->body_len = t.len;
  t.body = NULL;
  log_debug(
      "event=http_response method=%s host=%s status=%ld bytes=%zu new_connections=%ld",
      method, host, out->status, out->body_len, connects);
  result = RESULT_OK;
done:
  if (h)
    handle_release(h);
  curl_slist_free_all(headers);
  curl_url_cleanup(url);
  free(t.body);
  if (result != RESULT_OK)
    http_response_cleanup(out);
  return result;
}

/* ---- retries ---- */

void http_client_set_sleep_for_test(http_client_sleep_fn fn) {
  sleep_hook = fn;
}

void http_client_set_retry_policy_for_test(const struct retry_policy *policy) {
  has_retry_override = policy != NULL;
  if (policy)
    retry_override = *policy;
}

static void sleep_ms(int64_t ms) {
  if (sleep_hook) {
    sleep_hook(ms);
    return;
  }
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Jitter source: a per-thread xorshift seeded from the clock and the thread. */
static uint32_t jitter_random(void) {
  static _Thread_local uint32_t state;
  if (state == 0)
    state = (uint32_t)time_mono_ms() ^ (uint32_t)(uintptr_t)&state ^ 0x9e3779b9u;
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

int http_client_send_retry(const struct http_request *request, struct http_response *out,
                           struct error_info *err) {
  const struct retry_policy *policy =
      has_retry_override ? &retry_override : &RETRY_POLICY_DEFAULT;
  const char *method = request->method ? request->method : "GET";
  for (int attempt = 0;; attempt++) {
    if (attempt > 0)
      atomic_fetch_add(&stat_retries, 1);
    int result = http_client_send(request, out, err);
    bool retryable = result == RESULT_TRANSIENT ||
                     (result == RESULT_OK && retry_status_is_retryable(out->status));
    if (!retryable || attempt + 1 >= policy->max_attempts)
      return result;
    int64_t delay = retry_delay_ms(
        policy, attempt, result == RESULT_OK ? out->retry_after_ms : NULL,
        result == RESULT_OK ? out->x_ms_retry_after_ms : NULL,
        result == RESULT_OK ? out->retry_after : NULL, time_now_ms(), jitter_random());
    int64_t left = request->deadline_ms - time_mono_ms();
    if (delay >= left) { /* no room for another attempt: the last answer stands */
      log_info("event=http_retry_abandoned method=%s attempt=%d delay_ms=%lld "
               "deadline_left_ms=%lld status=%ld",
               method, attempt + 1, (long long)delay, (long long)left,
               result == RESULT_OK ? out->status : 0L);
      return result;
    }
    log_info("event=http_retry method=%s attempt=%d delay_ms=%lld status=%ld reason=%s",
             method, attempt + 1, (long long)delay,
             result == RESULT_OK ? out->status : 0L,
             result == RESULT_OK ? "status" : "transport");
    if (result == RESULT_OK)
      http_response_cleanup(out);
    error_clear(err);
    sleep_ms(delay);
  }
}

/* ---- small helpers ---- */

void http_response_cleanup(struct http_response *response) {
  if (!response)
    return;
  free(response->body);
  clear_captured(response);
  memset(response, 0, sizeof *response);
}

void http_client_get_stats(struct http_client_stats *out) {
  out->requests = atomic_load(&stat_requests);
  out->connections = atomic_load(&stat_connections);
  out->retries = atomic_load(&stat_retries);
}

char *http_client_escape(const char *text) {
  static const char hex[] = "0123456789ABCDEF";
  size_t len = strlen(text);
  char *out = malloc(len * 3 + 1), *p = out;
  if (!out)
    return NULL;
  for (const unsigned char *s = (const unsigned char *)text; *s; s++) {
    if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
        (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' || *s == '_' || *s == '~') {
      *p++ = (char)*s;
    } else {
      *p++ = '%';
      *p++ = hex[*s >> 4];
      *p++ = hex[*s & 15];
    }
  }
  *p = '\0';
  return out;
}
