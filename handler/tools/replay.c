/* Replay of event files through the pipeline; see replay.h. */
#include "tools/replay.h"

#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "base/log.h"
#include "base/timeutil.h"

#define REPLAY_MAX_FILE (256u * 1024 * 1024)
#define PROGRESS_EVERY_MS 1000

struct replay_run {
  struct pipeline *pipe;
  int budget_ms;
  FILE *progress;
  struct replay_summary *summary;
  int64_t last_progress_ms;
};

static void replay_event(struct replay_run *run, const json_t *event) {
  struct error_info err;
  error_clear(&err);
  int64_t deadline = time_mono_ms() + run->budget_ms;
  const char *id = jsonx_string_ci(event, "id");
  char invocation[96];
  snprintf(invocation, sizeof invocation, "replay:%.80s", id ? id : "?");
  log_set_invocation(invocation);
  struct pipeline_outcome outcome;
  int r = pipeline_process(run->pipe, event, event, NULL, deadline, &outcome, &err);
  log_set_invocation(NULL);
  run->summary->events++;
  if (r != RESULT_OK) {
    run->summary->failed++;
    if (run->progress)
      fprintf(run->progress, "replay: event %s failed: %s\n", id ? id : "(no id)",
              err.message);
  } else if (outcome.rejected) {
    run->summary->rejected++;
  } else {
    run->summary->recorded++;
  }

  int64_t now = time_mono_ms();
  if (run->progress && now - run->last_progress_ms >= PROGRESS_EVERY_MS) {
    run->last_progress_ms = now;
    fprintf(run->progress, "replay: %zu events, %zu recorded, %zu rejected, %zu failed\n",
            run->summary->events, run->summary->recorded, run->summary->rejected,
            run->summary->failed);
  }
}

/* Events one per line: every non-blank line must be a JSON object. */
static json_t *parse_lines(char *text, struct error_info *err) {
  json_t *events = json_array();
  char *save = NULL;
  size_t line_no = 0;
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    size_t len = strlen(line);
    if (strspn(line, " \t\r") == len)
      continue;
    int r;
    json_t *event = jsonx_parse(line, len, JSONX_DEFAULT_MAX_DEPTH, &r, err);
    if (!event) {
      json_decref(events);
      return NULL;
    }
    json_array_append_new(events, event);
  }
  return events;
}

static int replay_file(struct replay_run *run, const char *path) {
  char *text = NULL;
  size_t len = 0;
  int r = files_read(path, REPLAY_MAX_FILE, &text, &len, NULL);
  if (r == RESULT_NOTFOUND)
    r = RESULT_IO;
  if (r != RESULT_OK) {
    if (run->progress)
      fprintf(run->progress, "replay: cannot read %s: %s\n", path, result_str(r));
    return r;
  }
  struct error_info err;
  json_t *root = jsonx_parse(text, len, JSONX_DEFAULT_MAX_DEPTH, &r, &err);
  if (!root) {
    struct error_info lines_err;
    root = parse_lines(text, &lines_err);
  }
  free(text);
  if (!root) {
    if (run->progress)
      fprintf(run->progress,
              "replay: %s holds neither an event, an array of events nor one "
              "event per line: %s\n",
              path, err.message);
    return RESULT_INVALID;
  }
  if (json_is_array(root)) {
    size_t i;
    json_t *event;
    json_array_foreach(root, i, event) replay_event(run, event);
  } else {
    replay_event(run, root);
  }
  json_decref(root);
  return RESULT_OK;
}

int replay_files(struct pipeline *pipe, const char *const *paths, size_t count,
                 int budget_ms, FILE *progress, struct replay_summary *out) {
  memset(out, 0, sizeof *out);
  struct replay_run run = {.pipe = pipe,
                           .budget_ms = budget_ms,
                           .progress = progress,
                           .summary = out,
                           .last_progress_ms = time_mono_ms()};
  for (size_t i = 0; i < count; i++)
    if (replay_file(&run, paths[i]) != RESULT_OK)
      out->files_unreadable++;
  if (progress)
    fprintf(progress,
            "replay: done: %zu events from %zu files, %zu recorded, %zu rejected, %zu "
            "failed, "
            "%zu files unreadable\n",
            out->events, count, out->recorded, out->rejected, out->failed,
            out->files_unreadable);
  return out->failed || out->files_unreadable ? RESULT_TRANSIENT : RESULT_OK;
}
