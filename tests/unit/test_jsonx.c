/* Unit tests of jsonx: capped parsing and case-insensitive lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/jsonx.h"

static json_t *parse(const char *text, int max_depth, int *result) {
  struct error_info err;
  return jsonx_parse(text, strlen(text), max_depth, result, &err);
}

static void parses_and_reports_errors(void **state) {
  int r;
  json_t *v = parse("{\"a\": [1, 2]}", 8, &r);
  assert_non_null(v);
  assert_int_equal(r, RESULT_OK);
  json_decref(v);

  struct error_info err;
  assert_null(jsonx_parse("{\"a\":", 5, 8, &r, &err));
  assert_int_equal(r, RESULT_INVALID);
  assert_non_null(strstr(err.message, "not valid JSON"));
}

static void refuses_deep_nesting(void **state) {
  char deep[300];
  memset(deep, '[', 150);
  memset(deep + 150, ']', 150);
  int r;
  struct error_info err;
  assert_null(jsonx_parse(deep, 300, 64, &r, &err));
  assert_int_equal(r, RESULT_TOOBIG);
  /* Brackets inside strings do not count. */
  assert_int_equal(jsonx_depth("{\"a\":\"[[[[\\\"[[[\"}", 17, 2), 1);
  assert_int_equal(jsonx_depth("[[[1]]]", 7, 2), 3);
}

static void looks_up_keys_case_insensitively(void **state) {
  int r;
  json_t *v = parse("{\"RunTags\": {\"a\": 1}, \"runId\": \"r\", \"Version\": 3, "
                    "\"Coefficient\": 0.5, \"nothing\": null}",
                    8, &r);
  assert_non_null(jsonx_get_ci(v, "runtags"));
  assert_string_equal(jsonx_string_ci(v, "RUNID"), "r");
  assert_null(jsonx_string_ci(v, "version"));
  char buf[32];
  assert_string_equal(jsonx_scalar_ci(v, "version", buf, sizeof buf), "3");
  assert_string_equal(jsonx_scalar_ci(v, "coefficient", buf, sizeof buf), "0.5");
  assert_null(jsonx_scalar_ci(v, "nothing", buf, sizeof buf));
  assert_null(jsonx_get_ci(v, "absent"));
  assert_null(jsonx_get_ci(NULL, "absent"));
  json_decref(v);
}

static void exact_key_wins_over_other_casings(void **state) {
  int r;
  json_t *v = parse("{\"runid\": \"lower\", \"runId\": \"exact\"}", 8, &r);
  assert_string_equal(jsonx_string_ci(v, "runId"), "exact");
  json_decref(v);
}

static void dumps_compactly(void **state) {
  int r;
  json_t *v = parse("{ \"a\" : [ 1 , \"x\" ] }", 8, &r);
  char *text = jsonx_dump(v);
  assert_string_equal(text, "{\"a\":[1,\"x\"]}");
  free(text);
  json_decref(v);
}

/* jsonx_dump writes what jansson's json_dumps writes, byte for byte: escapes,
 * key order, empty containers, and reals of at most 15 significant digits
 * (where the shortest text is %.15g's). */
static void dumps_what_jansson_dumps(void **state) {
  static const double reals[] = {0.93,   1.0,
                                 -0.0,   1e20,
                                 1.5e-7, 123456789012345.0,
                                 1e300,  -2.5e-300,
                                 0.1,    3.14159265358979,
                                 1e15,   1e16};
  json_t *reals_array = json_array();
  for (size_t i = 0; i < sizeof reals / sizeof *reals; i++)
    json_array_append_new(reals_array, json_real(reals[i]));
  json_t *values[] = {
      json_pack(
          "{s:s, s:i, s:b, s:n, s:o, s:[], s:{}}", "text",
          "quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f \x01 \x1f \x7f",
          "int", -42, "yes", 1, "nothing", "reals", reals_array, "empty", "obj"),
      json_stringn("nul\0inside", 10),
      json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8"),
      json_integer(INT64_MIN),
      json_pack("[[[{s:[{}]}]], s, i]", "k\"ey", "", 0),
      json_real(-1.25),
      json_true(),
  };
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    assert_non_null(values[i]);
    char *ours = jsonx_dump(values[i]);
    char *theirs =
        json_dumps(values[i], JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    assert_non_null(ours);
    assert_string_equal(ours, theirs);
    free(ours);
    free(theirs);
    json_decref(values[i]);
  }
}

static const struct jsonx_select env_select[] = {{"image", NULL}, {NULL, NULL}};
static const struct jsonx_select def_select[] = {
    {"script", NULL}, {"environment", env_select}, {NULL, NULL}};
static const struct jsonx_select run_select[] = {
    {"status", NULL}, {"tags", NULL}, {"runDefinition", def_select}, {NULL, NULL}};

static json_t *parse_select(const char *text, int *result, struct error_info *err) {
  return jsonx_parse_select(text, strlen(text), 8, run_select, result, err);
}

static void select_builds_only_the_named_members(void **state) {
  int r = -1;
  struct error_info err;
  json_t *v = parse_select(
      "{\"STATUS\":\"Completed\",\"logFiles\":{\"a\":\"https://"
      "x\"},\"tags\":{\"k\":[1,2.5e3]},"
      "\"runDefinition\":{\"script\":\"train.py\",\"arguments\":[\"--lr\",0.1],"
      "\"environment\":{\"image\":\"img\",\"python\":{\"deps\":null}}},\"n\":-0.5}",
      &r, &err);
  assert_non_null(v);
  assert_int_equal(r, RESULT_OK);
  char *text = jsonx_dump(v);
  /* the casing of the document is kept, unnamed members are gone, a member
   * without a sub-selection is whole */
  assert_string_equal(
      text, "{\"STATUS\":\"Completed\",\"tags\":{\"k\":[1,2500.0]},\"runDefinition\":{"
            "\"script\":\"train.py\",\"environment\":{\"image\":\"img\"}}}");
  free(text);
  json_decref(v);

  /* a selected member that is not an object is kept whole; a root that is
   * not an object is parsed whole */
  v = parse_select("{\"runDefinition\":[1,{\"x\":2}]}", &r, &err);
  text = jsonx_dump(v);
  assert_string_equal(text, "{\"runDefinition\":[1,{\"x\":2}]}");
  free(text);
  json_decref(v);
  v = parse_select(" [\"a\", {\"b\": true}] ", &r, &err);
  text = jsonx_dump(v);
  assert_string_equal(text, "[\"a\",{\"b\":true}]");
  free(text);
  json_decref(v);
}

/* Every real is written as the shortest text that reads back to the same double
 * (issue 11 item 3): no digit lost, none invented. */
static void dumps_shortest_round_trip_numbers(void **state) {
  int r;
  json_t *v = parse("[0.8350349068479208, 0.93, 4e-07, 1e-09, 0.1, 1704164400000.5, "
                    "2.0, -0.0, 1e+300, 5e-324, 123456789012345678]",
                    8, &r);
  char *text = jsonx_dump(v);
  assert_string_equal(text, "[0.8350349068479208,0.93,4e-7,1e-9,0.1,1704164400000.5,"
                            "2.0,-0.0,1e300,5e-324,123456789012345678]");
  free(text);
  json_decref(v);

  /* Strings are escaped as jansson does: quotes, backslashes, control bytes;
   * UTF-8 and '/' as they are. */
  v = json_pack("{s:s}", "k\"", "a\\b\n\t\x01/\xc3\xa9");
  text = jsonx_dump(v);
  assert_string_equal(text, "{\"k\\\"\":\"a\\\\b\\n\\t\\u0001/\xc3\xa9\"}");
  free(text);
  json_decref(v);
}

/* Whatever jsonx_parse says of a text, jsonx_parse_select says too (the same
 * refusal with the same sentence, or a value), and jansson's parser agrees. */
static void select_refuses_what_parse_refuses(void **state) {
  static const char *const texts[] = {
      "{\"status\":\"ok\",\"x\":\"\xff\"}", /* bad UTF-8 where unread */
      "{\"x\":\"\xed\xa0\x80\"}",           /* a UTF-16 surrogate */
      "{\"x\":\"\xc0\xaf\"}",               /* overlong */
      "{\"x\":\"\xf4\x90\x80\x80\"}",       /* above U+10FFFF */
      "{\"x\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", /* good UTF-8 */
      "{\"x\":\"a\tb\"}",                                      /* raw control character */
      "{\"x\":\"\\u0000\"}",                                   /* NUL escape */
      "{\"x\":\"\\ud800\"}",                                   /* lone surrogate escape */
      "{\"x\":\"\\u00e9\\n\\\"\"}",                            /* good escapes */
      "{\"x\":\"\\q\"}",                                       /* bad escape */
      "{\"x\":01}",
      "{\"x\":-}",
      "{\"x\":1.}",
      "{\"x\":1e}",
      "{\"x\":.5}",
      "{\"x\":123456789012345678901234}",                /* integer overflow */
      "{\"x\":1e400}",                                   /* real overflow */
      "{\"x\":1.5e-3,\"y\":-0,\"z\":12345678901234567}", /* fine numbers */
      "{\"x\":tru}",
      "{\"x\":nul}",
      "{\"x\":[1,]}",
      "{\"x\":{\"a\":1,}}",
      "{\"x\":1}x",
      "{\"x\":1} {}",
      "{\"x\" 1}",
      "{x:1}",
      "{\"x\":1",
      "{\"status\":\"a\",\"status\":\"b\"}", /* duplicate: last wins */
      "{\"st\\u0061tus\":\"escaped key\"}",
      "{\"a\\nb\":[\"x\\ty\",{\"\\\\\":\"\\/\"}],\"e\":[]}", /* escapes, built whole */
      "[1,[2,[3,{\"k\":-0.5E+2}]],true,false,null,\"\"]",
      "{\"status\":\"ok\"}\n\t ",
      "{}",
      "\"just a string\"",
      "{\"tags\":[[[[[[[[[1]]]]]]]]]}", /* deeper than 8 */
  };
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    int r1 = -1, r2 = -2;
    struct error_info e1 = {0}, e2 = {0};
    json_t *full = jsonx_parse(texts[i], strlen(texts[i]), 8, &r1, &e1);
    json_t *some = parse_select(texts[i], &r2, &e2);
    assert_int_equal(r1, r2);
    assert_int_equal(full == NULL, some == NULL);
    assert_string_equal(e1.message, e2.message);
    /* and jansson's own parser agrees, with an equal value */
    json_t *ref = json_loadb(texts[i], strlen(texts[i]), JSON_DECODE_ANY, NULL);
    if (jsonx_depth(texts[i], strlen(texts[i]), 8) <= 8) {
      assert_int_equal(ref == NULL, full == NULL);
      assert_true(!ref || json_equal(ref, full));
    }
    json_decref(ref);
    /* the selected members have the same values */
    const char *status1 = jsonx_string_ci(full, "status");
    const char *status2 = jsonx_string_ci(some, "status");
    assert_true(status1 == status2 || (status1 && status2 && !strcmp(status1, status2)));
    json_decref(full);
    json_decref(some);
  }
}

static void formats_doubles_shortest(void **state) {
  char buf[JSONX_NUMBER_MAX];
  struct {
    double value;
    const char *text;
  } cases[] = {{0.8350349068479208, "0.8350349068479208"},
               {0.1, "0.1"},
               {1.0 / 3, "0.3333333333333333"},
               {4e-7, "4e-7"},
               {1e21, "1e21"},
               {-2.5e-300, "-2.5e-300"},
               {61500, "61500"},
               {1704164400000.0, "1704164400000"},
               {-0.0, "0"},
               {0, "0"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    jsonx_format_double(cases[i].value, buf, sizeof buf);
    assert_string_equal(buf, cases[i].text);
    assert_true(strtod(buf, NULL) == cases[i].value);
  }
  char buf2[32];
  /* A number in a string-or-number key (model versions, ids) keeps its digits. */
  json_t *v = json_pack("{s:f}", "coefficient", 0.8350349068479208);
  assert_string_equal(jsonx_scalar_ci(v, "coefficient", buf2, sizeof buf2),
                      "0.8350349068479208");
  json_decref(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_and_reports_errors),
      cmocka_unit_test(refuses_deep_nesting),
      cmocka_unit_test(looks_up_keys_case_insensitively),
      cmocka_unit_test(exact_key_wins_over_other_casings),
      cmocka_unit_test(dumps_compactly),
      cmocka_unit_test(dumps_what_jansson_dumps),
      cmocka_unit_test(select_builds_only_the_named_members),
      cmocka_unit_test(select_refuses_what_parse_refuses),
      cmocka_unit_test(dumps_shortest_round_trip_numbers),
      cmocka_unit_test(formats_doubles_shortest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
