"""The demo: the sample pipeline through the Functions host emulator and the
Azure stand-ins, told for a person.

    python3 tests/e2e/demo.py            (after scripts/build)

It starts the HTTPS stand-ins of Entra ID, ARM, AML and App Insights ingestion
(tests/standins), starts build/handler under the host emulator the way the
Functions host does, configured with a service principal secret and an App
Insights connection string, and delivers the events of
tests/data/sample_pipeline.json (a three-step pipeline whose `evaluate` step
fails) as Event Grid does. The events and the stand-ins' runs are moved in time
together so the latest lands a minute ago (App Insights refuses items older
than 48 hours). Then it prints:

1. the records as enriched through the AML REST API, one block per event (what
   App Insights holds in customEvents);
2. what App Insights received: counts by type, and the pipeline run's request
   with its steps' dependencies as a timeline;
3. the upstream economy: token requests, discovery requests, run-history
   requests, POSTs to ingestion;
4. the workspace watch (docs/watch.md), with the run table in Azurite (which
   scripts/setup installs): a run whose Queued event is two hours old, one tick
   of the timer function, and the AmlRunStuck it reports, plus the active runs.
   Skipped, with a line saying so, when Azurite is not installed.

Exits 1 when an event was not accepted, the handler failed, or ingestion
refused an item. Environment: HANDLER_BIN (default build/handler).
"""

import collections
import datetime
import os
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.azurite import AZURITE_TABLE, Azurite  # noqa: E402
from tests.e2e.host_emulator import HandlerStartError, succeeded  # noqa: E402
from tests.e2e.support import HANDLER_BIN, Bench, duration_ms, iso_ms  # noqa: E402

WIDTH = 100
# Record keys in the order a person reads them; the rest follow alphabetically.
KEY_ORDER = (
    "run_id", "status", "run_type", "experimentName", "pipelinerunid", "parent_run_id",
    "node_id", "step_type", "target", "compute_target_type", "docker_image", "script",
    "snapshot_id", "start_time_utc_ms", "end_time_utc_ms", "execution_time_ms",
    "queue_time_ms", "error_code", "error_message", "enrichment")
HIDDEN = ("event_id", "event_time", "subscriptions", "resourceGroup", "amlWorkSpace",
          "experimentId")
TYPE_NAMES = {"EventData": "customEvents", "MetricData": "customMetrics",
              "RequestData": "requests", "RemoteDependencyData": "dependencies",
              "MessageData": "traces", "ExceptionData": "exceptions"}


def human_ms(value):
    """1105039 -> "18m25.039s"."""
    ms = int(round(float(value)))
    minutes, rest = divmod(ms, 60000)
    hours, minutes = divmod(minutes, 60)
    text = f"{rest / 1000:.3f}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def clock(ms):
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return f"{moment:%H:%M:%S}.{ms % 1000:03d}Z"


def shown(key, value):
    if key in ("start_time_utc_ms", "end_time_utc_ms"):
        return clock(int(float(value)))
    if key in ("execution_time_ms", "queue_time_ms"):
        return human_ms(value)
    text = str(value).replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def record_block(event, item):
    """One compact block: the event line, then key=value pairs wrapped."""
    short_type = event["eventType"].rsplit(".", 1)[1]
    said = event["data"].get("runStatus")
    label = f"{short_type} ({said})" if said else short_type
    header = f"{label:<28} event {event['id']}  at {event['eventTime']}"
    if item is None:
        return header + "\n    (no custom event received)\n"
    props = item.properties
    keys = [k for k in KEY_ORDER if k in props]
    keys += sorted(k for k in props if k not in KEY_ORDER and k not in HIDDEN)
    pairs = [f"{k}={shown(k, props[k])}" for k in keys]
    measurements = item.base_data.get("measurements") or {}
    extra = {k: v for k, v in measurements.items() if k not in props}
    if extra:
        pairs.append("metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(extra.items())))
    body = textwrap.fill("  ".join(pairs), WIDTH, initial_indent="    ",
                         subsequent_indent="    ", break_on_hyphens=False)
    return f"{header}\n{body}\n"


def timeline(service):
    """The pipeline requests with their dependencies, as indented lines. Items
    received more than once (same id) are shown once, with the count."""
    lines = []
    requests = collections.OrderedDict()
    for request in service.items(base_type="RequestData"):
        requests.setdefault(request.base_data.get("id"), []).append(request)
    dependencies = collections.OrderedDict()
    for dependency in service.items(base_type="RemoteDependencyData"):
        dependencies.setdefault(dependency.base_data.get("id"), []).append(dependency)
    for request_id, copies in requests.items():
        request = copies[0]
        base = request.base_data
        start = iso_ms(request.envelope["time"])
        duration = duration_ms(base["duration"])
        name = base.get("name") or request.properties.get("cicd.pipeline.name", "")
        times = f"  (received {len(copies)} times)" if len(copies) > 1 else ""
        lines.append(f"request {request_id}  {name}  operation "
                     f"{request.tags.get('ai.operation.id')}{times}")
        lines.append(f"  starts {clock(start)}, lasts {human_ms(duration)}, "
                     f"{'succeeded' if base.get('success') else 'FAILED'}"
                     f" (responseCode {base.get('responseCode')})")
        children = sorted((group for group in dependencies.values()
                           if group[0].tags.get("ai.operation.parentId") == request_id),
                          key=lambda group: iso_ms(group[0].envelope["time"]))
        scale = 40 / duration if duration else 0
        for group in children:
            dependency = group[0]
            dbase = dependency.base_data
            offset = iso_ms(dependency.envelope["time"]) - start
            length = duration_ms(dbase["duration"])
            bar = " " * int(offset * scale) + "#" * max(1, int(length * scale))
            label = dbase.get("name") or dependency.properties.get(
                "cicd.pipeline.task.name", "?")
            times = f"  x{len(group)}" if len(group) > 1 else ""
            lines.append(f"    +{human_ms(offset):>10}  {label[:18]:<18} "
                         f"{human_ms(length):>10}  "
                         f"{'ok    ' if dbase.get('success') else 'FAILED'}  "
                         f"|{bar:<41}|{times}")
    orphans = sum(len(group) for group in dependencies.values()
                  if group[0].tags.get("ai.operation.parentId") not in requests)
    if orphans:
        lines.append(f"({orphans} dependencies whose request was not received)")
    if not requests:
        lines.append("(no request received)")
    return lines


def economy(stack):
    posts = stack.ingestion.service.posts() + stack.ingestion_alt.service.posts()
    items = sum(p.items_received for p in posts)
    aml_routes = collections.Counter(e.route for e in stack.aml.journal.exchanges())
    ingestion_stats = stack.ingestion.journal.stats()
    return [
        f"token requests      {len(stack.entra.journal.exchanges('token'))} to Entra ID, "
        f"{len(stack.msi.journal.exchanges('msi'))} to the managed identity endpoint",
        f"discovery requests  {len(stack.arm.journal.exchanges('workspace'))} ARM workspace "
        f"GET, {aml_routes['discovery']} discovery GET",
        f"run history         {aml_routes['run']} run requests, "
        f"{aml_routes['metrics_list'] + aml_routes['metrics_full']} metrics requests over "
        f"{stack.aml.journal.stats()['connections']} connection(s)",
        f"ingestion           {len(posts)} POSTs carrying {items} items "
        f"({sum(p.gzip for p in posts)} gzipped) over {ingestion_stats['connections']} "
        f"connection(s)",
    ]


STUCK_EXPERIMENT = "0b6e1d2c-7f3a-4e59-9c1d-5a4b3c2d1e0f"


def stuck_run_scene(bench, azurite):
    """A run queued two hours ago, one watch tick, what it reported. Returns
    (lines, ok)."""
    stack = bench.stack
    ws = stack.workspace
    run_id = "demo-stuck-" + datetime.datetime.now().strftime("%H%M%S")
    queued = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    stack.catalog.put_run(ws, {"runId": run_id, "experimentId": STUCK_EXPERIMENT,
                               "status": "Queued", "runType": "azureml.scriptrun",
                               "target": "gpu-cluster", "properties": {}, "tags": {}})
    event = {"id": f"{run_id}-queued", "topic": ws.resource_id,
             "subject": f"experiments/{STUCK_EXPERIMENT}/runs/{run_id}",
             "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
             "eventTime": queued.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
             "data": {"experimentId": STUCK_EXPERIMENT, "experimentName": "nightly-train",
                      "runId": run_id, "runType": "azureml.scriptrun", "runTags": {},
                      "runProperties": {}, "runStatus": "Queued"},
             "dataVersion": "2", "metadataVersion": "1"}
    host = bench.handler("secret", appinsights=True, HANDLER_LOG_LEVEL="info",
                         AzureWebJobsStorage=azurite.connection_string)
    delivered = host.invoke("function_app", event)
    tick = host.invoke_timer("workspace_watch")
    host.stop()
    items = stack.ingestion.service.items() + stack.ingestion_alt.service.items()
    stuck = [i for i in items if i.name == "AmlRunStuck"
             and i.properties.get("run_id") == run_id]
    active = {i.properties.get("status"): i.base_data["metrics"][0]["value"]
              for i in items if i.name == "AmlActiveRuns"}
    lines = [f"run {run_id} (experiment nightly-train) queued at {event['eventTime']}: "
             f"its event answered {delivered.status}; one tick of workspace_watch answered "
             f"{tick.status}: " + "; ".join(tick.body.get("Logs", []))]
    for item in stuck:
        p = item.properties
        lines.append(f"AmlRunStuck  run_id={p['run_id']} stuck_status={p['stuck_status']} "
                     f"stuck_for={human_ms(float(p['stuck_for_ms']))} "
                     f"threshold={human_ms(float(p['threshold_ms']))} target={p.get('target')}")
    lines.append("AmlActiveRuns " + ", ".join(f"{k}={v:g}" for k, v in sorted(active.items())))
    return lines, len(stuck) == 1 and tick.status == 200


def main():
    if not os.access(HANDLER_BIN, os.X_OK):
        print(f"demo: no handler at {HANDLER_BIN}: build it first (scripts/build)",
              file=sys.stderr)
        return 1
    with Bench() as bench:
        stack = bench.stack
        try:
            host = bench.handler("secret", appinsights=True, HANDLER_LOG_LEVEL="info")
        except HandlerStartError as error:
            print(f"demo: {error}", file=sys.stderr)
            return 1
        outcomes = host.deliver_until_accepted(bench.events)
        exit_code = host.stop()

        service = stack.ingestion.service
        items = service.items() + stack.ingestion_alt.service.items()
        print(f"Delivered {len(bench.events)} events of the sample pipeline "
              f"(times moved by {bench.shift_seconds // 86400} days to now).\n")
        print("== Records, as enriched through the AML REST API (customEvents)\n")
        for event in bench.events:
            matches = [i for i in items if i.base_type == "EventData"
                       and i.properties.get("event_id") == event["id"]]
            print(record_block(event, matches[0] if matches else None))

        print("== What Application Insights received\n")
        counts = collections.Counter(TYPE_NAMES.get(i.base_type, i.base_type) for i in items)
        print("    " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
        names = collections.Counter(i.name for i in items if i.base_type == "EventData")
        print("    customEvents by name: "
              + ", ".join(f"{name} {n}" for name, n in sorted(names.items())))
        metric_names = collections.Counter(i.name for i in items
                                           if i.base_type == "MetricData")
        print("    customMetrics by name: "
              + ", ".join(f"{name} {n}" for name, n in sorted(metric_names.items())) + "\n")
        for line in timeline(service):
            print("    " + line)
        print("\n== Upstream economy\n")
        for line in economy(stack):
            print("    " + line)

        print("\n== The workspace watch: a stuck run\n")
        watch_ok = True
        if os.access(AZURITE_TABLE, os.X_OK):
            azurite = Azurite().start()
            try:
                lines, watch_ok = stuck_run_scene(bench, azurite)
            finally:
                azurite.close()
            for line in lines:
                print("    " + line)
        else:
            print(f"    skipped: no Azurite at {AZURITE_TABLE} (scripts/setup installs it)")

        refused = [e for p in service.posts() for e in p.errors]
        failures = [r for o in outcomes for r in o.results if not succeeded(r)]
        accepted = sum(o.accepted for o in outcomes)
        print(f"\n{accepted}/{len(outcomes)} events accepted, "
              f"{sum(o.attempts for o in outcomes)} invocations, "
              f"{len(refused)} items refused by ingestion, handler exit code {exit_code}")
        ok = (exit_code == 0 and accepted == len(outcomes) and not refused and watch_ok
              and counts.get("customEvents", 0) >= len(bench.events))
        if not ok:
            for failure in failures:
                print(f"demo: invocation failed: {getattr(failure, 'status', '')} "
                      f"{getattr(failure, 'raw', failure)!r}"[:400], file=sys.stderr)
            for error in refused[:5]:
                print(f"demo: item refused: {error}", file=sys.stderr)
            print("demo: the handler's last log lines:", file=sys.stderr)
            for line in host.stderr_lines()[-15:]:
                print("    " + line, file=sys.stderr)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
