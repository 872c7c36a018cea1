/* The Application Insights exporter: records -> envelopes -> POST /v2.1/track.
 *
 * export_records() returns RESULT_OK only when every envelope of the call was
 * accepted by ingestion, or refused for good per item (400: counted and logged,
 * not retried), or dropped by the daily cap (402/439, logged at error level and
 * counted: the SDKs drop those too, and a redelivery would be refused the same
 * way until the cap resets, so the invocation succeeds). Anything that may pass
 * (transport errors, 408/429/5xx, 401/403, per-item retryable codes of a 206)
 * is retried with the server's Retry-After or backoff inside the caller's
 * deadline; when the deadline passes first the call returns RESULT_TRANSIENT
 * (RESULT_TIMEOUT when no answer came at all) so Event Grid delivers again.
 *
 * Group commit: concurrent calls enqueue their envelopes; one sender thread
 * collects what arrives within a short window (or up to a size cap) and sends
 * one gzip'd POST; each caller waits until its own items are settled. 307/308
 * redirects are followed (at most 10, never to plain http off loopback, never
 * to another domain with a bearer token) and the new URL is kept for later
 * sends. Event ids whose telemetry was accepted are remembered (dedup.h), so a
 * redelivered event is acknowledged without sending again. A run is measured
 * (metrics, request or dependency) once per process: the first of its terminal
 * records claims it, later ones are custom events only; a failed export gives
 * the claim back so the redelivery measures it.
 *
 * Settings read: the connection string (already picked by config.h),
 * APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ID ingestion with a managed
 * identity), WEBSITE_SITE_NAME, WEBSITE_INSTANCE_ID, HANDLER_LEGACY_TRACES.
 *
 * Ownership: the exporter is freed with exporter_free(). Threading: export is
 * thread-safe; appinsights_exporter_stats may be called at any time. */
#ifndef HANDLER_APPINSIGHTS_H
#define HANDLER_APPINSIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/exporter.h"
#include "base/result.h"

struct appinsights_stats {
  uint64_t posts;              /* POSTs sent (including redirected and retried ones) */
  uint64_t items_sent;         /* envelopes in those POSTs */
  uint64_t items_accepted;     /* envelopes accepted by ingestion */
  uint64_t items_retried;      /* envelopes queued again after a retryable answer */
  uint64_t items_failed;       /* refused for good (400 per item, too large) */
  uint64_t items_dropped;      /* dropped by the daily cap (402/439) */
  uint64_t duplicates_skipped; /* records of events already accepted */
  uint64_t redirects;          /* 307/308 followed */
};

/* Builds the exporter from the loaded settings (cfg->appinsights_connection_string
 * must be set). Starts the sender thread. RESULT_INVALID with `err` naming the
 * setting when the connection or authentication string is malformed, or the
 * managed identity it asks for is not available. */
HANDLER_NODISCARD int appinsights_exporter_new(const struct config *cfg,
                                               settings_getenv_fn getenv_fn, void *ctx,
                                               struct exporter **out,
                                               struct error_info *err);

/* True when `exp` was made by appinsights_exporter_new. The functions below
 * accept any exporter and do nothing (zero counters) for another one. */
bool appinsights_exporter_is(const struct exporter *exp);

/* Counters of `exp` (zero for another exporter). */
void appinsights_exporter_stats(const struct exporter *exp,
                                struct appinsights_stats *out);

/* The URL POSTs go to now (changes after a redirect); copied into buf. */
void appinsights_exporter_track_url(const struct exporter *exp, char *buf,
                                    size_t buf_size);

/* Lets the group commit end its window early: `in_flight(ctx)` says how many
 * invocations are being processed (server_in_flight); once all of them wait for
 * their items, the batch goes at once instead of after the window. Call it
 * before invocations arrive. Without it, the window always runs out. */
void appinsights_exporter_set_in_flight_probe(struct exporter *exp,
                                              unsigned (*in_flight)(void *ctx),
                                              void *ctx);

/* For `handler check`: sends one test event (AmlHandlerCheck) and waits for it to
 * be accepted; with dry_run, sends an item the service refuses by design (nothing
 * is stored) and succeeds when the service read it, proving the endpoint and the
 * key or token. RESULT_DENIED for 401/403, with the role to grant. */
HANDLER_NODISCARD int appinsights_exporter_check(struct exporter *exp, bool dry_run,
                                                 int64_t deadline_ms,
                                                 struct error_info *err);

#endif
