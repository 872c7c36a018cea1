/* The handler executable: wires settings, the exporter, the enricher and the
 * server together.
 *
 *   handler [serve] [--port PORT] [--app-root DIR]   what the Functions host runs
 *   handler replay [--budget-ms MS] FILE...          backfill from event files
 *   handler check [--dry-run]                        validate the configuration
 *
 * The Functions host starts us with FUNCTIONS_CUSTOMHANDLER_PORT and the app
 * settings in the environment and no arguments. Start-up problems are one line
 * on stderr and exit status 1; usage errors exit 2. SIGTERM drains in-flight
 * invocations and exits 0 only if all of them were answered. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aml/aml_client.h"
#include "cost/retail_prices.h"
#include "export/appinsights.h"
#include "tools/check.h"
#include "core/config.h"
#include "azure/credential.h"
#include "base/crypto.h"
#include "core/exporter.h"
#include "host/function_app.h"
#include "azure/http_client.h"
#include "host/invocation.h"
#include "base/log.h"
#include "tools/replay.h"
#include "host/responder.h"
#include "core/pipeline.h"
#include "host/server.h"
#include "base/startup_clock.h"
#include "azure/storage_account.h"
#include "azure/table_client.h"
#include "watch/run_table.h"
#include "watch/workspace_watch.h"

#define DRAIN_MS 25000

/* What every mode shares: settings and the processing chain behind them. */
struct runtime {
  struct config cfg;
  struct credential *credential; /* NULL: no Azure credential configured */
  struct enricher *enricher;     /* the AML client, when there is a credential */
  struct retail_prices *prices;  /* the cost estimate's prices (HANDLER_COST=on) */
  struct exporter *exporter;
  struct pipeline *pipeline;
  struct run_table *runs;        /* NULL: no storage account, the watch is off */
  struct workspace_watch *watch; /* with runs */
};

static const char main_usage[] =
    "Usage: handler [serve] [--port PORT] [--app-root DIR]\n"
    "       handler replay [--budget-ms MS] FILE...\n"
    "       handler check [--dry-run]\n"
    "       handler --help | --version\n"
    "\n"
    "Azure Functions custom handler that records Azure Machine Learning Event Grid\n"
    "events. The Functions host runs it without arguments (serve); the settings it\n"
    "reads are listed by --help and in README.md.\n"
    "\n"
    "  serve    answer the Functions host on 127.0.0.1 (the default)\n"
    "  replay   process events from files (single events, arrays, one per line, or\n"
    "           Event Grid dead-letter blobs) with the same settings, then exit;\n"
    "           the exit status is 1 if any event could not be recorded\n"
    "  check    validate the settings end to end (credential, workspace access, run\n"
    "           history, ingestion), one line per step with a fix; exit status 1 if\n"
    "           any step failed\n"
    "\n"
    "'handler MODE --help' describes a mode's options.\n";

static const char serve_usage[] =
    "Usage: handler [serve] [--port PORT] [--app-root DIR]\n"
    "\n"
    "  --port PORT      listen on 127.0.0.1:PORT (default: "
    "FUNCTIONS_CUSTOMHANDLER_PORT,\n"
    "                   then FUNCTIONS_HTTPWORKER_PORT)\n"
    "  --app-root DIR   the function app folder (default: FUNCTIONS_APP_ROOT_PATH, or "
    ".)\n";

static const char replay_usage[] =
    "Usage: handler replay [--budget-ms MS] FILE...\n"
    "\n"
    "Processes every event of every FILE as if Event Grid had delivered it, and prints\n"
    "a progress line each second and a summary on stderr. Records go where the\n"
    "settings send them (App Insights, or stdout).\n"
    "\n"
    "  --budget-ms MS   time allowed per event, retries included (default:\n"
    "                   HANDLER_INVOCATION_BUDGET_MS, 20000)\n";

static const char check_usage[] =
    "Usage: handler check [--dry-run]\n"
    "\n"
    "Validates the settings as the handler would use them, one line per step:\n"
    "the settings parse, an Entra ID token for ARM, each watched workspace's\n"
    "discovery, a run history read (a run id that cannot exist: 404 means the\n"
    "identity may read runs), the Retail Prices API (cost estimate), and ingestion.\n"
    "\n"
    "  --dry-run   send ingestion an item it refuses by design (nothing is stored)\n"
    "              instead of a test event named AmlHandlerCheck\n";

static int startup_failed(const struct error_info *err) {
  log_error("event=startup_failed setting=%s reason=\"%s\"",
            err->field[0] ? err->field : "-", err->message);
  return 1;
}

static void runtime_close(struct runtime *rt) {
  workspace_watch_free(rt->watch);
  pipeline_free(rt->pipeline);
  run_table_free(rt->runs);
  exporter_free(rt->exporter);
  if (rt->enricher)
    rt->enricher->free(rt->enricher);
  retail_prices_free(rt->prices);
  credential_free(rt->credential);
  config_cleanup(&rt->cfg);
  http_client_global_cleanup();
  crypto_global_cleanup();
  memset(rt, 0, sizeof *rt);
}

/* SSL_CERT_FILE, unless unset or blank. */
static const char *ca_file(void) {
  return settings_get(settings_process_env, NULL, "SSL_CERT_FILE");
}

/* `handler --help`: the usage, then every setting of config_settings. */
static void print_help(FILE *out) {
  fputs(main_usage, out);
  fputs("\nSettings (app settings, read from the environment; blank means unset):\n",
        out);
  for (size_t i = 0; i < config_settings_count; i++) {
    const struct config_setting *s = &config_settings[i];
    fprintf(out, "  %s", s->name);
    for (size_t a = 0; a < sizeof s->aliases / sizeof *s->aliases && s->aliases[a]; a++)
      fprintf(out, " (or %s)", s->aliases[a]);
    fprintf(out, "\n      %s%s\n", s->summary, s->secret ? " (secret)" : "");
  }
}

/* The run table in the Function App's storage account, when one is configured. */
static int open_run_table(struct runtime *rt, struct error_info *err) {
  struct storage_account *account = NULL;
  struct table_client *tc = NULL;
  int r = storage_account_from_env(settings_process_env, NULL, &account, err);
  if (r != RESULT_OK)
    return r;
  if (!account) {
    log_info(
        "event=watch_off reason=\"no storage account configured (AzureWebJobsStorage, "
        "or AzureWebJobsStorage__accountName / __tableServiceUri)\"");
    return RESULT_OK;
  }
  r = table_client_new(account, rt->credential, rt->cfg.runs_table, &tc, err);
  if (r == RESULT_OK && !(rt->runs = run_table_new(tc)))
    r = error_set(err, RESULT_NOMEM, "", "out of memory");
  if (r == RESULT_OK)
    log_info("event=watch_on table=%s endpoint=%s auth=%s stuck_waiting_minutes=%d "
             "stuck_running_hours=%d max_checks=%d",
             rt->cfg.runs_table, account->table_endpoint,
             account->key ? "shared key" : "Entra ID", rt->cfg.stuck_waiting_minutes,
             rt->cfg.stuck_running_hours, rt->cfg.watch_max_checks);
  storage_account_free(account);
  return r;
}

/* `quiet` keeps the log at warnings whatever HANDLER_LOG_LEVEL says (check). */
static int runtime_open(struct runtime *rt, bool quiet, struct error_info *err) {
  memset(rt, 0, sizeof *rt);
  int r = config_load(&rt->cfg, settings_process_env, NULL, err);
  if (r != RESULT_OK)
    return r;
  log_set_level(quiet ? LOG_WARN : (enum log_level)rt->cfg.log_level);
  struct http_client_options http = {.ca_file = ca_file()};
  if ((r = crypto_global_init(err)) != RESULT_OK ||
      (r = http_client_global_init(&http, err)) != RESULT_OK ||
      (r = credential_from_env(settings_process_env, NULL, &rt->credential, err)) !=
          RESULT_OK)
    goto fail;
  if (rt->credential) {
    if ((r = aml_client_new(rt->credential, settings_process_env, NULL, &rt->enricher,
                            err)) != RESULT_OK)
      goto fail;
    if (rt->cfg.cost) {
      if ((r = retail_prices_new(settings_process_env, NULL, &rt->prices, err)) !=
          RESULT_OK)
        goto fail;
      aml_client_enable_cost(rt->enricher, rt->prices);
    }
  }
  if (rt->cfg.appinsights_connection_string) {
    r = appinsights_exporter_new(&rt->cfg, settings_process_env, NULL, &rt->exporter,
                                 err);
    if (r != RESULT_OK)
      goto fail;
  } else {
    rt->exporter = console_exporter_new();
  }
  if ((r = open_run_table(rt, err)) != RESULT_OK)
    goto fail;
  struct pipeline_options options = {.config = &rt->cfg,
                                     .exporter = rt->exporter,
                                     .enricher = rt->enricher,
                                     .runs = rt->runs};
  if (!rt->exporter || !(rt->pipeline = pipeline_new(&options))) {
    r = error_set(err, RESULT_NOMEM, "", "out of memory");
    goto fail;
  }
  if (rt->runs) {
    struct watch_options wo = {.config = &rt->cfg,
                               .runs = rt->runs,
                               .aml = rt->enricher,
                               .exporter = rt->exporter,
                               .pipeline = rt->pipeline};
    if (!(rt->watch = workspace_watch_new(&wo))) {
      r = error_set(err, RESULT_NOMEM, "", "out of memory");
      goto fail;
    }
  }
  return RESULT_OK;
fail:
  runtime_close(rt);
  return r;
}

/* One line with what the upstream services were asked, for benchmarks and for a
 * person reading the log after a run. */
static void log_upstream_stats(const struct runtime *rt) {
  struct http_client_stats http;
  http_client_get_stats(&http);
  struct aml_client_stats aml = {0};
  if (rt->enricher)
    aml_client_get_stats(rt->enricher, &aml);
  struct retail_prices_stats prices = {0};
  if (rt->prices)
    retail_prices_get_stats(rt->prices, &prices);
  struct appinsights_stats ai;
  appinsights_exporter_stats(rt->exporter, &ai);
  struct table_client_stats table = {0};
  struct run_table_stats runs = {0};
  if (rt->runs) {
    table_client_get_stats(run_table_client(rt->runs), &table);
    run_table_get_stats(rt->runs, &runs);
  }
  log_info("event=table_stats run_events=%llu entity_writes=%llu unchanged=%llu "
           "conflicts=%llu reads=%llu queries=%llu writes=%llu creates=%llu",
           (unsigned long long)runs.events, (unsigned long long)runs.writes,
           (unsigned long long)runs.unchanged, (unsigned long long)runs.conflicts,
           (unsigned long long)table.reads, (unsigned long long)table.queries,
           (unsigned long long)table.writes, (unsigned long long)table.creates);
  log_info("event=upstream_stats http_requests=%llu http_connections=%llu "
           "http_retries=%llu token_requests=%llu discovery_requests=%llu "
           "run_requests=%llu parent_lookups=%llu ingestion_posts=%llu items_sent=%llu "
           "items_accepted=%llu items_failed=%llu duplicates_skipped=%llu "
           "compute_reads=%llu step_list_requests=%llu price_lookups=%llu "
           "price_requests=%llu price_cache_hits=%llu",
           (unsigned long long)http.requests, (unsigned long long)http.connections,
           (unsigned long long)http.retries,
           (unsigned long long)(rt->credential ? credential_token_requests(rt->credential)
                                               : 0),
           (unsigned long long)aml.discovery_requests,
           (unsigned long long)aml.run_requests, (unsigned long long)aml.parent_lookups,
           (unsigned long long)ai.posts, (unsigned long long)ai.items_sent,
           (unsigned long long)ai.items_accepted, (unsigned long long)ai.items_failed,
           (unsigned long long)ai.duplicates_skipped,
           (unsigned long long)aml.compute_reads,
           (unsigned long long)aml.step_list_requests, (unsigned long long)prices.lookups,
           (unsigned long long)prices.requests, (unsigned long long)prices.cache_hits);
}

static unsigned in_flight_probe(void *server) {
  return server_in_flight(server);
}

static int serve(int argc, char **argv) {
  static const struct option options[] = {{"port", required_argument, NULL, 'p'},
                                          {"app-root", required_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  const char *port_arg = NULL, *root_arg = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
      case 'p':
        port_arg = optarg;
        break;
      case 'r':
        root_arg = optarg;
        break;
      case 'h':
        fputs(serve_usage, stdout);
        return 0;
      default:
        fputs(serve_usage, stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "handler: unexpected argument \"%s\"\n\n%s", argv[optind],
            main_usage);
    return 2;
  }

  /* Signals are taken by sigwait() in this thread; every thread started later
   * inherits the mask. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  struct error_info err;
  error_clear(&err);
  struct function_app app = {0};
  struct runtime rt;
  struct server *srv = NULL;
  struct responder *responder = NULL;
  int status = 1;
  /* Start-up's info lines wait until the line that says we listen is out. */
  log_hold();
  if (runtime_open(&rt, false, &err) != RESULT_OK) {
    log_release();
    return startup_failed(&err);
  }
  if (port_arg && !config_parse_port(port_arg, &rt.cfg.port)) {
    error_set(&err, RESULT_INVALID, "--port",
              "--port \"%.20s\" is not a port number (1-65535)", port_arg);
    goto fail;
  }
  if (!rt.cfg.port) {
    error_set(
        &err, RESULT_INVALID, "FUNCTIONS_CUSTOMHANDLER_PORT",
        "no port to listen on: FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions "
        "host sets it; for a standalone run pass --port)");
    goto fail;
  }
  if (function_app_load(&app, root_arg ? root_arg : rt.cfg.app_root, &err) != RESULT_OK)
    goto fail;
  struct responder_options ropts = {.app = &app,
                                    .pipeline = rt.pipeline,
                                    .invocation_budget_ms = rt.cfg.invocation_budget_ms,
                                    .watch = rt.watch};
  if (!(responder = responder_new(&ropts))) {
    error_set(&err, RESULT_NOMEM, "", "out of memory");
    goto fail;
  }

  struct server_options sopts = {.port = rt.cfg.port,
                                 .functions = app.names,
                                 .max_body = INVOCATION_MAX_BODY,
                                 .max_connections = 256,
                                 .invoke = responder_invoke,
                                 .invoke_ctx = responder};
  if (server_start(&sopts, &srv, &err) != RESULT_OK)
    goto fail;
  appinsights_exporter_set_in_flight_probe(rt.exporter, in_flight_probe, srv);
  /* The first line the handler logs (start-up's other info lines follow it): the
   * Functions host waits 30 s for it to listen, so it says how long that took,
   * since exec and since main(). */
  log_release_after("event=listening address=127.0.0.1:%u functions=%zu exporter=%s "
                    "credential=\"%s\" startup_ms=%.0f main_ms=%.1f version=%s",
                    (unsigned)server_port(srv), app.count, rt.exporter->name,
                    rt.credential ? credential_kind(rt.credential) : "none",
                    startup_clock_since_exec_ms(), startup_clock_since_main_ms(),
                    HANDLER_VERSION);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log_info("event=stopping signal=%s in_flight=%u", sig == SIGTERM ? "SIGTERM" : "SIGINT",
           server_in_flight(srv));
  /* the server is about to go away */
  appinsights_exporter_set_in_flight_probe(rt.exporter, NULL, NULL);
  bool drained = server_stop(srv, DRAIN_MS);
  log_upstream_stats(&rt);
  if (drained) {
    log_info("event=stopped");
    status = 0;
  } else {
    log_error(
        "event=stopped reason=\"in-flight invocations were still running after %d ms\"",
        DRAIN_MS);
  }
  responder_free(responder);
  runtime_close(&rt);
  function_app_cleanup(&app);
  return status;
fail:
  log_release();
  startup_failed(&err);
  responder_free(responder);
  runtime_close(&rt);
  function_app_cleanup(&app);
  return 1;
}

static int replay(int argc, char **argv) {
  static const struct option options[] = {{"budget-ms", required_argument, NULL, 'b'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  long budget_ms = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
      case 'b':
        budget_ms = strtol(optarg, NULL, 10);
        if (budget_ms < 100 || budget_ms > 600000) {
          fprintf(stderr, "handler replay: --budget-ms takes 100 to 600000\n");
          return 2;
        }
        break;
      case 'h':
        fputs(replay_usage, stdout);
        return 0;
      default:
        fputs(replay_usage, stderr);
        return 2;
    }
  }
  if (optind == argc) {
    fprintf(stderr, "handler replay: no event files given\n\n%s", replay_usage);
    return 2;
  }
  struct error_info err;
  error_clear(&err);
  struct runtime rt;
  if (runtime_open(&rt, false, &err) != RESULT_OK)
    return startup_failed(&err);
  if (rt.credential)
    log_info("event=credential kind=\"%s\"", credential_kind(rt.credential));
  struct replay_summary summary;
  int r = replay_files(
      rt.pipeline, (const char *const *)argv + optind, (size_t)(argc - optind),
      budget_ms ? (int)budget_ms : rt.cfg.invocation_budget_ms, stderr, &summary);
  runtime_close(&rt);
  return r == RESULT_OK ? 0 : 1;
}

static int check(int argc, char **argv) {
  static const struct option options[] = {{"dry-run", no_argument, NULL, 'd'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
  bool dry_run = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
      case 'd':
        dry_run = true;
        break;
      case 'h':
        fputs(check_usage, stdout);
        return 0;
      default:
        fputs(check_usage, stderr);
        return 2;
    }
  }
  struct error_info err;
  error_clear(&err);
  struct runtime rt;
  log_set_level(LOG_WARN);
  if (runtime_open(&rt, true, &err) != RESULT_OK) {
    char step[96];
    snprintf(step, sizeof step, "settings (%s)", err.field[0] ? err.field : "-");
    check_print(stdout, step, RESULT_INVALID, err.message,
                "correct the setting named (README, Configuration)");
    return 1;
  }
  struct check_subjects subjects = {.config = &rt.cfg,
                                    .credential = rt.credential,
                                    .aml = rt.enricher,
                                    .prices = rt.prices,
                                    .exporter = rt.exporter,
                                    .appinsights = appinsights_exporter_is(rt.exporter),
                                    .dry_run = dry_run,
                                    .budget_ms = rt.cfg.invocation_budget_ms,
                                    .runs = rt.runs};
  int failed = check_run(&subjects, stdout);
  runtime_close(&rt);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  startup_clock_mark();
  /* A peer closing a socket must not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  /* glibc gives each thread that allocates its own arena, up to 8 per core, and
   * an arena keeps what it held at its peak: with a thread per invocation that
   * is megabytes of mostly idle heap. Two arenas hold the same load in less. */
  if (!getenv("MALLOC_ARENA_MAX"))
    mallopt(M_ARENA_MAX, 2);
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("handler %s\n", HANDLER_VERSION);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--help") == 0) {
    print_help(stdout);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "replay") == 0)
    return replay(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "check") == 0)
    return check(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "serve") == 0)
    return serve(argc - 1, argv + 1);
  return serve(argc, argv);
}
