/* AML compute targets; see compute.h. The cached form is the five fields of
 * compute_info joined by tabs (none of them can hold one: control characters
 * are replaced when read). */
#include "aml/compute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_text(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
  for (char *p = dst; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = ' ';
}

bool compute_info_from_arm(const json_t *doc, struct compute_info *out) {
  memset(out, 0, sizeof *out);
  json_t *props = jsonx_get_ci(doc, "properties");
  json_t *inner = jsonx_get_ci(props, "properties");
  const char *type = jsonx_string_ci(props, "computeType");
  if (!type || !*type)
    return false;
  copy_text(out->compute_type, sizeof out->compute_type, type);
  copy_text(out->location, sizeof out->location, jsonx_string_ci(doc, "location"));
  copy_text(out->vm_size, sizeof out->vm_size, jsonx_string_ci(inner, "vmSize"));
  copy_text(out->vm_priority, sizeof out->vm_priority,
            jsonx_string_ci(inner, "vmPriority"));
  copy_text(out->os_type, sizeof out->os_type, jsonx_string_ci(inner, "osType"));
  return true;
}

static char *to_text(const struct compute_info *c) {
  size_t n = sizeof *c + 8;
  char *text = malloc(n);
  if (text)
    snprintf(text, n, "%s\t%s\t%s\t%s\t%s", c->compute_type, c->location, c->vm_size,
             c->vm_priority, c->os_type);
  return text;
}

static void from_text(const char *text, struct compute_info *c) {
  char *fields[5] = {c->compute_type, c->location, c->vm_size, c->vm_priority,
                     c->os_type};
  size_t sizes[5] = {sizeof c->compute_type, sizeof c->location, sizeof c->vm_size,
                     sizeof c->vm_priority, sizeof c->os_type};
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < 5 && text; i++) {
    size_t len = strcspn(text, "\t");
    snprintf(fields[i], sizes[i], "%.*s", (int)len, text);
    text = text[len] ? text + len + 1 : NULL;
  }
}

int compute_reader_init(struct compute_reader *reader) {
  atomic_init(&reader->reads, 0);
  atomic_init(&reader->cache_hits, 0);
  return lookup_cache_init(&reader->cache, COMPUTE_CACHE, COMPUTE_TTL_MS,
                           COMPUTE_FAILURE_TTL_MS);
}

void compute_reader_cleanup(struct compute_reader *reader) {
  lookup_cache_cleanup(&reader->cache);
}

int compute_reader_get(struct compute_reader *reader, const char *key, const char *url,
                       int64_t deadline_ms, compute_fetch_fn fetch, void *ctx,
                       struct compute_info *out, struct error_info *err) {
  char *value = NULL;
  uint64_t ticket;
  int r = lookup_cache_begin(&reader->cache, key, deadline_ms, &value, &ticket, err);
  if (r == RESULT_OK && value) {
    atomic_fetch_add(&reader->cache_hits, 1);
    from_text(value, out);
    free(value);
    return RESULT_OK;
  }
  if (r != RESULT_OK)
    return r;
  struct error_info local = {0};
  json_t *doc = NULL;
  atomic_fetch_add(&reader->reads, 1);
  r = fetch(ctx, url, "compute", &doc, &local);
  if (r == RESULT_OK && !compute_info_from_arm(doc, out))
    r = error_set(&local, RESULT_PERMANENT, "", "the compute's document has no type");
  if (r == RESULT_OK && !(value = to_text(out)))
    r = error_set(&local, RESULT_NOMEM, "", "out of memory");
  lookup_cache_end(&reader->cache, key, ticket, value, r, &local);
  if (r != RESULT_OK && err)
    *err = local;
  json_decref(doc);
  free(value);
  return r;
}
