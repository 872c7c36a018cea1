/* cmocka assertions on run records, shared by the unit tests. Include after
 * <cmocka.h>. */
#ifndef HANDLER_TEST_RECORD_ASSERT_H
#define HANDLER_TEST_RECORD_ASSERT_H

#include "core/record.h"

/* Field `field` of `rec` is the string `expected`, or absent when NULL. */
static inline void assert_field(const struct record *rec, enum record_field field,
                                const char *expected) {
  const char *got = record_string(rec, field);
  if (!expected) {
    assert_null(got);
    return;
  }
  assert_non_null(got);
  assert_string_equal(got, expected);
}

#endif
