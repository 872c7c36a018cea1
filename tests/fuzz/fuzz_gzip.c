/* Fuzz target: gzip. The input is inflated with a 256 KiB cap (a gzip bomb must
 * stop at the cap with RESULT_TOOBIG, never allocate past it), and compressed
 * then inflated back, which must give the input again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "base/gzip.h"
#include "gunzip.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_quiet();
  uint8_t *out = NULL;
  size_t out_len = 0;
  if (gzip_decompress(data, size, CAP, &out, &out_len) == RESULT_OK && out_len > CAP)
    abort();
  free(out);

  /* A small cap on the same input. */
  out = NULL;
  if (gzip_decompress(data, size, 16, &out, &out_len) == RESULT_OK && out_len > 16)
    abort();
  free(out);

  uint8_t *z = NULL, *back = NULL;
  size_t zlen = 0, back_len = 0;
  if (gzip_compress(data, size, &z, &zlen) == RESULT_OK) {
    if (gzip_decompress(z, zlen, size + 1, &back, &back_len) != RESULT_OK ||
        back_len != size || (size && memcmp(back, data, size) != 0))
      abort();
  }
  free(z);
  free(back);
  return 0;
}
