"""An emulator of the Azure Functions host for custom handlers, Event Grid trigger.

Core Tools cannot run where this project is built and tested, so this module
plays the host's part from the documented protocol (docs/protocols.md, sections
1 and 2): it reads the Function App (host.json, the function folders,
local.settings.json), starts the handler executable with the host's environment
and no arguments but those of host.json, waits until `GET /` answers, and POSTs
invocations to `/{FunctionName}` the way the host does, checking every answer
the way the host reads it. On top of that it delivers batches of events as the
Event Grid extension does (one invocation per event, in parallel; 202 when all
succeeded, else 500 and Event Grid delivers the whole batch again).

Stricter than the host in one respect: a 2xx answer without `Outputs`, `Logs`
(a list of strings) or `ReturnValue` is a protocol error here; the host only
warns.

The child's environment: the host's FUNCTIONS_* variables, the app settings
(`Values` of local.settings.json, overridden by the caller's `env`), and PATH,
HOME, locale, CA and sanitizer variables of this process, not the rest of it (so
a developer's shell cannot leak settings into a test); `inherit_env=True` passes
the whole environment, as `func start` does.

Library use:

    with HostEmulator("/path/to/app", env={"HANDLER_LOG_LEVEL": "debug"}) as host:
        answer = host.invoke("function_app", event)
        delivery = host.deliver(events)
        records = host.wait_for_records(1)

CLI use (what scripts/demo runs):

    python3 tests/e2e/host_emulator.py --app-root . [--setting K=V ...]
        [--concurrency N] EVENTS.json...
"""

import argparse
import collections
import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HOST_VERSION = "4.1036.1.23224"
READY_POLL_SECONDS = 0.025
PASSED_THROUGH_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
)
# Event Grid's delay before each redelivery, in seconds; scaled down for tests.
EVENT_GRID_RETRY_SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600)
CHUNK_SIZE = 16 * 1024
ENCODING_DEPTH = {"object": 0, "string": 1, "double": 2}  # times JSON-encoded


class HandlerStartError(RuntimeError):
    """The handler could not be started, or exited or hung before it was ready."""


class ProtocolError(RuntimeError):
    """An answer the host could not accept; `answer` is what came back."""

    def __init__(self, message, answer):
        super().__init__(message)
        self.answer = answer


@dataclass
class FunctionApp:
    """What the host reads from the app root before it starts the handler."""

    root: Path
    executable: Path
    working_directory: Path
    arguments: list[str]
    functions: dict[str, str | None]  # function name -> eventGridTrigger binding
    settings: dict[str, str]  # Values of local.settings.json
    timers: dict[str, dict] = field(default_factory=dict)  # name -> timerTrigger binding


@dataclass
class Answer:
    """One HTTP answer of the handler; `body` is the parsed JSON or None."""

    status: int
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: object
    invocation_id: str | None = None

    @property
    def ok(self):
        return 200 <= self.status < 300


@dataclass
class Delivery:
    """One batch delivered as the Event Grid extension does it.

    `results` holds, per event, its invocation's Answer or the exception that
    failed it; `status` is what the extension answers Event Grid."""

    status: int
    results: list


@dataclass
class EventOutcome:
    """What became of one event after Event Grid's redeliveries."""

    event_id: str
    accepted: bool
    results: list = field(default_factory=list)  # one per delivery of the event

    @property
    def attempts(self):
        return len(self.results)


def succeeded(result):
    """True when an invocation result (Answer or exception) is a success."""
    return isinstance(result, Answer) and result.ok


def load_app(app_root, executable=None):
    """Reads host.json, the function folders and local.settings.json.

    `executable` replaces host.json's defaultExecutablePath (resolved against the
    app root when relative)."""
    root = Path(app_root).resolve()
    description = _read_json(root / "host.json")["customHandler"]["description"]
    exe = Path(executable or description["defaultExecutablePath"])
    workdir = description.get("workingDirectory") or ""
    settings_file = root / "local.settings.json"
    settings = _read_json(settings_file).get("Values", {}) if settings_file.exists() else {}
    return FunctionApp(
        root=root,
        executable=exe if exe.is_absolute() else root / exe,
        working_directory=root / workdir,
        arguments=list(description.get("arguments") or []),
        functions={
            folder.name: _trigger_binding(folder / "function.json")
            for folder in sorted(root.iterdir())
            if (folder / "function.json").is_file()
        },
        settings={name: str(value) for name, value in settings.items()},
        timers={
            folder.name: _timer_binding(folder / "function.json")
            for folder in sorted(root.iterdir())
            if (folder / "function.json").is_file()
            and _timer_binding(folder / "function.json")
        },
    )


def _read_json(path):
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def _trigger_binding(function_json):
    for binding in _read_json(function_json).get("bindings", []):
        if binding.get("type", "").lower() == "eventgridtrigger":
            return binding["name"]
    return None


def _timer_binding(function_json):
    for binding in _read_json(function_json).get("bindings", []):
        if binding.get("type", "").lower() == "timertrigger":
            return binding
    return None


def resolve_schedule(binding, settings):
    """The timer's schedule as the host resolves it: `%NAME%` is the app
    setting NAME (an unresolved name fails the function's indexing)."""
    schedule = binding.get("schedule", "")
    match = re.fullmatch(r"%([^%]+)%", schedule)
    if not match:
        return schedule
    if match[1] not in settings:
        raise ValueError(f"{schedule} does not resolve to a value (app setting missing)")
    return settings[match[1]]


def timer_body(function_name, binding, past_due=False, last=None):
    """The JSON body the host POSTs for a timerTrigger: Data.<binding> is the
    TimerInfo object (Schedule, ScheduleStatus, IsPastDue, as the timer
    extension's TimerInfo serializes), Metadata the sys block."""
    now = _utc_now()
    info = {"Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {"Last": last or now, "Next": now, "LastUpdated": now},
            "IsPastDue": past_due}
    return {"Data": {binding["name"]: info},
            "Metadata": {"sys": {"MethodName": function_name, "UtcNow": now,
                                 "RandGuid": str(uuid.uuid4())}}}


def _expand(argument, variables):
    """%VAR% expansion as .NET's ExpandEnvironmentVariables: unknown names stay."""
    return re.sub(r"%([^%]+)%", lambda m: variables.get(m[1], m[0]), argument)


def _utc_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}0Z"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invocation_body(function_name, binding, event, encoding="object", retry_context=None):
    """The JSON body the host POSTs for one Event Grid event.

    `encoding`: "object" (the event as an object, what the host sends), "string"
    (its JSON text) or "double" (the JSON text of that text)."""
    value = event
    for _ in range(ENCODING_DEPTH[encoding]):
        value = json.dumps(value)
    metadata = {
        "data": event.get("data"),
        "sys": {"MethodName": function_name, "UtcNow": _utc_now(),
                "RandGuid": str(uuid.uuid4())},
    }
    if retry_context is not None:
        metadata["RetryContext"] = retry_context
    return {"Data": {binding: value}, "Metadata": metadata}


def invocation_headers(invocation_id):
    return {
        "X-Azure-Functions-InvocationId": invocation_id,
        "X-Azure-Functions-HostVersion": HOST_VERSION,
        "User-Agent": f"Azure-Functions-Host/{HOST_VERSION}",
        "Content-Type": "application/json; charset=utf-8",
    }


def check_answer(answer):
    """Raises ProtocolError unless the answer is one the host can read."""
    problems = []
    content_type = answer.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        problems.append(f"Content-Type is {content_type!r}, not application/json")
    body = answer.body
    if not isinstance(body, dict):
        problems.append(f"the body is not a JSON object: {answer.raw[:200]!r}")
    elif answer.ok:
        problems += [f"no {key}" for key in ("Outputs", "Logs", "ReturnValue")
                     if key not in body]
        if not isinstance(body.get("Outputs", {}), dict):
            problems.append("Outputs is not an object")
        logs = body.get("Logs", [])
        if not (isinstance(logs, list) and all(isinstance(s, str) for s in logs)):
            problems.append("Logs is not a list of strings")
    if problems:
        raise ProtocolError(
            f"{answer.status} answer to invocation {answer.invocation_id}: "
            + "; ".join(problems), answer)


class HostEmulator:
    """Runs one handler process the way the Functions host does.

    Thread-safe: invoke(), request() and deliver() may be called from many
    threads; keep-alive connections are pooled, one per request in flight."""

    def __init__(self, app_root=".", *, executable=None, env=None, inherit_env=False,
                 startup_timeout=30.0):
        self.app = load_app(app_root, executable)
        self.port = None
        self.worker_id = None
        self.process = None
        self._extra_env = dict(env or {})
        self._inherit_env = inherit_env
        self._startup_timeout = startup_timeout
        self._output = []  # (stream name, line) in arrival order
        self._output_changed = threading.Condition()
        self._readers = []
        self._idle = []  # keep-alive connections not in use
        self._idle_lock = threading.Lock()

    # -- process ---------------------------------------------------------------

    def _child_env(self):
        if self._inherit_env:
            env = dict(os.environ)
        else:
            env = {k: os.environ[k] for k in PASSED_THROUGH_ENV if k in os.environ}
        env.update(self.app.settings)
        env.update(self._extra_env)
        env.update({
            "FUNCTIONS_CUSTOMHANDLER_PORT": str(self.port),
            "FUNCTIONS_HTTPWORKER_PORT": str(self.port),
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID": self.worker_id,
            "FUNCTIONS_APP_ROOT_PATH": str(self.app.root),
        })
        return env

    def start(self):
        """Starts the handler and waits until it answers `GET /`."""
        if not os.access(self.app.executable, os.X_OK):
            raise HandlerStartError(f"{self.app.executable} is not an executable file")
        self.port = _free_port()
        self.worker_id = str(uuid.uuid4())
        env = self._child_env()
        argv = [str(self.app.executable)] + [_expand(a, env) for a in self.app.arguments]
        self.process = subprocess.Popen(
            argv, cwd=self.app.working_directory, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            reader = threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            reader.start()
            self._readers.append(reader)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _read(self, name, pipe):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._output_changed:
                self._output.append((name, line))
                self._output_changed.notify_all()
        pipe.close()

    def _wait_ready(self):
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._join_readers()
                raise HandlerStartError(
                    f"the handler exited with {self.process.returncode} before it was "
                    f"ready; stderr:\n" + "\n".join(self.stderr_lines()[-20:]))
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(READY_POLL_SECONDS)
            except http.client.HTTPException:
                return  # an answer, if not a valid one: the host counts it as ready
            finally:
                conn.close()
        raise HandlerStartError(
            f"the handler did not answer GET / on port {self.port} within "
            f"{self._startup_timeout} s")

    def terminate(self):
        """Sends SIGTERM without waiting."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout):
        """Waits for the exit and for its output; returns the exit code."""
        code = self.process.wait(timeout)
        self._join_readers()
        self._close_connections()
        return code

    def stop(self, timeout=10.0):
        """SIGTERM, then the exit code; SIGKILL (code -9) after `timeout` s."""
        self.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self):
        """SIGKILL; returns the exit code."""
        self.process.kill()
        return self.wait(10)

    def _join_readers(self):
        for reader in self._readers:
            reader.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.stop()

    # -- output ----------------------------------------------------------------

    def output(self):
        """Every line the handler wrote so far, as (stream, line), in order."""
        with self._output_changed:
            return list(self._output)

    def stdout_lines(self):
        return [line for stream, line in self.output() if stream == "stdout"]

    def stderr_lines(self):
        return [line for stream, line in self.output() if stream == "stderr"]

    def record_lines(self):
        """The stdout lines that are JSON objects (the records), parsed."""
        return [r for r in map(parse_record, self.stdout_lines()) if r is not None]

    def wait_for(self, condition, timeout=5.0, what="the handler's output"):
        """Re-checks `condition()` as output arrives; returns its first true
        value, or raises TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._output_changed:
            while not (value := condition()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout} s for {what}")
                self._output_changed.wait(left)
        return value

    def wait_for_records(self, count, timeout=5.0):
        """The record lines once there are at least `count`."""
        return self.wait_for(lambda: len(r := self.record_lines()) >= count and r,
                             timeout, f"{count} record lines")

    # -- HTTP ------------------------------------------------------------------

    def _checkout(self, timeout):
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _checkin(self, conn):
        with self._idle_lock:
            self._idle.append(conn)

    def _close_connections(self):
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(self, method, path, body=None, *, headers=None, framing="length",
                timeout=30.0):
        """One HTTP exchange on a pooled keep-alive connection, unchecked.

        `framing` "chunked" sends `body` with Transfer-Encoding: chunked. A
        request that fails on a reused connection before any answer is sent once
        more on a new one, as .NET's HttpClient does."""
        for attempt in (1, 2):
            conn = self._checkout(timeout)
            reused = conn.sock is not None
            try:
                answer = self._exchange(conn, method, path, body, headers or {}, framing)
            except BaseException as error:
                conn.close()
                if not (isinstance(error, ConnectionError) and reused and attempt == 1):
                    raise
            else:
                self._checkin(conn)
                return answer

    @staticmethod
    def _exchange(conn, method, path, body, headers, framing):
        if framing == "chunked" and body is not None:
            payload = (body[i:i + CHUNK_SIZE] for i in range(0, len(body), CHUNK_SIZE))
        else:
            payload = body
        try:
            conn.request(method, path, body=payload, headers=headers)
        except ConnectionError:
            if conn.sock is None:
                raise
            # The handler may have answered before reading the body (413): read on.
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Answer(status=response.status,
                      headers={k.lower(): v for k, v in response.getheaders()},
                      raw=raw, body=parsed,
                      invocation_id=headers.get("X-Azure-Functions-InvocationId"))

    def invoke(self, function_name, event, *, encoding="object", framing="length",
               invocation_id=None, retry_context=None, timeout=30.0):
        """Invokes a function with one event as the host does; returns the Answer.

        Raises ProtocolError when the answer is not one the host can read, and
        OSError or http.client.HTTPException when there is no answer."""
        binding = self.app.functions.get(function_name)
        if binding is None:
            raise ValueError(f"{function_name} is not a function with an eventGridTrigger")
        body = invocation_body(function_name, binding, event, encoding, retry_context)
        answer = self.request(
            "POST", f"/{function_name}", json.dumps(body).encode(),
            headers=invocation_headers(invocation_id or str(uuid.uuid4())),
            framing=framing, timeout=timeout)
        check_answer(answer)
        return answer

    def invoke_timer(self, function_name, *, past_due=False, timeout=60.0):
        """Invokes a timerTrigger function as the host does on its schedule."""
        binding = self.app.timers.get(function_name)
        if binding is None:
            raise ValueError(f"{function_name} is not a function with a timerTrigger")
        body = timer_body(function_name, binding, past_due)
        answer = self.request(
            "POST", f"/{function_name}", json.dumps(body).encode(),
            headers=invocation_headers(str(uuid.uuid4())), timeout=timeout)
        check_answer(answer)
        return answer

    # -- Event Grid ------------------------------------------------------------

    def _only_function(self):
        names = [n for n, binding in self.app.functions.items() if binding]
        if len(names) != 1:
            raise ValueError(f"name the function: the app has {names}")
        return names[0]

    def deliver(self, events, concurrency=16, function_name=None, **invoke_options):
        """Delivers one batch as the Event Grid extension does: an invocation per
        event, run in parallel; 202 if all succeeded, else 500."""
        function_name = function_name or self._only_function()

        def run(event):
            try:
                return self.invoke(function_name, event, **invoke_options)
            except (OSError, http.client.HTTPException, ProtocolError) as error:
                return error

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            results = list(pool.map(run, events))
        return Delivery(202 if all(map(succeeded, results)) else 500, results)

    def deliver_until_accepted(self, events, *, max_attempts=3, batch_size=None,
                               time_scale=0.001, **deliver_options):
        """Delivers events as Event Grid does, redelivering failed batches.

        Events go in batches of `batch_size` (None: all in one); a batch answered
        500 is delivered again, whole, after Event Grid's retry delay times
        `time_scale`, up to `max_attempts` deliveries. Returns an EventOutcome per
        event, in order."""
        events = list(events)
        size = batch_size or max(1, len(events))
        outcomes = []
        for start in range(0, len(events), size):
            batch = events[start:start + size]
            batch_outcomes = [EventOutcome(e.get("id"), False) for e in batch]
            for attempt in range(max_attempts):
                if attempt:
                    delay = EVENT_GRID_RETRY_SCHEDULE[
                        min(attempt - 1, len(EVENT_GRID_RETRY_SCHEDULE) - 1)]
                    time.sleep(delay * time_scale)
                delivery = self.deliver(batch, **deliver_options)
                for outcome, result in zip(batch_outcomes, delivery.results):
                    outcome.results.append(result)
                if delivery.status == 202:
                    for outcome in batch_outcomes:
                        outcome.accepted = True
                    break
            outcomes += batch_outcomes
        return outcomes


def parse_record(line):
    """The JSON object on a stdout line, or None for a log line."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- CLI -----------------------------------------------------------------------


def _load_events(paths):
    events = []
    for path in paths:
        value = _read_json(path)
        events += value if isinstance(value, list) else [value]
    return events


def _setting(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not K=V")
    return name, value


def _describe(result):
    if isinstance(result, Answer):
        return f"{result.status} {result.raw[:300].decode('utf-8', 'replace')}"
    return f"{type(result).__name__}: {result}"


def _format_record(record):
    """A record line as a block a person can read: the name, then key  value
    lines, then an empty line."""
    lines = [record.get("name", "(unnamed record)")]
    fields = {}
    for section, values in record.items():
        if isinstance(values, dict):
            prefix = "" if section == "record" else f"{section}."
            fields.update({prefix + k: v for k, v in values.items()})
    width = max(map(len, fields), default=0)
    lines += [f"  {k:<{width}}  {v if isinstance(v, str) else json.dumps(v)}"
              for k, v in fields.items()]
    return "\n".join(lines + [""])


def _summary(outcomes, exit_code):
    answers = collections.Counter(
        str(r.status) if isinstance(r, Answer) else type(r).__name__
        for outcome in outcomes for r in outcome.results)
    accepted = sum(o.accepted for o in outcomes)
    return (f"summary: {len(outcomes)} events delivered, "
            f"{sum(o.attempts for o in outcomes)} invocations, answers "
            + (", ".join(f"{status}x{n}" for status, n in sorted(answers.items())) or "none")
            + f"; {accepted}/{len(outcomes)} accepted; handler exit code {exit_code}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Start a custom handler the way the Azure Functions host does, "
                    "deliver Event Grid events to it and print what it writes.")
    parser.add_argument("--app-root", default=".", help="the Function App folder (host.json)")
    parser.add_argument("--executable", help="run this instead of host.json's executable")
    parser.add_argument("--setting", action="append", default=[], metavar="K=V",
                        type=_setting,
                        help="an app setting (wins over local.settings.json)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="invocations of a batch run at once (the host runs all "
                             "in parallel; 1 keeps the output in event order)")
    parser.add_argument("--inherit-env", action="store_true",
                        help="pass this shell's whole environment, as func start does")
    parser.add_argument("events", nargs="+", metavar="EVENTS.json",
                        help="a file holding one Event Grid event or an array")
    args = parser.parse_args(argv)
    events = _load_events(args.events)

    host = HostEmulator(args.app_root, executable=args.executable, env=dict(args.setting),
                        inherit_env=args.inherit_env)
    try:
        host.start()
    except HandlerStartError as error:
        print(f"host_emulator: {error}", file=sys.stderr)
        return 1
    try:
        outcomes = host.deliver_until_accepted(events, concurrency=args.concurrency)
    finally:
        exit_code = host.stop()
    for stream, line in host.output():
        record = parse_record(line) if stream == "stdout" else None
        out = sys.stdout if stream == "stdout" else sys.stderr
        print(_format_record(record) if record else line, file=out, flush=True)
    failures = [r for o in outcomes for r in o.results if not succeeded(r)]
    for failure in failures:
        print(f"host_emulator: invocation failed: {_describe(failure)}", file=sys.stderr)
    print(_summary(outcomes, exit_code), flush=True)
    return 0 if exit_code == 0 and not failures and all(o.accepted for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
