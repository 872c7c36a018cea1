/* Data-driven cases: every folder under tests/cases is one invocation run through
 * the real host protocol and pipeline (payload -> event -> record -> exporter), and what
 * the exporter received is compared with the folder's hand-written expectation.
 *
 * Layout and matching rules are in tests/cases/README.md. In short: the body is
 * invocation.json / invocation.txt sent byte for byte, or input.json (an event)
 * wrapped the way the Functions host wraps it; settings.env feeds config_load();
 * `status` is the expected HTTP status (200 when absent); expected.json is the
 * record line (200) or the response body (otherwise). In expected objects a key
 * "X_contains" asks for a substring of the string X; every other key is compared
 * exactly, and the actual object may hold no key the expectation does not name
 * (but for a rejected record's raw_event, checked against the input instead).
 *
 * Each failing case is reported by folder name with expected and actual; the test
 * fails once at the end so one run lists them all. Set CASE=<folder> to run one.
 * Single-threaded; the handler's logs are silenced. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/files.h"
#include "core/config.h"
#include "core/exporter.h"
#include "host/function_app.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "core/pipeline.h"
#include "host/responder.h"
#include "core/record.h"
#include "host/server.h"

#define CASES_DIR TEST_DATA_DIR "/cases"
#define MAX_CASES 512
#define MAX_SETTINGS 32
#define CONTAINS_SUFFIX "_contains"

/* ---- files ---- */

/* The whole file, NUL-terminated (malloc'd), or NULL when it cannot be read. */
static char *slurp(const char *dir, const char *name, size_t *out_len) {
  char path[1024];
  int n = snprintf(path, sizeof path, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof path)
    return NULL;
  char *text = NULL;
  size_t len = 0;
  if (files_read(path, 64u * 1024 * 1024, &text, &len, NULL) != RESULT_OK)
    return NULL;
  if (out_len)
    *out_len = len;
  return text;
}

static json_t *load_json(const char *dir, const char *name, char *why, size_t why_size) {
  size_t len;
  char *text = slurp(dir, name, &len);
  if (!text)
    return NULL;
  struct error_info err;
  error_clear(&err);
  json_t *value = jsonx_parse(text, len, JSONX_DEFAULT_MAX_DEPTH, NULL, &err);
  if (!value)
    snprintf(why, why_size, "%s: %s", name, err.message);
  free(text);
  return value;
}

/* ---- settings.env ---- */

struct settings {
  char *text; /* the file, cut into NUL-terminated names and values */
  const char *names[MAX_SETTINGS], *values[MAX_SETTINGS];
  size_t count;
};

static void settings_load(struct settings *s, const char *dir) {
  memset(s, 0, sizeof *s);
  s->text = slurp(dir, "settings.env", NULL);
  char *save = NULL;
  for (char *line = s->text ? strtok_r(s->text, "\r\n", &save) : NULL;
       line && s->count < MAX_SETTINGS; line = strtok_r(NULL, "\r\n", &save)) {
    char *eq = strchr(line, '=');
    if (line[0] == '#' || !eq)
      continue;
    *eq = '\0';
    s->names[s->count] = line;
    s->values[s->count++] = eq + 1;
  }
}

static const char *case_settings_get(void *ctx, const char *name) {
  const struct settings *s = ctx;
  for (size_t i = 0; i < s->count; i++)
    if (strcmp(s->names[i], name) == 0)
      return s->values[i];
  return NULL;
}

/* ---- the capturing exporter ---- */

struct capture {
  struct exporter base;
  json_t *lines; /* record_to_json() of every exported record */
};

static int capture_export(struct exporter *self, const struct record *const *records,
                          size_t count, int64_t deadline_ms, struct error_info *err) {
  (void)deadline_ms;
  struct capture *c = (struct capture *)self;
  for (size_t i = 0; i < count; i++) {
    json_t *line = record_to_json(records[i]);
    if (!line || json_array_append_new(c->lines, line) != 0)
      return error_set(err, RESULT_NOMEM, "", "out of memory capturing a record");
  }
  return RESULT_OK;
}

static void capture_free(struct exporter *self) {
  (void)self; /* lives on the test's stack */
}

/* ---- matching ---- */

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

/* True when `actual` matches `expected` (rules at the top); otherwise `why` says
 * where they differ. */
static bool match(const json_t *expected, const json_t *actual, const char *path,
                  char *why, size_t why_size) {
  if (!json_is_object(expected)) {
    if (actual && json_equal((json_t *)expected, (json_t *)actual))
      return true;
    snprintf(why, why_size, "%s differs", path);
    return false;
  }
  if (!json_is_object(actual)) {
    snprintf(why, why_size, "%s is not an object", path);
    return false;
  }
  char sub[256];
  const char *key;
  const json_t *value;
  json_object_foreach((json_t *)expected, key, value) {
    if (ends_with(key, CONTAINS_SUFFIX) && !json_object_get(actual, key)) {
      int base_len = (int)(strlen(key) - strlen(CONTAINS_SUFFIX));
      char base[128];
      snprintf(base, sizeof base, "%.*s", base_len, key);
      const char *text = json_string_value(json_object_get(actual, base));
      const char *want = json_string_value(value);
      if (!text || !want || !strstr(text, want)) {
        snprintf(why, why_size, "%s.%s does not contain \"%s\"", path, base,
                 want ? want : "(expected a string)");
        return false;
      }
      continue;
    }
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    json_t *got = json_object_get(actual, key);
    if (!got) {
      snprintf(why, why_size, "%s is missing", sub);
      return false;
    }
    if (!match(value, got, sub, why, why_size))
      return false;
  }
  json_object_foreach((json_t *)actual, key, value) {
    char contains[160];
    snprintf(contains, sizeof contains, "%s%s", key, CONTAINS_SUFFIX);
    if (json_object_get(expected, key) || json_object_get(expected, contains) ||
        strcmp(key, "raw_event") == 0)
      continue;
    snprintf(why, why_size, "%s.%s is not expected", path, key);
    return false;
  }
  return true;
}

/* ---- one case ---- */

static const char *const function_names[] = {"function_app", NULL};

/* The body the Functions host would POST for `event`. */
static char *wrap_event(const json_t *event) {
  json_t *payload = json_pack(
      "{s:{s:O},s:{s:O*,s:{s:s,s:s,s:s}}}", "Data", "event", event, "Metadata", "data",
      json_object_get(event, "data"), "sys", "MethodName", "function_app", "UtcNow",
      "2024-03-12T10:00:00.000Z", "RandGuid", "0c0c0c0c-0000-4000-8000-000000000000");
  char *text = payload ? jsonx_dump(payload) : NULL;
  json_decref(payload);
  return text;
}

static void show(const char *label, const json_t *value) {
  char *text =
      value ? json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
  fprintf(stderr, "  %s: %s\n", label, text ? text : "(none)");
  free(text);
}

/* Runs the case in `dir`; returns true when it passes, otherwise prints why. */
static bool run_case(const char *name, const char *dir) {
  char why[512] = "";
  bool ok = false;
  struct settings settings;
  struct config cfg;
  struct error_info err;
  struct pipeline *pipe = NULL;
  struct responder *resp = NULL;
  struct server_response response = {0};
  json_t *input = NULL, *expected = NULL, *body_json = NULL, *actual = NULL;
  char *body = NULL;
  size_t body_len = 0;
  struct capture capture = {
      .base = {.name = "capture", .export_records = capture_export, .free = capture_free},
      .lines = json_array()};
  struct function_def def = {.name = "function_app", .binding = "event"};
  struct function_app app = {
      .root = ".", .functions = &def, .count = 1, .names = (const char **)function_names};

  error_clear(&err);
  memset(&cfg, 0, sizeof cfg);
  settings_load(&settings, dir);
  if (config_load(&cfg, case_settings_get, &settings, &err) != RESULT_OK) {
    snprintf(why, sizeof why, "settings.env refused: %s", err.message);
    goto done;
  }

  if ((body = slurp(dir, "invocation.json", &body_len)) ||
      (body = slurp(dir, "invocation.txt", &body_len))) {
    /* sent as is */
  } else if ((input = load_json(dir, "input.json", why, sizeof why))) {
    if (!(body = wrap_event(input))) {
      snprintf(why, sizeof why, "cannot wrap input.json");
      goto done;
    }
    body_len = strlen(body);
  } else {
    if (!*why)
      snprintf(why, sizeof why, "no input.json, invocation.json or invocation.txt");
    goto done;
  }

  int want_status = 200;
  char *status_text = slurp(dir, "status", NULL);
  if (status_text)
    want_status = atoi(status_text);
  free(status_text);
  expected = load_json(dir, "expected.json", why, sizeof why);
  if (!expected && (*why || want_status == 200)) {
    if (!*why)
      snprintf(why, sizeof why, "no expected.json");
    goto done;
  }

  struct pipeline_options options = {
      .config = &cfg, .exporter = &capture.base, .enricher = NULL};
  struct responder_options ropts = {.app = &app,
                                    .invocation_budget_ms = cfg.invocation_budget_ms};
  if (!(pipe = pipeline_new(&options)) || !(ropts.pipeline = pipe) ||
      !(resp = responder_new(&ropts))) {
    snprintf(why, sizeof why, "pipeline_new or responder_new failed");
    goto done;
  }
  char invocation_id[300];
  snprintf(invocation_id, sizeof invocation_id, "case-%s", name);
  struct server_request request = {.function = "function_app",
                                   .invocation_id = invocation_id,
                                   .body = body,
                                   .body_len = body_len};
  responder_invoke(resp, &request, &response);
  body_json = response.body ? jsonx_parse(response.body, strlen(response.body),
                                          JSONX_DEFAULT_MAX_DEPTH, NULL, &err)
                            : NULL;

  if (response.status != want_status) {
    snprintf(why, sizeof why, "status %d, expected %d (body %.300s)", response.status,
             want_status, response.body ? response.body : "(none)");
    goto done;
  }
  if (!json_is_object(body_json)) {
    snprintf(why, sizeof why, "the response body is not a JSON object");
    goto done;
  }

  if (want_status != 200) {
    if (json_array_size(capture.lines) != 0) {
      snprintf(why, sizeof why, "a failed invocation exported %zu record(s)",
               json_array_size(capture.lines));
      actual = json_incref(capture.lines);
      goto done;
    }
    actual = json_incref(body_json);
    if (expected && !match(expected, body_json, "body", why, sizeof why))
      goto done;
    ok = true;
    goto done;
  }

  /* 200: the host's answer shape, and exactly one record. */
  if (!json_is_object(json_object_get(body_json, "Outputs")) ||
      !json_is_array(json_object_get(body_json, "Logs")) ||
      json_array_size(json_object_get(body_json, "Logs")) == 0 ||
      !json_is_null(json_object_get(body_json, "ReturnValue"))) {
    snprintf(why, sizeof why,
             "the answer is not {Outputs:{}, Logs:[...], ReturnValue:null}");
    actual = json_incref(body_json);
    goto done;
  }
  if (json_array_size(capture.lines) != 1) {
    snprintf(why, sizeof why, "%zu records exported, expected 1",
             json_array_size(capture.lines));
    actual = json_incref(capture.lines);
    goto done;
  }
  actual = json_incref(json_array_get(capture.lines, 0));
  if (!match(expected, actual, "line", why, sizeof why))
    goto done;

  /* A rejected record keeps the event as received: an event given as input.json
   * comes back whole, or, beyond RECORD_RAW_EVENT_MAX, cut and marked "...". */
  const json_t *rec = json_object_get(actual, "record");
  const char *raw = json_string_value(json_object_get(rec, "raw_event"));
  const char *record_name = json_string_value(json_object_get(actual, "name"));
  bool rejected = record_name && strcmp(record_name, "AmlEventRejected") == 0;
  if (rejected && !json_object_get(json_object_get(expected, "record"), "raw_event")) {
    if (!raw || !*raw) {
      snprintf(why, sizeof why, "the rejected record carries no raw_event");
      goto done;
    }
    if (strlen(raw) > RECORD_RAW_EVENT_MAX) {
      snprintf(why, sizeof why, "raw_event is longer than RECORD_RAW_EVENT_MAX");
      goto done;
    }
    char *dump = input ? jsonx_dump(input) : NULL;
    bool same = true;
    if (dump && strlen(dump) <= RECORD_RAW_EVENT_MAX) {
      json_t *raw_json =
          jsonx_parse(raw, strlen(raw), JSONX_DEFAULT_MAX_DEPTH, NULL, &err);
      same = raw_json && json_equal(raw_json, input);
      json_decref(raw_json);
    } else if (dump) {
      /* Cut: a prefix of the compact event, marked with "...". */
      size_t len = strlen(raw);
      same = len >= 3 && strcmp(raw + len - 3, "...") == 0 &&
             strncmp(raw, dump, len - 3) == 0;
    }
    free(dump);
    if (!same) {
      snprintf(why, sizeof why, "raw_event is not the event of input.json (or its cut)");
      goto done;
    }
  }
  ok = true;

done:
  if (!ok) {
    fprintf(stderr, "[  FAILED  ] case %s: %s\n", name, why);
    show("expected", expected);
    show("actual", actual);
  }
  json_decref(actual);
  json_decref(body_json);
  json_decref(expected);
  json_decref(input);
  json_decref(capture.lines);
  free(response.body);
  free(body);
  responder_free(resp);
  pipeline_free(pipe);
  config_cleanup(&cfg);
  free(settings.text);
  return ok;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void every_case_matches(void **state) {
  (void)state;
  const char *only = getenv("CASE");
  DIR *d = opendir(CASES_DIR);
  assert_non_null(d);
  char *names[MAX_CASES];
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(d)) && count < MAX_CASES) {
    if (entry->d_name[0] == '.')
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CASES_DIR, entry->d_name);
    DIR *sub = opendir(path);
    if (!sub)
      continue; /* README.md and other files */
    closedir(sub);
    if (!only || strcmp(only, entry->d_name) == 0)
      names[count++] = strdup(entry->d_name);
  }
  closedir(d);
  qsort(names, count, sizeof *names, compare_names);

  size_t failed = 0;
  for (size_t i = 0; i < count; i++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", CASES_DIR, names[i]);
    if (!run_case(names[i], dir))
      failed++;
    free(names[i]);
  }
  fprintf(stderr, "cases: %zu run, %zu failed\n", count, failed);
  if (!only)
    assert_true(count >= 30); /* the folder was found and holds the cases */
  else
    assert_int_equal(count, 1);
  assert_int_equal(failed, 0);
}

int main(void) {
  log_set_level(LOG_OFF);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_case_matches),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
