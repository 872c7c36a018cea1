/* The handler executable: wires settings, the function app, the exporter and the
 * server together, then serves until SIGTERM.
 *
 * The Functions host starts us with FUNCTIONS_CUSTOMHANDLER_PORT and the app
 * settings in the environment and no arguments; `--port` and `--app-root` exist
 * for standalone runs. Start-up problems are one line on stderr and exit status
 * 1; a SIGTERM drains in-flight invocations and exits 0 only if all of them were
 * answered. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "invocation.h"
#include "exporter.h"
#include "function_app.h"
#include "log.h"
#include "processor.h"
#include "server.h"

#define DRAIN_MS 25000

static void usage(FILE *out) {
  fprintf(
      out,
      "Usage: handler [--port PORT] [--app-root DIR]\n"
      "\n"
      "Azure Functions custom handler that records Azure Machine Learning Event Grid\n"
      "events. The Functions host starts it with FUNCTIONS_CUSTOMHANDLER_PORT set; the\n"
      "settings it reads are listed in README.md.\n"
      "\n"
      "  --port PORT      listen on 127.0.0.1:PORT (default: "
      "FUNCTIONS_CUSTOMHANDLER_PORT)\n"
      "  --app-root DIR   the function app folder (default: FUNCTIONS_APP_ROOT_PATH or "
      ".)\n"
      "  --help           show this help\n"
      "  --version        show the version\n");
}

static int startup_failed(const struct error_info *err) {
  log_error("event=startup_failed setting=%s reason=\"%s\"",
            err->field[0] ? err->field : "-", err->message);
  return 1;
}

int main(int argc, char **argv) {
  static const struct option long_options[] = {{"port", required_argument, NULL, 'p'},
                                               {"app-root", required_argument, NULL, 'r'},
                                               {"help", no_argument, NULL, 'h'},
                                               {"version", no_argument, NULL, 'V'},
                                               {NULL, 0, NULL, 0}};
  const char *port_arg = NULL, *root_arg = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (opt) {
      case 'p':
        port_arg = optarg;
        break;
      case 'r':
        root_arg = optarg;
        break;
      case 'h':
        usage(stdout);
        return 0;
      case 'V':
        printf("handler %s\n", HANDLER_VERSION);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "handler: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
  }

  /* Signals are taken by sigwait() in this thread; every thread started later
   * inherits the mask. A peer closing a socket must not kill the process. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct error_info err;
  error_clear(&err);
  struct config cfg;
  if (config_load(&cfg, config_process_env, NULL, &err) != RESULT_OK)
    return startup_failed(&err);
  log_set_level((enum log_level)cfg.log_level);
  if (port_arg && !config_parse_port(port_arg, &cfg.port)) {
    error_set(&err, RESULT_INVALID, "--port",
              "--port \"%.20s\" is not a port number (1-65535)", port_arg);
    config_cleanup(&cfg);
    return startup_failed(&err);
  }
  if (!cfg.port) {
    error_set(
        &err, RESULT_INVALID, "FUNCTIONS_CUSTOMHANDLER_PORT",
        "no port to listen on: FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions "
        "host sets it; for a standalone run pass --port)");
    config_cleanup(&cfg);
    return startup_failed(&err);
  }

  int status = 1;
  struct function_app app = {0};
  struct exporter *exporter = NULL;
  struct processor *proc = NULL;
  struct server *srv = NULL;
  if (function_app_load(&app, root_arg ? root_arg : cfg.app_root, &err) != RESULT_OK) {
    startup_failed(&err);
    goto done;
  }
  if (cfg.appinsights_connection_string) {
    error_set(&err, RESULT_UNSUPPORTED, cfg.appinsights_setting,
              "%s is set, but this build has no Application Insights exporter yet",
              cfg.appinsights_setting);
    startup_failed(&err);
    goto done;
  }
  exporter = console_exporter_new();
  struct processor_options popts = {.config = &cfg, .app = &app, .exporter = exporter};
  if (!exporter || !(proc = processor_new(&popts))) {
    error_set(&err, RESULT_NOMEM, "", "out of memory");
    startup_failed(&err);
    goto done;
  }

  struct server_options sopts = {.port = cfg.port,
                                 .functions = app.names,
                                 .max_body = INVOCATION_MAX_BODY,
                                 .max_connections = 256,
                                 .invoke = processor_invoke,
                                 .invoke_ctx = proc};
  if (server_start(&sopts, &srv, &err) != RESULT_OK) {
    startup_failed(&err);
    goto done;
  }
  log_info("event=listening address=127.0.0.1:%u functions=%zu exporter=%s version=%s",
           (unsigned)server_port(srv), app.count, exporter->name, HANDLER_VERSION);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log_info("event=stopping signal=%s in_flight=%u", sig == SIGTERM ? "SIGTERM" : "SIGINT",
           server_in_flight(srv));
  bool drained = server_stop(srv, DRAIN_MS);
  srv = NULL;
  if (drained) {
    log_info("event=stopped");
    status = 0;
  } else {
    log_error(
        "event=stopped reason=\"in-flight invocations were still running after %d ms\"",
        DRAIN_MS);
  }

done:
  if (srv)
    server_stop(srv, 0);
  processor_free(proc);
  exporter_free(exporter);
  function_app_cleanup(&app);
  config_cleanup(&cfg);
  return status;
}
