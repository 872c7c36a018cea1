/* The invocation payload of an eventGridTrigger function; see invocation.h. */
#include "host/invocation.h"

#include <string.h>

/* The event as received may be an object, or a JSON string holding it, encoded
 * once more for other trigger kinds. Returns a new reference or NULL with `err`. */
static json_t *decode_event(json_t *value, struct error_info *err) {
  json_t *current = json_incref(value);
  for (int round = 0; round < 2 && json_is_string(current); round++) {
    const char *text = json_string_value(current);
    size_t len = json_string_length(current);
    int result;
    json_t *decoded = jsonx_parse(text, len, INVOCATION_MAX_DEPTH, &result, err);
    json_decref(current);
    if (!decoded) {
      /* jsonx_parse described the JSON problem; say where it was. */
      char detail[sizeof err->message];
      memcpy(detail, err->message, sizeof detail);
      error_set(err, result, "Data", "the event string in Data could not be decoded: %s",
                detail);
      return NULL;
    }
    current = decoded;
  }
  if (!json_is_object(current) && !json_is_array(current)) {
    json_decref(current);
    error_set(err, RESULT_INVALID, "Data", "the event in Data is not a JSON object");
    return NULL;
  }
  return current;
}

/* What invocation_parse reads: Data, whole (the event under its binding).
 * Metadata, which repeats the event's data object, is checked, not built. */
static const struct jsonx_select body_select[] = {{"Data", NULL}, {NULL, NULL}};

/* invocation_parse, with the body built whole or only what is read. */
static int parse_body(const char *body, size_t len, const char *binding, bool whole,
                      struct invocation *out, struct error_info *err) {
  memset(out, 0, sizeof *out);
  int result;
  out->root = whole ? jsonx_parse(body, len, INVOCATION_MAX_DEPTH, &result, err)
                    : jsonx_parse_select(body, len, INVOCATION_MAX_DEPTH, body_select,
                                         &result, err);
  if (!out->root)
    return result;
  if (!json_is_object(out->root)) {
    result =
        error_set(err, RESULT_INVALID, "", "the invocation body is not a JSON object");
    goto fail;
  }
  json_t *data = json_object_get(out->root, "Data");
  if (!json_is_object(data)) {
    result =
        error_set(err, RESULT_INVALID, "Data", "the invocation body has no Data object");
    goto fail;
  }

  out->raw_event = binding ? json_object_get(data, binding) : NULL;
  if (!out->raw_event && json_object_size(data) == 1) {
    void *it = json_object_iter(data);
    out->raw_event = json_object_iter_value(it);
  }
  if (!out->raw_event || json_is_null(out->raw_event)) {
    out->raw_event = NULL;
    error_set(&out->event_error, RESULT_INVALID, "Data",
              "the invocation carries no event under Data.%s", binding ? binding : "");
    return RESULT_OK;
  }
  out->event = decode_event(out->raw_event, &out->event_error);
  return RESULT_OK;
fail:
  invocation_cleanup(out);
  return result;
}

int invocation_parse(const char *body, size_t len, const char *binding,
                     struct invocation *out, struct error_info *err) {
  int result = parse_body(body, len, binding, false, out, err);
  if (result == RESULT_OK && !out->raw_event) {
    /* No event: the whole body is what the rejected record carries. */
    invocation_cleanup(out);
    result = parse_body(body, len, binding, true, out, err);
  }
  return result;
}

void invocation_cleanup(struct invocation *inv) {
  json_decref(inv->event);
  json_decref(inv->root);
  memset(inv, 0, sizeof *inv);
}
