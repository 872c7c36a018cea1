"""Measures the workspace watch (issue 13): table operations per event, the
tick for 1,000 open runs, and per-event CPU and latency with the run table on
against off. Uses the Python stand-ins (run history, ingestion) and Azurite.

    python3 bench/watch.py [--events 400] [--runs 1000] [--before PATH]
    python3 bench/watch.py --callgrind      (instructions per event, off and on)

--before names a handler built from the commit before the watch (same events,
no storage): "before" against "off" (this build, no storage) and "on" (run
table in Azurite), interleaved twice to spread the machine's noise.

Prints one JSON document. The handler's CPU is read from /proc (utime + stime
of the handler process, over the delivery only); latency is each invocation's
wall time at the client (the stand-ins are Python, so absolute latencies are
higher than against Azure: compare the two modes, not the numbers).
"""

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.azurite import Azurite  # noqa: E402
from tests.e2e.support import Bench  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(ws, run_id, status, when):
    exp = "0b6e1d2c-7f3a-4e59-9c1d-5a4b3c2d1e0f"
    return {"id": str(uuid.uuid4()), "topic": ws.resource_id,
            "subject": f"experiments/{exp}/runs/{run_id}",
            "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
            "eventTime": iso(when),
            "data": {"experimentId": exp, "experimentName": "bench", "runId": run_id,
                     "runType": "azureml.scriptrun", "runTags": {},
                     "runProperties": {"azureml.runsource": "azureml.scriptrun"},
                     "runStatus": status},
            "dataVersion": "2", "metadataVersion": "1"}


def put_run(bench, run_id, status):
    bench.stack.catalog.put_run(bench.stack.workspace, {
        "runId": run_id, "experimentId": "0b6e1d2c-7f3a-4e59-9c1d-5a4b3c2d1e0f",
        "status": status, "runType": "azureml.scriptrun", "target": "cpu",
        "properties": {}, "tags": {}})


def deliver(host, events, concurrency):
    def one(ev):
        start = time.perf_counter()
        answer = host.invoke("function_app", ev)
        return answer.status, time.perf_counter() - start
    pid = host.process.pid
    cpu0 = cpu_seconds(pid)
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, events))
    cpu = cpu_seconds(pid) - cpu0
    lat = sorted(t for _, t in results)
    return {"events": len(events), "failed": sum(s != 200 for s, _ in results),
            "cpu_us_per_event": round(cpu / len(events) * 1e6),
            "latency_ms_mean": round(statistics.mean(lat) * 1000, 2),
            "latency_ms_p50": round(lat[len(lat) // 2] * 1000, 2),
            "latency_ms_p95": round(lat[int(len(lat) * 0.95)] * 1000, 2)}


def stats_line(host, name):
    host.stop()
    line = next(l for _, l in host.output() if f"event={name}" in l)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def tick(host):
    start = time.perf_counter()
    answer = host.invoke_timer("workspace_watch", timeout=300)
    wall = time.perf_counter() - start
    count = tick.seen.get(id(host), 0) + 1
    lines = host.wait_for(lambda: (ls := [l for _, l in host.output()
                                          if "event=watch_tick " in l]) and
                          len(ls) >= count and ls, timeout=30)
    tick.seen[id(host)] = count
    line = lines[count - 1]
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    return {"status": answer.status, "wall_ms": round(wall * 1000),
            **{k: fields[k] for k in ("open", "candidates", "checked", "stuck",
                                       "history_calls", "deferred", "complete",
                                       "duration_ms")}}


tick.seen = {}


def callgrind_instructions(bench, azurite, events, concurrency):
    """Instructions per event (callgrind), run table off and on: the same
    comparison as CPU time, without the machine's noise."""
    import subprocess
    from tests.e2e.host_emulator import HostEmulator
    from tests.e2e.support import HANDLER_BIN
    ws = bench.stack.workspace
    now = datetime.datetime.now(datetime.timezone.utc)
    out = {}
    for mode in ("off", "on"):
        runs = [str(uuid.uuid4()) for _ in range(events + 20)]
        for r in runs:
            put_run(bench, r, "Running")
        dump = Path(f"/tmp/watch-callgrind-{mode}-{os.getpid()}.out")
        wrapper = Path(f"/tmp/watch-callgrind-{mode}-{os.getpid()}.sh")
        wrapper.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind "
                           f"--callgrind-out-file={dump} {HANDLER_BIN} \"$@\"\n")
        wrapper.chmod(0o755)
        extra = {"AzureWebJobsStorage": azurite.connection_string} if mode == "on" else {}
        env = bench.settings("secret", HANDLER_LOG_LEVEL="info",
                             HANDLER_INVOCATION_BUDGET_MS=120000, **extra)
        host = HostEmulator(bench.root, executable=str(wrapper), env=env).start()
        evs = [event(ws, r, "Running", now) for r in runs]
        deliver(host, evs[:20], concurrency)
        subprocess.run(["callgrind_control", "-z"], capture_output=True)
        deliver(host, evs[20:], concurrency)
        subprocess.run(["callgrind_control", "-d"], capture_output=True)
        host.stop()
        text = subprocess.run(["callgrind_annotate", f"{dump}.1"], capture_output=True,
                              text=True).stdout
        total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text)[1]
                    .replace(",", ""))
        out[f"instructions_per_event_{mode}"] = total // events
        for f in Path("/tmp").glob(f"watch-callgrind-{mode}-{os.getpid()}*"):
            f.unlink()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--before", help="handler binary of the commit before the watch")
    parser.add_argument("--callgrind", action="store_true",
                        help="only instructions per event, off and on (valgrind)")
    args = parser.parse_args()
    out = {}
    azurite = Azurite().start()
    try:
        with Bench() as bench:
            if args.callgrind:
                out.update(callgrind_instructions(bench, azurite, 100, 4))
                print(json.dumps(out, indent=1))
                return
            ws = bench.stack.workspace
            now = datetime.datetime.now(datetime.timezone.utc)
            common = {"HANDLER_LOG_LEVEL": "info", "HANDLER_INVOCATION_BUDGET_MS": 120000}
            storage = {"AzureWebJobsStorage": azurite.connection_string,
                       "HANDLER_RUNS_TABLE": "benchruns"}

            # Per-event CPU and latency, run table off then on (same events' shape).
            modes = ["off", "on", "off2", "on2"]
            if args.before:
                modes = ["before", "off", "on", "before2", "off2", "on2"]
            for mode in modes:
                runs = [str(uuid.uuid4()) for _ in range(args.events)]
                for r in runs:
                    put_run(bench, r, "Running")
                evs = [event(ws, r, "Running", now) for r in runs]
                if mode.startswith("before"):
                    from tests.e2e.host_emulator import HostEmulator
                    host = HostEmulator(bench.root, executable=args.before,
                                        env=bench.settings("secret", **common)).start()
                else:
                    host = bench.handler("secret", **common,
                                         **(storage if mode.startswith("on") else {}))
                deliver(host, evs[:20], args.concurrency)  # warm: token, discovery
                out[f"per_event_{mode}"] = deliver(host, evs[20:], args.concurrency)
                if mode.startswith("on"):
                    out[f"table_ops_{mode}"] = stats_line(host, "table_stats")
                else:
                    host.stop()

            # 1,000 open runs, all queued for two hours (past the 60 min threshold).
            runs = [str(uuid.uuid4()) for _ in range(args.runs)]
            for r in runs:
                put_run(bench, r, "Queued")
            evs = [event(ws, r, "Queued", now - datetime.timedelta(hours=2)) for r in runs]
            storage["HANDLER_RUNS_TABLE"] = "tickruns"
            host = bench.handler("secret", **common, **storage)
            deliver(host, evs, args.concurrency)
            out["table_ops_1000_queued"] = stats_line(host, "table_stats")

            host = bench.handler("secret", **common, **storage,
                                 HANDLER_STUCK_WAITING_MINUTES=100000)
            out["tick_1000_open_none_due"] = tick(host)
            host.stop()
            host = bench.handler("secret", **common, **storage)
            out["tick_1000_open_default_budget"] = tick(host)
            out["tick_1000_open_default_budget_again"] = tick(host)
            host.stop()
            host = bench.handler("secret", **common, **storage,
                                 HANDLER_WATCH_MAX_CHECKS=args.runs)
            out["tick_1000_open_check_all"] = tick(host)
            host.stop()
    finally:
        azurite.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
