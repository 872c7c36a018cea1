/* Run details: the pure mapping from AML run-history JSON to the run record.
 *
 * The AML client fetches documents (RunDetails, Run, the parent pipeline's Run,
 * metrics v2 answers) and this module reads them, with no I/O, so every rule is
 * unit-tested with JSON fixtures (tests/data/aml/). The service's key casing is
 * not pinned down and some values arrive as numbers or strings, so every lookup
 * is case-insensitive and scalars are rendered as text where the record wants
 * text (docs/protocols.md §4).
 *
 * Precedence: a value found in the run document replaces what the event said
 * (the service is the source of truth); fields the document does not carry keep
 * the event's value. Experiment name and id are only filled, never replaced.
 * The status is not mapped: a record says what its event reported (a
 * RunStatusChanged(Running) processed after the run ended stays Running).
 *
 * Ownership: documents are borrowed; the record copies what it keeps.
 * Thread-safe: no shared state. */
#ifndef HANDLER_RUN_DETAILS_H
#define HANDLER_RUN_DETAILS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/result.h"
#include "base/jsonx.h"
#include "core/record.h"

/* The members of a Run or RunDetails document the functions here read: parse
 * with jsonx_parse_select(..., run_details_select, ...) to build only those. */
extern const struct jsonx_select run_details_select[];

/* Maps a RunDetails or Run document onto `rec`: run type, target,
 * compute target type, times (start, end, execution and queue time), docker
 * image, script, snapshot id, step type, node id, parent run id, display name,
 * error code and message of a failed run, and the run's tags and properties
 * (added to those the event carried, which win). When the document shows the run
 * is a pipeline step the record did not know about, the record becomes a step
 * (run_kind and pipelinerunid). Returns RESULT_OK, RESULT_NOMEM, or
 * RESULT_INVALID when `doc` is not a JSON object. */
HANDLER_NODISCARD int run_details_apply(struct record *rec, const json_t *doc);

/* Fills from the parent pipeline run's document what the step's record still
 * lacks: experiment id, target, compute target type. Never replaces. */
HANDLER_NODISCARD int run_details_apply_parent(struct record *rec, const json_t *parent);

/* The error of a run document, liberally: `error.error.{code,message}`,
 * `error.{code,message}`, a bare string, or the innermost `innerError.code` when
 * there is no outer code. Borrowed pointers (NULL when absent); true when
 * either was found. */
bool run_details_error(const json_t *doc, const char **out_code,
                       const char **out_message);

/* A metric of a run: metricKey.namespace ("" when none) and metricKey.name. */
struct run_metric_key {
  const char *ns;
  const char *name;
};

/* Appends the metric keys of one page of a metrics v2 `list` answer
 * (value[].metricKey) to `keys`, which holds `have` already, up to `max` in
 * all, duplicates (same namespace and name) skipped. Strings are borrowed from
 * `list`. Returns the new count. */
HANDLER_NODISCARD size_t run_details_metric_keys(const json_t *list,
                                                 struct run_metric_key *keys, size_t have,
                                                 size_t max);

/* The token of the page after `page` (its non-empty `continuationToken`), or
 * NULL on the last page. Borrowed. */
const char *run_details_continuation(const json_t *page);

/* The page's non-empty `nextLink` (the URL of the page after it), or NULL.
 * Borrowed. */
const char *run_details_next_link(const json_t *page);

/* The last value of metric `name` in a metrics v2 `full` answer: the point with
 * the highest step (the later one on ties), its `data[name]` (or the only
 * numeric value of `data`), numbers as numbers or numeric strings. False when
 * no finite value was found. */
bool run_details_last_metric(const json_t *full, const char *name, double *out_value);

#endif
