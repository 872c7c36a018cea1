/* Capped JSON parsing and lookups over jansson; see jsonx.h. */
#include "base/jsonx.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* jansson's parse, with the caps; every text the fast parse below cannot vouch
 * for ends here, so what is refused, and the sentence saying why, are
 * jansson's. */
static json_t *jansson_parse(const char *text, size_t len, int max_depth, int *out_result,
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

/* ---- the selecting parse ---- */

/* A cursor over validated text. `ok` turns false at the first byte the scanner
 * cannot vouch for; the caller then hands the whole text to jansson. */
struct scan {
  const unsigned char *p, *end;
  bool ok;
  int depth, max_depth; /* nesting so far; deeper than max_depth: jansson_parse */
};

static void skip_ws(struct scan *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
    s->p++;
}

static bool fail(struct scan *s) {
  s->ok = false;
  return false;
}

/* One UTF-8 sequence starting at a byte >= 0x80: well-formed, shortest form,
 * no surrogates, at most U+10FFFF (what jansson's utf8_check accepts). */
static bool scan_utf8(struct scan *s) {
  const unsigned char *p = s->p;
  unsigned c = *p, n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF)
    n = 1, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 2, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 3, cp = c & 0x07;
  else
    return fail(s);
  if ((size_t)(s->end - p) <= n)
    return fail(s);
  for (unsigned i = 1; i <= n; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return fail(s);
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return fail(s);
  s->p += n + 1;
  return true;
}

/* A string at s->p (the opening quote). *escaped: it holds a backslash. */
static bool scan_string(struct scan *s, bool *escaped) {
  *escaped = false;
  s->p++;
  while (s->p < s->end) {
    unsigned char c = *s->p;
    if (c == '"') {
      s->p++;
      return true;
    }
    if (c < 0x20)
      return fail(s);
    if (c == '\\') {
      *escaped = true;
      if (s->end - s->p < 2 || !strchr("\"\\/bfnrt", s->p[1]) || !s->p[1])
        return fail(s); /* \u and anything else: jansson decides */
      s->p += 2;
    } else if (c >= 0x80) {
      if (!scan_utf8(s))
        return false;
    } else {
      s->p++;
    }
  }
  return fail(s);
}

static size_t scan_digits(struct scan *s) {
  const unsigned char *start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
    s->p++;
  return (size_t)(s->p - start);
}

/* A number jansson reads to the same value: at most 18 integer digits (no
 * long long overflow), at most 2 exponent digits (no double overflow). */
static bool scan_number(struct scan *s) {
  if (*s->p == '-')
    s->p++;
  if (s->p >= s->end)
    return fail(s);
  const unsigned char *int_start = s->p;
  size_t digits = scan_digits(s);
  if (digits == 0 || digits > 18 || (digits > 1 && *int_start == '0'))
    return fail(s);
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (scan_digits(s) == 0)
      return fail(s);
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    size_t e = scan_digits(s);
    if (e == 0 || e > 2)
      return fail(s);
  }
  return true;
}

static bool scan_word(struct scan *s, const char *word, size_t len) {
  if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0)
    return fail(s);
  s->p += len;
  return true;
}

static bool scan_value(struct scan *s, const struct jsonx_select *select, json_t **out);

/* A number of checked text [start, end), read as jansson reads it. */
static json_t *build_number(const unsigned char *start, const unsigned char *end) {
  char num[64];
  size_t len = (size_t)(end - start);
  if (len >= sizeof num)
    return NULL;
  memcpy(num, start, len);
  num[len] = '\0';
  if (!memchr(num, '.', len) && !memchr(num, 'e', len) && !memchr(num, 'E', len))
    return json_integer((json_int_t)strtoll(num, NULL, 10));
  return json_real(strtod(num, NULL));
}

/* The text of a checked string [start, end) between its quotes, with the
 * escapes the scanner allows (all but \u) decoded. malloc'd, *len set. */
static char *unescape(const unsigned char *start, const unsigned char *end, size_t *len) {
  char *text = malloc((size_t)(end - start) + 1), *w = text;
  if (!text)
    return NULL;
  for (const unsigned char *p = start; p < end; p++) {
    if (*p != '\\') {
      *w++ = (char)*p;
      continue;
    }
    switch (*++p) {
      case 'b':
        *w++ = '\b';
        break;
      case 'f':
        *w++ = '\f';
        break;
      case 'n':
        *w++ = '\n';
        break;
      case 'r':
        *w++ = '\r';
        break;
      case 't':
        *w++ = '\t';
        break;
      default:
        *w++ = (char)*p; /* " \ / */
    }
  }
  *w = '\0';
  *len = (size_t)(w - text);
  return text;
}

/* The string at s->p, built when out is not NULL. */
static bool scan_string_value(struct scan *s, json_t **out) {
  const unsigned char *start = s->p + 1;
  bool escaped;
  if (!scan_string(s, &escaped))
    return false;
  if (!out)
    return true;
  const unsigned char *end = s->p - 1;
  if (!escaped) {
    *out = json_stringn_nocheck((const char *)start, (size_t)(end - start));
  } else {
    size_t len;
    char *text = unescape(start, end, &len);
    *out = text ? json_stringn_nocheck(text, len) : NULL;
    free(text);
  }
  return *out ? true : fail(s);
}

/* The object at s->p. With `out`: a new object of the members `select` names
 * (every member when select is NULL), each built whole or by its own
 * selection; without: only checked. */
static bool scan_object(struct scan *s, const struct jsonx_select *select, json_t **out) {
  if (++s->depth > s->max_depth)
    return fail(s);
  s->p++;
  if (out && !(*out = json_object()))
    return fail(s);
  skip_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    s->depth--;
    return true;
  }
  for (;;) {
    if (s->p >= s->end || *s->p != '"')
      return fail(s);
    const unsigned char *key = s->p + 1;
    bool escaped;
    if (!scan_string(s, &escaped))
      return false;
    size_t key_len = (size_t)(s->p - key) - 1;
    const struct jsonx_select *wanted = NULL;
    bool keep = out && !select;
    if (out && select) {
      for (const struct jsonx_select *m = select; m->key && !keep; m++) {
        if (strlen(m->key) == key_len &&
            strncasecmp(m->key, (const char *)key, key_len) == 0) {
          wanted = m;
          keep = true;
        }
      }
      if (keep && escaped)
        return fail(s); /* a selected key with escapes: jansson decides */
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
      return fail(s);
    s->p++;
    skip_ws(s);
    json_t *value = NULL;
    if (!scan_value(s, wanted ? wanted->sub : NULL, keep ? &value : NULL)) {
      json_decref(value);
      return false;
    }
    if (keep) {
      char small[64], *name = small; /* jansson copies the key */
      size_t name_len = key_len;
      if (escaped)
        name = unescape(key, key + key_len, &name_len);
      else if (key_len >= sizeof small)
        name = strndup((const char *)key, key_len);
      else
        memcpy(small, key, key_len), small[key_len] = '\0';
      if (!name || memchr(name, '\0', name_len)) {
        if (name != small)
          free(name);
        json_decref(value);
        return fail(s);
      }
      int set = json_object_set_new_nocheck(*out, name, value); /* takes value */
      if (name != small)
        free(name);
      if (set != 0)
        return fail(s);
    }
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      skip_ws(s);
      continue;
    }
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      s->depth--;
      return true;
    }
    return fail(s);
  }
}

/* The array at s->p, built whole when out is not NULL. */
static bool scan_array(struct scan *s, json_t **out) {
  if (++s->depth > s->max_depth)
    return fail(s);
  s->p++;
  if (out && !(*out = json_array()))
    return fail(s);
  skip_ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    s->depth--;
    return true;
  }
  for (;;) {
    json_t *item = NULL;
    if (!scan_value(s, NULL, out ? &item : NULL)) {
      json_decref(item);
      return false;
    }
    if (out && json_array_append_new(*out, item) != 0) /* frees item */
      return fail(s);
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      skip_ws(s);
      continue;
    }
    if (s->p < s->end && *s->p == ']') {
      s->p++;
      s->depth--;
      return true;
    }
    return fail(s);
  }
}

/* One value at s->p: checked, and built into *out when out is not NULL (an
 * object by `select`). On failure *out may hold a partial value to free. */
static bool scan_value(struct scan *s, const struct jsonx_select *select, json_t **out) {
  if (s->p >= s->end)
    return fail(s);
  const unsigned char *start = s->p;
  switch (*s->p) {
    case '{':
      return scan_object(s, select, out);
    case '[':
      return scan_array(s, out);
    case '"':
      return scan_string_value(s, out);
    case 't':
      if (!scan_word(s, "true", 4))
        return false;
      if (out)
        *out = json_true();
      return true;
    case 'f':
      if (!scan_word(s, "false", 5))
        return false;
      if (out)
        *out = json_false();
      return true;
    case 'n':
      if (!scan_word(s, "null", 4))
        return false;
      if (out)
        *out = json_null();
      return true;
    default:
      if ((*s->p != '-' && (*s->p < '0' || *s->p > '9')) || !scan_number(s))
        return fail(s);
      if (out && !(*out = build_number(start, s->p)))
        return fail(s);
      return true;
  }
}

/* The fast parse: one pass that checks the text and builds the value (or only
 * the selected members of an object) through jansson's API, without jansson's
 * lexer; anything it cannot vouch for goes to jansson_parse. */
static json_t *parse(const char *text, size_t len, int max_depth,
                     const struct jsonx_select *select, int *out_result,
                     struct error_info *err) {
  if (!text || len == 0)
    return jansson_parse(text, len, max_depth, out_result, err);
  struct scan s = {(const unsigned char *)text, (const unsigned char *)text + len, true,
                   0, max_depth};
  json_t *value = NULL;
  skip_ws(&s);
  if (scan_value(&s, select, &value)) {
    skip_ws(&s);
    if (s.p == s.end) {
      if (out_result)
        *out_result = RESULT_OK;
      return value;
    }
  }
  json_decref(value);
  return jansson_parse(text, len, max_depth, out_result, err);
}

json_t *jsonx_parse(const char *text, size_t len, int max_depth, int *out_result,
                    struct error_info *err) {
  return parse(text, len, max_depth, NULL, out_result, err);
}

json_t *jsonx_parse_select(const char *text, size_t len, int max_depth,
                           const struct jsonx_select *select, int *out_result,
                           struct error_info *err) {
  return parse(text, len, max_depth, select, out_result, err);
}

/* ---- lookups ---- */

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
    char text[JSONX_NUMBER_MAX];
    jsonx_format_double(json_real_value(v), text, sizeof text);
    snprintf(buf, buf_size, "%s", text);
    return buf;
  }
  return NULL;
}

/* "1e+21" -> "1e21", "4e-07" -> "4e-7": the exponent as jansson writes it. */
static void tidy_exponent(char *text) {
  char *e = strchr(text, 'e');
  if (!e)
    return;
  char *digits = e + 1, *from = digits;
  if (*from == '+')
    from++;
  else if (*from == '-')
    digits = ++from;
  while (*from == '0' && from[1])
    from++;
  memmove(digits, from, strlen(from) + 1);
}

void jsonx_format_double(double value, char *buf, size_t buf_size) {
  char text[JSONX_NUMBER_MAX] = "0";
  if (isfinite(value) && value != 0) {
    /* Any decimal of at most 15 digits survives a trip through a normal double,
     * so %.15g already is the shortest when it reads back; subnormals hold fewer
     * digits and are tried from one. */
    for (int precision = fabs(value) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
      snprintf(text, sizeof text, "%.*g", precision, value);
      if (strtod(text, NULL) == value)
        break;
    }
    tidy_exponent(text);
  }
  snprintf(buf, buf_size, "%s", text);
}

/* ---- compact serialisation ---- */

/* What jsonx_dump writes is json_dumps's compact form (JSON_COMPACT |
 * JSON_ENCODE_ANY), but for reals: the shortest text that reads back to the same
 * double (jsonx_format_double), where jansson has a fixed precision. The
 * fallback for what this writer refuses (invalid UTF-8, nesting past
 * DUMP_MAX_DEPTH) is json_dumps with 17 digits: never a digit lost. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define DUMP_MAX_DEPTH 256 /* deeper values go to json_dumps */

struct out {
  char *buf;
  size_t len, cap;
  bool failed;
};

static void put(struct out *o, const char *bytes, size_t n) {
  if (o->failed)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *grown = realloc(o->buf, cap);
    if (!grown) {
      o->failed = true;
      return;
    }
    o->buf = grown;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, bytes, n);
  o->len += n;
}

/* A string as jansson writes it: '"', '\\' and control characters escaped
 * (\b \f \n \r \t, else \u00XX), everything else as is; invalid UTF-8 fails
 * the dump, as in jansson. Runs of plain bytes are copied at once. */
static void put_string(struct out *o, const char *text, size_t len) {
  const unsigned char *p = (const unsigned char *)text, *end = p + len;
  put(o, "\"", 1);
  while (p < end) {
    const unsigned char *run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
      p++;
    put(o, (const char *)run, (size_t)(p - run));
    if (p == end)
      break;
    if (*p >= 0x80) {
      struct scan s = {p, end, true, 0, 0};
      if (!scan_utf8(&s)) {
        o->failed = true;
        return;
      }
      put(o, (const char *)p, (size_t)(s.p - p));
      p = s.p;
      continue;
    }
    char esc[8];
    switch (*p) {
      case '"':
        memcpy(esc, "\\\"", 3);
        break;
      case '\\':
        memcpy(esc, "\\\\", 3);
        break;
      case '\b':
        memcpy(esc, "\\b", 3);
        break;
      case '\f':
        memcpy(esc, "\\f", 3);
        break;
      case '\n':
        memcpy(esc, "\\n", 3);
        break;
      case '\r':
        memcpy(esc, "\\r", 3);
        break;
      case '\t':
        memcpy(esc, "\\t", 3);
        break;
      default:
        snprintf(esc, sizeof esc, "\\u%04X", *p);
    }
    put(o, esc, strlen(esc));
    p++;
  }
  put(o, "\"", 1);
}

/* A real as the shortest text that reads back to it (jsonx_format_double),
 * ".0" appended when it has neither '.' nor 'e' so it stays a real, "-0.0"
 * for negative zero (as jansson writes it). */
static void put_real(struct out *o, double value) {
  char buf[JSONX_NUMBER_MAX + 4];
  jsonx_format_double(value, buf, sizeof buf);
  if (value == 0 && signbit(value))
    snprintf(buf, sizeof buf, "-0");
  if (!strpbrk(buf, ".e"))
    strcat(buf, ".0");
  put(o, buf, strlen(buf));
}

static void put_value(struct out *o, const json_t *v, int depth) {
  char num[32];
  if (o->failed)
    return;
  if (depth > DUMP_MAX_DEPTH) {
    o->failed = true;
    return;
  }
  switch (json_typeof(v)) {
    case JSON_NULL:
      put(o, "null", 4);
      break;
    case JSON_TRUE:
      put(o, "true", 4);
      break;
    case JSON_FALSE:
      put(o, "false", 5);
      break;
    case JSON_INTEGER:
      put(o, num,
          (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                           json_integer_value(v)));
      break;
    case JSON_REAL:
      put_real(o, json_real_value(v));
      break;
    case JSON_STRING:
      put_string(o, json_string_value(v), json_string_length(v));
      break;
    case JSON_ARRAY: {
      put(o, "[", 1);
      size_t i;
      json_t *item;
      json_array_foreach((json_t *)v, i, item) {
        if (i)
          put(o, ",", 1);
        put_value(o, item, depth + 1);
      }
      put(o, "]", 1);
      break;
    }
    case JSON_OBJECT: {
      put(o, "{", 1);
      const char *key;
      size_t key_len;
      json_t *item;
      bool first = true;
      void *tmp;
      json_object_keylen_foreach_safe((json_t *)v, tmp, key, key_len, item) {
        if (!first)
          put(o, ",", 1);
        first = false;
        put_string(o, key, key_len);
        put(o, ":", 1);
        put_value(o, item, depth + 1);
      }
      put(o, "}", 1);
      break;
    }
  }
}

char *jsonx_dump(const json_t *value) {
  if (!value)
    return NULL;
  struct out o = {0};
  put_value(&o, value, 0);
  if (o.failed || !o.buf) {
    free(o.buf);
    /* what jansson says of it (NULL for invalid UTF-8 or out of memory) */
    return json_dumps(value, DUMP_FLAGS);
  }
  o.buf[o.len] = '\0';
  return o.buf;
}

int jsonx_set_string(json_t *object, const char *key, const char *value) {
  if (!value)
    return 0;
  return json_object_set_new(object, key, json_string(value));
}
