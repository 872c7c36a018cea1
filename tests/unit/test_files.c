/* Unit tests of files (the one whole-file reader): contents, the size cap at
 * and past its edge, a missing file, a folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/files.h"

static char dir[64];

static int make_dir(void **state) {
  snprintf(dir, sizeof dir, "/tmp/test_files.XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes `len` bytes of a pattern to dir/name; returns the path. */
static const char *write_file(const char *name, size_t len) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (size_t i = 0; i < len; i++)
    fputc('a' + (int)(i % 26), f);
  fclose(f);
  return path;
}

static void reads_whole_files_with_a_terminator(void **state) {
  /* Sizes around the first chunk (64 KiB) and its doublings. */
  const size_t sizes[] = {0, 1, 65535, 65536, 65537, 300000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    const char *path = write_file("f", sizes[i]);
    char *text = NULL;
    size_t len = 99;
    assert_int_equal(files_read(path, 1 << 20, &text, &len, NULL), RESULT_OK);
    assert_int_equal(len, sizes[i]);
    assert_int_equal(text[len], '\0');
    if (len)
      assert_int_equal(text[len - 1], 'a' + (int)((len - 1) % 26));
    free(text);
  }
}

static void the_cap_is_inclusive(void **state) {
  const size_t caps[] = {10, 65536, 100000};
  for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
    char *text = NULL;
    size_t len = 0;
    const char *path = write_file("exact", caps[i]);
    assert_int_equal(files_read(path, caps[i], &text, &len, NULL), RESULT_OK);
    assert_int_equal(len, caps[i]);
    free(text);
    path = write_file("over", caps[i] + 1);
    assert_int_equal(files_read(path, caps[i], &text, &len, NULL), RESULT_TOOBIG);
    assert_null(text);
  }
}

static void missing_files_and_folders_are_told_apart(void **state) {
  char *text = (char *)"unchanged";
  size_t len = 0;
  int e = 0;
  char path[128];
  snprintf(path, sizeof path, "%s/none", dir);
  assert_int_equal(files_read(path, 100, &text, &len, &e), RESULT_NOTFOUND);
  assert_null(text);
  assert_int_not_equal(e, 0);
  assert_int_equal(files_read(dir, 100, &text, &len, &e), RESULT_IO);
  assert_null(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_whole_files_with_a_terminator),
      cmocka_unit_test(the_cap_is_inclusive),
      cmocka_unit_test(missing_files_and_folders_are_told_apart),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
