/* The function app on disk: which functions the host will invoke us for.
 *
 * The Functions host POSTs to `/{FunctionName}`, where the name is a folder of
 * the app root holding a function.json. function_app_load() reads every such
 * folder and keeps the ones whose trigger binding is `eventGridTrigger` (AML
 * events) or `timerTrigger` (the workspace watch), with the trigger type and the
 * binding's name (the key under `Data` in the invocation payload). Folders with
 * other triggers are logged and not served.
 *
 * Ownership: the caller owns the struct; function_app_cleanup() frees it.
 * Read-only after loading, so thread-safe to share. */
#ifndef HANDLER_FUNCTION_APP_H
#define HANDLER_FUNCTION_APP_H

#include <stddef.h>

#include "base/result.h"

enum function_trigger { FUNCTION_TRIGGER_EVENT_GRID, FUNCTION_TRIGGER_TIMER };

struct function_def {
  char *name;    /* folder name, case kept */
  char *binding; /* name of the trigger binding */
  enum function_trigger trigger;
};

struct function_app {
  char *root;
  struct function_def *functions;
  size_t count;
  const char **names; /* NULL-terminated list of function names (for the server) */
};

/* Loads the app at `root`. Fails with RESULT_INVALID when a function.json is
 * malformed or no folder has an eventGridTrigger binding (a timer alone serves
 * nothing). */
HANDLER_NODISCARD int function_app_load(struct function_app *out, const char *root,
                                        struct error_info *err);
const struct function_def *function_app_find(const struct function_app *app,
                                             const char *name);
void function_app_cleanup(struct function_app *app);

#endif
