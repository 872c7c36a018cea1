/* The function app's folders and their trigger bindings; see function_app.h. */
#include "host/function_app.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/files.h"
#include "base/jsonx.h"
#include "base/log.h"

#define FUNCTION_JSON_MAX (256 * 1024)

/* The name and type of the eventGridTrigger or timerTrigger binding of
 * function.json; *out_binding NULL when it has neither. */
static int read_binding(const char *path, char **out_binding,
                        enum function_trigger *out_trigger, struct error_info *err) {
  char *text = NULL;
  size_t len = 0;
  *out_binding = NULL;
  int r = files_read(path, FUNCTION_JSON_MAX, &text, &len, NULL);
  if (r != RESULT_OK)
    return error_set(err, r, path, "cannot read %s: %s", path, result_str(r));
  struct error_info parse_err;
  json_t *root = jsonx_parse(text, len, JSONX_DEFAULT_MAX_DEPTH, &r, &parse_err);
  free(text);
  if (!root)
    return error_set(err, RESULT_INVALID, path, "%s: %s", path, parse_err.message);
  json_t *bindings = json_object_get(root, "bindings");
  size_t i;
  json_t *b;
  r = RESULT_OK;
  json_array_foreach(bindings, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    const char *name = json_string_value(json_object_get(b, "name"));
    bool timer = type && strcasecmp(type, "timerTrigger") == 0;
    if (type && (timer || strcasecmp(type, "eventGridTrigger") == 0)) {
      *out_trigger = timer ? FUNCTION_TRIGGER_TIMER : FUNCTION_TRIGGER_EVENT_GRID;
      if (!name || !*name)
        r = error_set(err, RESULT_INVALID, path, "%s: the %s binding has no name", path,
                      type);
      else if (!(*out_binding = strdup(name)))
        r = RESULT_NOMEM;
      break;
    }
  }
  if (!json_is_array(bindings))
    r = error_set(err, RESULT_INVALID, path, "%s has no bindings array", path);
  json_decref(root);
  return r;
}

int function_app_load(struct function_app *out, const char *root,
                      struct error_info *err) {
  memset(out, 0, sizeof *out);
  int r = RESULT_NOMEM;
  DIR *dir = opendir(root);
  if (!dir)
    return error_set(err, RESULT_IO, "FUNCTIONS_APP_ROOT_PATH",
                     "cannot open the function app folder %s: %s", root, strerror(errno));
  if (!(out->root = strdup(root)))
    goto fail;
  struct dirent *entry;
  size_t event_grid = 0;
  while ((entry = readdir(dir))) {
    if (entry->d_name[0] == '.')
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/function.json", root, entry->d_name);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    char *binding = NULL;
    enum function_trigger trigger = FUNCTION_TRIGGER_EVENT_GRID;
    if ((r = read_binding(path, &binding, &trigger, err)) != RESULT_OK)
      goto fail;
    if (!binding) {
      log_warn("event=function_skipped function=%s reason=\"no eventGridTrigger or "
               "timerTrigger binding\"",
               entry->d_name);
      continue;
    }
    event_grid += trigger == FUNCTION_TRIGGER_EVENT_GRID;
    struct function_def *grown =
        realloc(out->functions, (out->count + 1) * sizeof *out->functions);
    char *name = strdup(entry->d_name);
    if (grown)
      out->functions = grown;
    if (!grown || !name) {
      free(binding);
      free(name);
      r = RESULT_NOMEM;
      goto fail;
    }
    out->functions[out->count++] =
        (struct function_def){.name = name, .binding = binding, .trigger = trigger};
  }
  if (event_grid == 0) {
    r = error_set(
        err, RESULT_INVALID, "FUNCTIONS_APP_ROOT_PATH",
        "no function folder under %s has a function.json with an eventGridTrigger "
        "binding",
        root);
    goto fail;
  }
  out->names = calloc(out->count + 1, sizeof *out->names);
  if (!out->names) {
    r = RESULT_NOMEM;
    goto fail;
  }
  for (size_t i = 0; i < out->count; i++)
    out->names[i] = out->functions[i].name;
  closedir(dir);
  return RESULT_OK;
fail:
  closedir(dir);
  function_app_cleanup(out);
  if (r == RESULT_NOMEM)
    error_set(err, r, "", "out of memory loading the function app");
  return r;
}

const struct function_def *function_app_find(const struct function_app *app,
                                             const char *name) {
  for (size_t i = 0; i < app->count; i++)
    if (strcmp(app->functions[i].name, name) == 0)
      return &app->functions[i];
  return NULL;
}

void function_app_cleanup(struct function_app *app) {
  for (size_t i = 0; i < app->count; i++) {
    free(app->functions[i].name);
    free(app->functions[i].binding);
  }
  free(app->functions);
  free(app->names);
  free(app->root);
  memset(app, 0, sizeof *app);
}
