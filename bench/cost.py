"""What the cost estimate costs (issue 14): upstream calls per 1,000 runs, and
the instructions and latency it adds per event.

    python3 bench/cost.py [--runs 1000] [--callgrind SMALL LARGE]

The real handler (build/handler, or HANDLER_BIN) runs under the Functions host
emulator against the Python stand-ins (tests/standins), whose fixtures are
generated here: PIPELINES pipelines of RUNS / PIPELINES steps each, the steps
spread over three clusters (two VM sizes in eastus, dedicated and low
priority, and one in westeurope), all finished. Every step's terminal event is
delivered, then every pipeline's (16 at a time). Counted from the stand-ins'
journals: ARM compute reads, Retail Prices pages and lookups (a lookup of one
size is PAGES_PER_LOOKUP pages), AML step-list pages.

Latency: the median and p95 of the invocation round trip (host emulator to
handler and back) with HANDLER_COST=on and =off, same events, same stand-ins;
wall-clock on a shared machine, so indicative only. Instructions
(--callgrind): the handler under callgrind for SMALL and LARGE step events
delivered one at a time (so connection reuse is the same in every run), cost
on and off; (I(LARGE) - I(SMALL)) / (LARGE - SMALL) is the per-event figure with
start-up and shutdown cancelled out, and on - off is what the estimate adds.
Everything listens on 127.0.0.1; every process started is stopped.
"""

import argparse
import copy
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.host_emulator import HostEmulator  # noqa: E402
from tests.e2e.support import fresh_copy, make_app_root, shifted_sample  # noqa: E402
from tests.standins.stack import Stack  # noqa: E402

HANDLER = pathlib.Path(os.environ.get("HANDLER_BIN") or REPO / "build" / "handler")
PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"
TRAIN = "b5fb4970-c5e1-48a7-ac98-8d4f951669ef"
CLUSTERS = (("cpu-cluster", "eastus", "STANDARD_DS3_V2", "Dedicated"),
            ("spot-cluster", "eastus", "STANDARD_D4S_V3", "LowPriority"),
            ("eu-cluster", "westeurope", "STANDARD_DS3_V2", "Dedicated"))
PIPELINES = 10


def compute(name, location, size, priority):
    return {"name": name, "location": location, "properties": {
        "computeType": "AmlCompute", "provisioningState": "Succeeded",
        "properties": {"vmSize": size, "vmPriority": priority, "osType": "Linux",
                       "scaleSettings": {"maxNodeCount": 4, "minNodeCount": 0}}}}


def build(runs):
    """(fixtures, events): the shifted sample grown to `runs` finished steps."""
    events, fixtures, _ = shifted_sample()
    workspace = fixtures["workspaces"][0]
    by_id = {r["runId"]: r for r in workspace["runs"]}
    step_event = next(e for e in events if e["data"]["runId"] == TRAIN
                      and e["eventType"].endswith(".RunStatusChanged")
                      and e["data"].get("runStatus") == "Completed")
    pipe_event = next(e for e in events if e["data"]["runId"] == PIPELINE
                      and e["eventType"].endswith(".RunStatusChanged")
                      and e["data"].get("runStatus") in ("Completed", "Failed"))
    workspace["computes"] = [compute(*c) for c in CLUSTERS]
    new_runs, step_events, pipe_events = [], [], []
    for p in range(PIPELINES):
        pipe_id = str(uuid.uuid4())
        pipe = copy.deepcopy(by_id[PIPELINE])
        pipe.update(runId=pipe_id, rootRunId=pipe_id)
        pipe.setdefault("properties", {})["azureml.pipelinerunid"] = pipe_id
        new_runs.append(pipe)
        ev = fresh_copy(pipe_event)
        ev["data"]["runId"] = pipe_id
        ev["subject"] = ev["subject"].replace(PIPELINE, pipe_id)
        ev["data"].setdefault("runTags", {})["azureml.pipelinerunid"] = pipe_id
        pipe_events.append(ev)
        for s in range(runs // PIPELINES):
            step_id = str(uuid.uuid4())
            name, location, size, priority = CLUSTERS[(p * runs + s) % len(CLUSTERS)]
            step = copy.deepcopy(by_id[TRAIN])
            step.update(runId=step_id, parentRunId=pipe_id, rootRunId=pipe_id, target=name)
            step["compute"] = dict(step["compute"], target=name, vmSize=size,
                                   priority=priority, region=location)
            step["properties"]["azureml.pipelinerunid"] = pipe_id
            if "tags" in step and step["tags"]:
                step["tags"]["azureml.pipelinerunid"] = pipe_id
            new_runs.append(step)
            ev = fresh_copy(step_event)
            ev["data"]["runId"] = step_id
            ev["subject"] = ev["subject"].replace(TRAIN, step_id)
            tags = ev["data"].get("runTags") or {}
            if "azureml.pipelinerunid" in tags:
                tags["azureml.pipelinerunid"] = pipe_id
            step_events.append(ev)
    workspace["runs"] = list(by_id.values()) + new_runs
    return fixtures, step_events, pipe_events


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def deliver_timed(host, events, concurrency=16):
    latencies = []
    for start in range(0, len(events), concurrency):
        batch = events[start:start + concurrency]
        t0 = time.monotonic()
        delivery = host.deliver(batch, concurrency=concurrency)
        elapsed = (time.monotonic() - t0) * 1000 / len(batch)
        if delivery.status != 202:
            raise SystemExit(f"delivery failed: {delivery.results[:2]}")
        latencies.append(elapsed)
    return latencies


def run(stack, root, env, events, executable=HANDLER, timeout=30.0, concurrency=16):
    host = HostEmulator(root, executable=executable, env=env, startup_timeout=timeout)
    host.start()
    try:
        latencies = deliver_timed(host, events, concurrency)
    finally:
        code = host.stop(timeout=300)
    if code != 0:
        raise SystemExit(f"handler exited {code}: {host.stderr_lines()[-5:]}")
    return host, latencies


def callgrind(stack, root, env, events, n, tag, out):
    outfile = out / f"callgrind.cost-{tag}.{n}.out"
    wrapper = out / f"handler-callgrind-{tag}-{n}.sh"
    wrapper.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind "
                       f"--callgrind-out-file={outfile} {HANDLER} \"$@\"\n")
    wrapper.chmod(0o755)
    # One at a time: connection reuse, and so TLS handshakes, do not vary
    # between the runs compared.
    run(stack, root, env, events[:n], executable=wrapper, timeout=180.0, concurrency=1)
    total = subprocess.run(["callgrind_annotate", "--threshold=100", str(outfile)],
                           capture_output=True, text=True).stdout
    for line in total.splitlines():
        if "PROGRAM TOTALS" in line:
            return int(line.split()[0].replace(",", ""))
    raise SystemExit(f"no total in {outfile}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--callgrind", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    a = ap.parse_args()
    out = pathlib.Path(tempfile.mkdtemp(prefix="bench-cost-"))
    fixtures, step_events, pipe_events = build(a.runs)
    path = out / "runs.json"
    path.write_text(json.dumps(fixtures))
    root = make_app_root()
    results = {}
    with Stack(fixtures=path) as stack:
        for cost in ("on", "off"):
            stack.reset()
            env = dict(stack.env("secret"), HANDLER_COST=cost, HANDLER_LOG_LEVEL="warn")
            env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
            _, lat = run(stack, root, env, step_events + pipe_events)
            prices = stack.prices.journal.exchanges("prices")
            results[cost] = {
                "events": len(step_events) + len(pipe_events),
                "compute_reads": len(stack.arm.journal.exchanges("compute")),
                "price_pages": len(prices),
                "price_lookups": sum(1 for e in prices if "$skip" not in e.query),
                "step_list_pages": len(stack.aml.journal.exchanges("children")),
                "latency_ms_p50": statistics.median(lat),
                "latency_ms_p95": percentile(lat, 95)}
        if a.callgrind:
            small, large = a.callgrind
            events = step_events  # steady state: steps, caches warm after the first
            for cost in ("on", "off"):
                env = dict(stack.env("secret"), HANDLER_COST=cost, HANDLER_LOG_LEVEL="warn")
                env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
                ir = {n: callgrind(stack, root, env, events, n, cost, out)
                      for n in (small, large)}
                results[cost]["ir_per_event"] = (ir[large] - ir[small]) / (large - small)
    runs = len(step_events) + len(pipe_events)
    print(json.dumps(results, indent=1))
    on = results["on"]
    print(f"\nper 1,000 runs ({runs} finished runs: {len(step_events)} steps on "
          f"{len(CLUSTERS)} clusters = 3 price keys, {len(pipe_events)} pipelines):")
    for key in ("compute_reads", "price_lookups", "price_pages", "step_list_pages"):
        print(f"  {key:16} {on[key] * 1000 / runs:8.1f}   (total {on[key]})")
    print(f"  latency per invocation, ms: cost on p50 {on['latency_ms_p50']:.2f} "
          f"p95 {on['latency_ms_p95']:.2f}; off p50 {results['off']['latency_ms_p50']:.2f} "
          f"p95 {results['off']['latency_ms_p95']:.2f}")
    if a.callgrind:
        d = results["on"]["ir_per_event"] - results["off"]["ir_per_event"]
        print(f"  instructions per step event: on {results['on']['ir_per_event']:,.0f}, "
              f"off {results['off']['ir_per_event']:,.0f}, the estimate {d:,.0f}")


if __name__ == "__main__":
    main()
