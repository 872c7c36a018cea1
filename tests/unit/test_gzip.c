/* Unit tests of gzip: round trips, the gzip framing, the output cap, and refusal
 * of corrupt or truncated input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/gzip.h"
#include "gunzip.h"
#include "base/result.h"

static void round_trips(void **state) {
  size_t sizes[] = {0, 1, 100, 70000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    uint8_t *in = malloc(n + 1);
    assert_non_null(in);
    uint32_t x = 12345;
    for (size_t j = 0; j < n; j++) { /* half text, half noise */
      x = x * 1103515245u + 12345u;
      in[j] = j % 2 ? (uint8_t)(x >> 24) : (uint8_t)('a' + j % 26);
    }
    uint8_t *z = NULL, *back = NULL;
    size_t z_len = 0, back_len = 0;
    assert_int_equal(gzip_compress(in, n, &z, &z_len), RESULT_OK);
    /* gzip magic and deflate method, not a raw zlib stream */
    assert_true(z_len >= 18);
    assert_int_equal(z[0], 0x1f);
    assert_int_equal(z[1], 0x8b);
    assert_int_equal(z[2], 8);
    assert_int_equal(gzip_decompress(z, z_len, n, &back, &back_len), RESULT_OK);
    assert_int_equal(back_len, n);
    assert_true(n == 0 || memcmp(in, back, n) == 0);
    free(in);
    free(z);
    free(back);
  }
}

static void compresses_repetitive_text(void **state) {
  char text[10000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = "{\"name\":\"run\"}\n"[i % 15];
  uint8_t *z = NULL;
  size_t z_len = 0;
  assert_int_equal(gzip_compress(text, sizeof text, &z, &z_len), RESULT_OK);
  assert_true(z_len < sizeof text / 10);
  free(z);
}

static void enforces_the_output_cap(void **state) {
  size_t n = 1 << 20; /* a megabyte of zeros: a small bomb */
  uint8_t *zeros = calloc(1, n), *z = NULL, *back = NULL;
  size_t z_len = 0, back_len = 0;
  assert_non_null(zeros);
  assert_int_equal(gzip_compress(zeros, n, &z, &z_len), RESULT_OK);
  assert_true(z_len < 8192); /* over 100x: a bomb, even at the fastest level */
  assert_int_equal(gzip_decompress(z, z_len, n - 1, &back, &back_len), RESULT_TOOBIG);
  assert_null(back);
  assert_int_equal(gzip_decompress(z, z_len, 1000, &back, &back_len), RESULT_TOOBIG);
  assert_int_equal(gzip_decompress(z, z_len, 0, &back, &back_len), RESULT_TOOBIG);
  /* exactly at the cap is fine */
  assert_int_equal(gzip_decompress(z, z_len, n, &back, &back_len), RESULT_OK);
  assert_int_equal(back_len, n);
  free(back);
  free(z);
  free(zeros);
}

static void refuses_bad_input(void **state) {
  uint8_t *back = NULL;
  size_t back_len = 0;
  const char *plain = "not gzip at all, just text";
  assert_int_equal(gzip_decompress(plain, strlen(plain), 1000, &back, &back_len),
                   RESULT_INVALID);
  assert_int_equal(gzip_decompress("", 0, 1000, &back, &back_len), RESULT_INVALID);

  const char *text = "hello hello hello hello";
  uint8_t *z = NULL;
  size_t z_len = 0;
  assert_int_equal(gzip_compress(text, strlen(text), &z, &z_len), RESULT_OK);
  /* truncated: the stream never ends */
  assert_int_equal(gzip_decompress(z, z_len - 6, 1000, &back, &back_len), RESULT_INVALID);
  /* corrupt CRC in the trailer */
  z[z_len - 8] ^= 0xff;
  assert_int_equal(gzip_decompress(z, z_len, 1000, &back, &back_len), RESULT_INVALID);
  assert_null(back);
  free(z);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trips),
      cmocka_unit_test(compresses_repetitive_text),
      cmocka_unit_test(enforces_the_output_cap),
      cmocka_unit_test(refuses_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
