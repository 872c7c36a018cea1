/* Capped JSON parsing and lookups over jansson; see jsonx.h. */
#include "base/jsonx.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int jsonx_depth(const char *text, size_t len, int max_depth) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max_depth)
          return max_depth + 1;
      }
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return deepest;
}

json_t *jsonx_parse(const char *text, size_t len, int max_depth, int *out_result,
                    struct error_info *err) {
  int result = RESULT_INVALID;
  json_t *value = NULL;
  if (!text || len == 0) {
    error_set(err, RESULT_INVALID, "", "the body is empty");
    goto done;
  }
  if (jsonx_depth(text, len, max_depth) > max_depth) {
    result = error_set(err, RESULT_TOOBIG, "", "JSON nesting is deeper than %d levels",
                       max_depth);
    goto done;
  }
  json_error_t jerr;
  value = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
  if (!value) {
    error_set(err, RESULT_INVALID, "",
              "the body is not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
              jerr.column);
    goto done;
  }
  result = RESULT_OK;
done:
  if (out_result)
    *out_result = result;
  return value;
}

json_t *jsonx_get_ci(const json_t *object, const char *key) {
  if (!json_is_object(object) || !key)
    return NULL;
  json_t *exact = json_object_get(object, key);
  if (exact)
    return exact;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)object, k, v) {
    if (strcasecmp(k, key) == 0)
      return v;
  }
  return NULL;
}

const char *jsonx_string_ci(const json_t *object, const char *key) {
  json_t *v = jsonx_get_ci(object, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *jsonx_scalar_ci(const json_t *object, const char *key, char *buf,
                            size_t buf_size) {
  json_t *v = jsonx_get_ci(object, key);
  if (json_is_string(v))
    return json_string_value(v);
  if (json_is_integer(v)) {
    snprintf(buf, buf_size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf;
  }
  if (json_is_real(v)) {
    snprintf(buf, buf_size, "%.17g", json_real_value(v));
    return buf;
  }
  return NULL;
}

char *jsonx_dump(const json_t *value) {
  /* 15 significant digits: what a double holds exactly, so 0.93 stays 0.93. */
  return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
}

int jsonx_set_string(json_t *object, const char *key, const char *value) {
  if (!value)
    return 0;
  return json_object_set_new(object, key, json_string(value));
}
