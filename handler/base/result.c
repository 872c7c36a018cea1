/* Result code names and the error_info helpers declared in result.h. */
#include "base/result.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *result_str(int result) {
  switch (result) {
    case RESULT_OK:
      return "ok";
    case RESULT_NOMEM:
      return "out of memory";
    case RESULT_INVALID:
      return "invalid input";
    case RESULT_TOOBIG:
      return "too big";
    case RESULT_IO:
      return "input/output error";
    case RESULT_TRANSIENT:
      return "transient upstream failure";
    case RESULT_PERMANENT:
      return "permanent upstream failure";
    case RESULT_TIMEOUT:
      return "deadline exceeded";
    case RESULT_NOTFOUND:
      return "not found";
    case RESULT_DENIED:
      return "access denied";
    case RESULT_UNSUPPORTED:
      return "unsupported";
    case RESULT_CONFLICT:
      return "conflict";
    default:
      return "unknown error";
  }
}

int error_set(struct error_info *err, int result, const char *field, const char *fmt,
              ...) {
  if (err) {
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return result;
}

void error_clear(struct error_info *err) {
  if (err) {
    err->field[0] = '\0';
    err->message[0] = '\0';
  }
}
