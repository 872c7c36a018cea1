/* The JSON module: the one place that includes jansson.
 *
 * Other modules use jansson's json_t values through this header (it re-exports
 * jansson's API), and add what the protocols here need on top: parsing with caps
 * on size and nesting depth and an error a person can read, case-insensitive key
 * lookup (AML event payloads vary in key casing), and compact serialisation.
 *
 * Ownership follows jansson: functions named *_new, jsonx_parse and jsonx_dump
 * return new references / malloc'd strings the caller frees (json_decref, free);
 * jsonx_get_ci and jsonx_string_ci return borrowed pointers valid while the
 * container lives. Thread-safe as jansson is: distinct values may be used from
 * different threads; one value must not be mutated concurrently. */
#ifndef HANDLER_JSONX_H
#define HANDLER_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/result.h"

/* Nesting deeper than this is refused. */
#define JSONX_DEFAULT_MAX_DEPTH 64

/* Parses `len` bytes of `text` (need not be NUL-terminated). Refuses nesting
 * deeper than `max_depth`, NUL bytes, and anything but a single JSON value.
 * Returns a new reference, or NULL with `err` filled (RESULT_INVALID or
 * RESULT_TOOBIG in *out_result when out_result is not NULL).
 *
 * One pass checks the text and builds the value through jansson's API (not its
 * lexer, which cost a callback per byte); any text that pass cannot vouch for
 * (a \u escape, a number that may overflow, anything invalid or too deep) is
 * parsed by jansson's json_loadb instead, so what is refused, and the sentence
 * saying why, are jansson's. */
HANDLER_NODISCARD json_t *jsonx_parse(const char *text, size_t len, int max_depth,
                                      int *out_result, struct error_info *err);

/* Which members of an object to keep: each entry names a member (matched
 * case-insensitively, so jsonx_get_ci finds what it would in the whole
 * document); `sub`, when not NULL, keeps only those members of it when it is an
 * object (any other value is kept whole). An array ends with {NULL, NULL}. */
struct jsonx_select {
  const char *key;
  const struct jsonx_select *sub;
};

/* jsonx_parse for a document of which the caller reads a few members: the
 * result, and the error on bad input, are exactly jsonx_parse's, except that
 * when the value is an object only the members `select` names are built; the
 * rest is checked, not built. Text the fast pass hands to jansson (see
 * jsonx_parse) comes back whole, every member built: callers read the members
 * they selected and must not rely on the others being absent. */
HANDLER_NODISCARD json_t *jsonx_parse_select(const char *text, size_t len, int max_depth,
                                             const struct jsonx_select *select,
                                             int *out_result, struct error_info *err);

/* The deepest nesting of arrays/objects in `text`, counting strings correctly;
 * stops counting (and returns max_depth + 1) as soon as max_depth is exceeded. */
int jsonx_depth(const char *text, size_t len, int max_depth);

/* Borrowed value of `key` in `object`: the exact key when present, otherwise the
 * first key that matches case-insensitively. NULL when absent or not an object. */
json_t *jsonx_get_ci(const json_t *object, const char *key);

/* Borrowed string value of `key` (case-insensitive), or NULL when absent, null,
 * or not a string. */
const char *jsonx_string_ci(const json_t *object, const char *key);

/* Like jsonx_string_ci, but also renders integers and reals as text into `buf`
 * (AML sends some ids and versions as numbers; reals by jsonx_format_double).
 * Returns NULL when absent. */
const char *jsonx_scalar_ci(const json_t *object, const char *key, char *buf,
                            size_t buf_size);

/* Compact serialisation (no spaces, keys in insertion order); malloc'd, or NULL.
 * Byte for byte what json_dumps writes with JSON_COMPACT | JSON_ENCODE_ANY,
 * without its per-piece callback, but for reals: those are written by
 * jsonx_format_double (plus ".0" when that text reads as an integer), so every
 * serialisation keeps every digit and invents none. */
HANDLER_NODISCARD char *jsonx_dump(const json_t *value);

/* Room for any text jsonx_format_double writes. */
#define JSONX_NUMBER_MAX 32

/* The shortest text that reads back (strtod) to exactly `value`: the first of
 * %.15g, %.16g, %.17g that round-trips, exponent without '+' or leading zeros
 * ("4e-7", "1e21"); "0" for zero and negative zero, "0" for NaN and infinities
 * (JSON has none). Integral values have no ".0". */
void jsonx_format_double(double value, char *buf, size_t buf_size);

/* Sets object[key] to a copy of `value` when value is non-NULL; returns 0 or -1. */
HANDLER_NODISCARD int jsonx_set_string(json_t *object, const char *key,
                                       const char *value);

#endif
