/* Reading a whole local file: function.json, a certificate, a federated token,
 * event files to replay. The one place the handler reads files.
 * Thread-safe (no shared state). */
#ifndef HANDLER_FILES_H
#define HANDLER_FILES_H

#include <stddef.h>

#include "base/result.h"

/* Reads the file at `path`, at most `max` bytes, into a NUL-terminated malloc'd
 * buffer (*out, the caller frees it; *out_len bytes before the NUL). Returns
 * RESULT_OK, RESULT_NOTFOUND (no such file), RESULT_IO (cannot be opened or
 * read; *out_errno, when not NULL, says why), RESULT_TOOBIG (longer than `max`)
 * or RESULT_NOMEM. On failure *out is NULL. */
HANDLER_NODISCARD int files_read(const char *path, size_t max, char **out,
                                 size_t *out_len, int *out_errno);

#endif
