"""Shared helpers of the end-to-end tests that run the handler against the
HTTPS stand-ins (test_enrichment.py, test_appinsights.py, demo.py).

- `make_app_root()`: a temporary Function App (the repo's host.json and function
  folders), so a developer's local.settings.json cannot change the results.
- Time shifting: the sample events (tests/data/sample_pipeline.json) and the
  stand-ins' runs (tests/standins/fixtures/runs.json) carry 2024 times, and App
  Insights refuses items older than 48 hours. `shifted_sample()` moves every
  ISO-8601 timestamp of both by the same whole number of seconds, so the latest
  lands about a minute ago; formats are kept (fraction digits, `Z` / `+00:00`).
- `Bench`: the stand-ins (`Stack`, given the shifted fixtures) and handlers
  under the host emulator started against them, all stopped together.
- Expectations computed from the fixture runs, not from the handler's output:
  `expected_from_run()` gives the record fields run details carry.
- Small readers: `iso_ms()`, `duration_ms()` (App Insights durations),
  `operation_id()` (a run id as App Insights' operation id).
"""

import copy
import datetime
import json
import os
import re
import shutil
import tempfile
import unittest
import uuid
from pathlib import Path

from tests.e2e.host_emulator import HostEmulator
from tests.standins.fixtures import DEFAULT_FIXTURES
from tests.standins.stack import CLIENT_SECRET, Stack

REPO = Path(os.environ.get("REPO_DIR") or Path(__file__).resolve().parents[2])
HANDLER_BIN = Path(os.environ.get("HANDLER_BIN") or REPO / "build" / "handler")
SAMPLE_PATH = REPO / "tests" / "data" / "sample_pipeline.json"
FUNCTION = "function_app"
NEEDS_HANDLER = unittest.skipUnless(
    os.access(HANDLER_BIN, os.X_OK),
    f"no handler executable at {HANDLER_BIN}: build it first (scripts/build)")
CONNECTION_STRING_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING",
                              "APPINSIGHTS_CONNECTION_STRING")
TERMINAL = ("Completed", "Failed", "Canceled")
UNDER_VALGRIND = bool(os.environ.get("HANDLER_UNDER_VALGRIND"))


def budget_s(seconds):
    """An invocation budget for a test timed against it: under valgrind the
    handler runs ~20x slower, and the first token and discovery alone take
    seconds, so the budget (and what is asserted of it) triples."""
    return seconds * 3 if UNDER_VALGRIND else seconds

# An ISO-8601 timestamp as the whole of a JSON string: date, time, optional
# fraction, optional zone (Z or +hh:mm).
_ISO = re.compile(r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
                  r"(?P<zone>Z|[+-]\d{2}:\d{2})?")
_DURATION = re.compile(r"(?:(\d+)\.)?(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?")


def make_app_root():
    """A temporary Function App: the repo's host.json and function folders."""
    root = Path(tempfile.mkdtemp(prefix="handler-e2e-"))
    shutil.copy(REPO / "host.json", root)
    for function_json in REPO.glob("*/function.json"):
        shutil.copytree(function_json.parent, root / function_json.parent.name)
    return root


# -- time ----------------------------------------------------------------------


def _parse(text):
    """(naive UTC datetime of the whole seconds, fraction text, zone text) of an
    ISO timestamp string, or None."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    moment = datetime.datetime.strptime(match["base"], "%Y-%m-%dT%H:%M:%S")
    zone = match["zone"] or ""
    if zone not in ("", "Z"):
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment, match["fraction"] or "", zone


def _walk_strings(value, visit):
    """A copy of a JSON value with `visit` applied to every string."""
    if isinstance(value, dict):
        return {k: _walk_strings(v, visit) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_strings(v, visit) for v in value]
    if isinstance(value, str):
        return visit(value)
    return value


def timestamps(document):
    """Every ISO timestamp string in a JSON value, as aware UTC datetimes."""
    found = []

    def visit(text):
        parsed = _parse(text)
        if parsed is not None:
            found.append(parsed[0].replace(tzinfo=datetime.timezone.utc))
        return text

    _walk_strings(document, visit)
    return found


def shift_timestamps(document, seconds):
    """A copy of a JSON value with every ISO timestamp string moved by `seconds`
    (an int), its fraction digits and zone spelling kept."""
    delta = datetime.timedelta(seconds=seconds)

    def visit(text):
        parsed = _parse(text)
        if parsed is None:
            return text
        moment, fraction, zone = parsed
        if zone not in ("", "Z"):  # keep the offset the text had
            sign = 1 if zone[0] == "+" else -1
            moment += sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return f"{moment + delta:%Y-%m-%dT%H:%M:%S}{fraction}{zone}"

    return _walk_strings(document, visit)


def shifted_sample(lag_seconds=60, events_path=SAMPLE_PATH, fixtures_path=DEFAULT_FIXTURES):
    """(events, fixtures document, shift in seconds): the sample events and the
    stand-in fixtures moved together so their latest timestamp is `lag_seconds`
    ago."""
    events = json.loads(Path(events_path).read_text())
    fixtures = json.loads(Path(fixtures_path).read_text())
    latest = max(timestamps(events) + timestamps(fixtures))
    target = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        seconds=lag_seconds)
    seconds = int((target - latest).total_seconds())
    return shift_timestamps(events, seconds), shift_timestamps(fixtures, seconds), seconds


def iso_ms(text):
    """Milliseconds since the epoch of an ISO timestamp, fraction beyond the
    millisecond dropped (as the handler's time_parse_iso8601_ms does); None for
    None."""
    if text is None:
        return None
    parsed = _parse(text)
    if parsed is None:
        raise ValueError(f"not an ISO timestamp: {text!r}")
    moment, fraction, _ = parsed
    epoch = datetime.datetime(1970, 1, 1)
    return (int((moment - epoch).total_seconds()) * 1000
            + int((fraction[1:] or "0").ljust(3, "0")[:3]))


def duration_ms(text):
    """An App Insights duration `[d.]hh:mm:ss[.fffffff]` in milliseconds (float)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not an App Insights duration: {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups()[:4])
    fraction = float("0." + match.group(5)) if match.group(5) else 0.0
    return ((days * 24 + hours) * 3600 + minutes * 60 + seconds + fraction) * 1000


def operation_id(run_id):
    """A GUID run id as App Insights' operation id: 32 lowercase hex digits."""
    return uuid.UUID(run_id).hex


# -- fixture expectations ------------------------------------------------------


def fixture_runs(fixtures):
    """{run id: run} over every workspace of a fixtures document."""
    return {r["runId"]: r for w in fixtures["workspaces"] for r in w["runs"]}


def _first(mapping, *keys):
    for key in keys:
        value = (mapping or {}).get(key)
        if value not in (None, ""):
            return value
    return None


def expected_from_run(run, event=None):
    """The record fields the run's details carry (docs/records.md names), computed
    from the fixture; fields the run has no value for are absent. With `event`,
    `status` is the one the event reported: a record says what its event said,
    the run's current status fills in only for events without one."""
    props, tags = run.get("properties") or {}, run.get("tags") or {}
    definition = run.get("runDefinition") or {}
    environment = definition.get("environment") or {}
    created = iso_ms(run.get("createdUtc"))
    start, end = iso_ms(run.get("startTimeUtc")), iso_ms(run.get("endTimeUtc"))
    is_pipeline = run.get("runType") == "azureml.PipelineRun"
    error = (run.get("error") or {}).get("error") or {}
    expected = {
        "run_id": run["runId"],
        "status": run.get("status"),
        "run_type": run.get("runType"),
        "target": run.get("target"),
        "start_time_utc_ms": start,
        "end_time_utc_ms": end,
        "execution_time_ms": end - start if start is not None and end is not None else None,
        "queue_time_ms": start - created if start is not None and created is not None
        else None,
        "docker_image": (environment.get("docker") or {}).get("baseImage"),
        "script": definition.get("script") or run.get("scriptName"),
        "snapshot_id": _first(props, "ContentSnapshotId"),
        "compute_target_type": (run.get("compute") or {}).get("targetType")
        or _first(props, "computeTargetType", "_azureml.ComputeTargetType"),
        "step_type": _first(props, "StepType", "stepType"),
        "node_id": _first(tags, "azureml.nodeid") or _first(props, "azureml.nodeid"),
        "pipelinerunid": run["runId"] if is_pipeline else (
            _first(tags, "azureml.pipelinerunid") or _first(props, "azureml.pipelinerunid")),
        "parent_run_id": run.get("parentRunId"),
        "error_code": error.get("code"),
        "error_message": error.get("message"),
    }
    if event is not None and event_status(event):
        expected["status"] = event_status(event)
    return {k: v for k, v in expected.items() if v is not None}


def expected_record(runs, event):
    """The fields the enriched record of a sample `event` must hold: those of its
    run's details (expected_from_run) and those the event itself carries."""
    run = runs[event["data"]["runId"]]
    topic = event["topic"].split("/")
    return dict(expected_from_run(run, event), event_id=event["id"],
                event_time=event["eventTime"],
                experimentId=event["data"]["experimentId"],
                experimentName=event["data"]["experimentName"],
                subscriptions=topic[2], resourceGroup=topic[4], amlWorkSpace=topic[-1])


def last_metrics(run):
    """{name: last value} of the scalar metrics the run logged."""
    return {name: max(points, key=lambda p: p["step"])["value"]
            for name, points in (run.get("metrics") or {}).items() if points}


def event_status(event):
    """The run status an event reports (RunCompleted: Completed)."""
    if event["eventType"].endswith(".RunCompleted"):
        return "Completed"
    return event["data"].get("runStatus")


def is_terminal(event):
    return event_status(event) in TERMINAL


def fresh_copy(event, **data):
    """A copy of an event with a new id (and `data` fields replaced)."""
    event = copy.deepcopy(event)
    event["id"] = str(uuid.uuid4())
    event["data"].update(data)
    if "runId" in data:
        event["subject"] = (f"experiments/{event['data']['experimentId']}/runs/"
                            f"{data['runId']}")
    return event


# -- stand-ins and handlers together --------------------------------------------


class Bench:
    """The stand-ins serving the time-shifted fixtures, and handlers under the
    host emulator pointed at them. A context manager; everything it started is
    stopped on exit.

        with Bench() as bench:
            host = bench.handler("secret", appinsights=False)
            host.deliver(bench.events)
    """

    def __init__(self, lag_seconds=60, **stack_options):
        self.events, self.fixtures, self.shift_seconds = shifted_sample(lag_seconds)
        self.runs = fixture_runs(self.fixtures)
        self._stack_options = stack_options
        self._tmp = None
        self._hosts = []
        self.stack = None
        self.root = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="handler-bench-")
        fixtures_path = Path(self._tmp.name) / "runs.json"
        fixtures_path.write_text(json.dumps(self.fixtures, indent=1))
        self.root = make_app_root()
        try:
            self.stack = Stack(fixtures=fixtures_path, **self._stack_options).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for host in self._hosts:
            if host.process and host.process.poll() is None:
                host.stop()
        self._hosts.clear()
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def settings(self, credential="secret", appinsights=True, ingestion_aad=False, **extra):
        """The handler's settings: the stack's endpoints, one credential (None:
        none), the App Insights connection string unless `appinsights` is
        False, then `extra` (a value None removes the setting)."""
        env = self.stack.env(credential, ingestion_aad=ingestion_aad)
        if not appinsights:
            for name in CONNECTION_STRING_SETTINGS:
                env.pop(name, None)
        env.setdefault("HANDLER_LOG_LEVEL", "debug")
        for name, value in extra.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return env

    def handler(self, credential="secret", appinsights=True, ingestion_aad=False, **extra):
        """A started handler (HostEmulator) with `settings(...)`."""
        host = HostEmulator(self.root, executable=HANDLER_BIN,
                            env=self.settings(credential, appinsights, ingestion_aad,
                                              **extra))
        self._hosts.append(host)
        return host.start()

    def clear_journals(self):
        """Forgets every stand-in's requests and the accepted telemetry."""
        self.stack.reset()

    # -- what must never be printed ------------------------------------------

    def secrets(self):
        """(label, text) of every secret the handler could leak: the client
        secret, the private key's base64 body lines, the federated token, the
        managed identity header, the instrumentation key, every issued token."""
        stack = self.stack
        found = [("client secret", CLIENT_SECRET),
                 ("federated token", stack.federated_token_file.read_text().strip()),
                 ("identity header", stack.msi.service.identity_header),
                 ("instrumentation key", stack.instrumentation_key)]
        key_lines = [line.strip() for line in stack.pki.client_key.read_text().splitlines()
                     if line.strip() and not line.startswith("-----")]
        found += [(f"private key line {i}", line) for i, line in enumerate(key_lines)
                  if len(line) >= 16]
        found += [(f"{g.kind} token for {g.audience}", g.token)
                  for g in stack.directory.grants()]
        return found


def leaked(host, secrets):
    """The labels of the secrets that appear in the handler's stdout or stderr."""
    text = "\n".join(line for _, line in host.output())
    return [label for label, secret in secrets if secret and secret in text]


class BenchTestCase(unittest.TestCase):
    """A test class sharing one Bench (stand-ins and app root); each test starts
    with clean journals, and the handlers it starts are stopped after it.
    Subclasses set `appinsights` (export to the ingestion stand-in, or records on
    stdout) and `bench_options` (Stack options)."""

    bench_options = {}
    appinsights = True

    @classmethod
    def setUpClass(cls):
        cls.bench = Bench(**cls.bench_options).start()
        cls.addClassCleanup(cls.bench.stop)
        cls.stack = cls.bench.stack

    def setUp(self):
        self.bench.clear_journals()

    def handler(self, credential="secret", **extra):
        host = self.bench.handler(credential, appinsights=self.appinsights, **extra)
        self.addCleanup(stop_cleanly, host)
        return host


def stop_cleanly(host):
    """Stops a handler still running and fails unless it exits 0 (under valgrind,
    99 means memcheck found an error or a definitely lost block)."""
    if host.process is None or host.process.poll() is not None:
        return
    code = host.stop()
    if code != 0:
        tail = "\n".join(host.stderr_lines()[-20:])
        raise AssertionError(f"the handler exited with {code}; stderr ends:\n{tail}")
