"""End-to-end tests of the handler executable under the Functions host emulator.

They run the real executable (env HANDLER_BIN, default build/handler) the way
the Azure Functions host does and check the custom-handler contract: readiness,
invocation answers, the record lines on stdout, the 4xx answers, invocation ids
in the logs, graceful SIGTERM, start-up without a port, and the sample pipeline
delivered as Event Grid does. The app root is a temporary copy of the repo's
host.json and function folders, so a developer's local.settings.json cannot
change the results. Skipped when the executable has not been built.
"""

import copy
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import unittest
import uuid
from pathlib import Path

from tests.e2e.support import make_app_root
from tests.e2e.host_emulator import (
    HostEmulator,
    check_answer,
    invocation_body,
    invocation_headers,
    resolve_schedule,
    load_app,
    parse_record,
)

REPO = Path(os.environ.get("REPO_DIR") or Path(__file__).resolve().parents[2])
HANDLER_BIN = Path(os.environ.get("HANDLER_BIN") or REPO / "build" / "handler")
SAMPLE = json.loads((REPO / "tests" / "data" / "sample_pipeline.json").read_text())
FUNCTION = "function_app"
MAX_BODY = 8 * 1024 * 1024
SUBSCRIPTION = "6f3a1b2c-0000-4000-8000-000000000001"
NEEDS_HANDLER = unittest.skipUnless(
    os.access(HANDLER_BIN, os.X_OK),
    f"no handler executable at {HANDLER_BIN}: build it first (scripts/build)")


def start_handler(root):
    return HostEmulator(root, executable=HANDLER_BIN).start()


def stop_and_check(host):
    """Stops a handler and fails unless it exited 0 (under valgrind, 99 means
    memcheck found an error or a definitely lost block)."""
    code = host.stop()
    if code != 0:
        tail = "\n".join(host.stderr_lines()[-20:])
        raise AssertionError(f"the handler exited with {code}; stderr ends:\n{tail}")


def fresh_event(index=8):
    """A copy of a sample event (default: the failed `evaluate` step) with a new id."""
    event = copy.deepcopy(SAMPLE[index])
    event["id"] = str(uuid.uuid4())
    return event


def blob_created_event():
    account = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/data-rg/providers/" \
              "Microsoft.Storage/storageAccounts/mldata"
    return {
        "id": str(uuid.uuid4()),
        "topic": account,
        "subject": "/blobServices/default/containers/raw/blobs/2024/05/14/batch.csv",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2024-05-14T09:29:58.4210000Z",
        "data": {
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": "0x8DC73F0A2B1C4D5",
            "contentType": "text/csv",
            "contentLength": 524288,
            "blobType": "BlockBlob",
            "url": "https://mldata.blob.core.windows.net/raw/2024/05/14/batch.csv",
            "sequencer": "00000000000000000000000000005C2F0000000000001a2b",
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }


def records_of(host, event_id):
    return [r for r in host.record_lines()
            if r.get("record", {}).get("event_id") == event_id]


def expected_record(event):
    """The record fields docs/records.md promises for a run event of the sample."""
    data = event["data"]
    tags, props = data["runTags"], data["runProperties"]
    expected = {
        "event_id": event["id"],
        "event_time": event["eventTime"],
        "subscriptions": SUBSCRIPTION,
        "resourceGroup": "ml-rg",
        "amlWorkSpace": "ml-ws",
        "experimentId": data["experimentId"],
        "experimentName": data["experimentName"],
        "run_id": data["runId"],
        "run_type": data["runType"],
        "status": data.get("runStatus", "Completed"),
    }
    if data["runType"] == "azureml.StepRun":
        expected.update({
            "pipelinerunid": tags["azureml.pipelinerunid"],
            "parent_run_id": tags["azureml.pipelinerunid"],
            "node_id": tags["azureml.nodeid"],
            "step_type": props["StepType"],
            "compute_target_type": props["_azureml.ComputeTargetType"],
            "snapshot_id": props["ContentSnapshotId"],
        })
    return expected


@NEEDS_HANDLER
class InvocationTest(unittest.TestCase):
    """One handler serves every test of this class, as the host keeps one."""

    @classmethod
    def setUpClass(cls):
        cls.root = make_app_root()
        cls.addClassCleanup(shutil.rmtree, cls.root)
        cls.host = start_handler(cls.root)
        cls.addClassCleanup(stop_and_check, cls.host)

    def wait_for_record(self, event_id):
        return self.host.wait_for(lambda: records_of(self.host, event_id),
                                  what=f"the record of event {event_id}")

    def assert_recorded(self, event, answer):
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.body["Outputs"], {})
        self.assertIsNone(answer.body["ReturnValue"])
        [line] = self.wait_for_record(event["id"])
        short_type = event["eventType"].rsplit(".", 1)[1]
        self.assertEqual(line["name"], "Aml" + short_type)
        self.assert_fields(line["record"], expected_record(event))

    def assert_fields(self, record, expected):
        self.assertEqual({key: record.get(key) for key in expected}, expected)

    def post(self, path, body, invocation_id=None, **options):
        headers = invocation_headers(invocation_id or str(uuid.uuid4()))
        return self.host.request("POST", path, body, headers=headers, **options)

    def test_ready_answer_is_a_json_object(self):
        answer = self.host.request("GET", "/")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.headers["content-type"].split(";")[0], "application/json")
        self.assertIsInstance(answer.body, dict)

    def test_aml_event_is_recorded(self):
        event = fresh_event()
        self.assert_recorded(event, self.host.invoke(FUNCTION, event))

    def test_encodings_and_framings(self):
        for encoding, framing in (("string", "length"), ("double", "length"),
                                  ("object", "chunked"), ("double", "chunked")):
            with self.subTest(encoding=encoding, framing=framing):
                event = fresh_event()
                answer = self.host.invoke(FUNCTION, event, encoding=encoding,
                                          framing=framing)
                self.assert_recorded(event, answer)

    def test_64_concurrent_invocations(self):
        events = [fresh_event(i % len(SAMPLE)) for i in range(64)]
        delivery = self.host.deliver(events, concurrency=64)
        self.assertEqual([getattr(r, "status", r) for r in delivery.results], [200] * 64)
        ids = {e["id"] for e in events}
        self.host.wait_for(
            lambda: ids <= {r.get("record", {}).get("event_id")
                            for r in self.host.record_lines()},
            what="64 records")
        for event in events:
            self.assertEqual(len(records_of(self.host, event["id"])), 1, event["id"])

    def test_foreign_event_is_recorded_as_rejected(self):
        event = blob_created_event()
        answer = self.host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 200)
        [line] = self.host.wait_for(
            lambda: [r for r in self.host.record_lines()
                     if r.get("name") == "AmlEventRejected"
                     and event["id"] in str(r.get("record", {}).get("raw_event"))],
            what="the AmlEventRejected record")
        self.assertIsInstance(line["record"]["reason"], str)
        self.assertTrue(line["record"]["reason"])
        self.assertIsInstance(line["record"]["raw_event"], str)

    def test_body_that_is_not_an_invocation_is_400(self):
        for body in (b"this is not json", b'{"Metadata": {}}', b'{"Data": "text"}',
                     b"[1, 2]", b""):
            with self.subTest(body=body):
                answer = self.post(f"/{FUNCTION}", body)
                self.assertEqual(answer.status, 400)
                check_answer(answer)
                self.assertIn("error", answer.body)

    def test_unknown_path_is_404(self):
        answer = self.post("/no_such_function", b"{}")
        self.assertEqual(answer.status, 404)
        check_answer(answer)

    def test_get_on_function_is_405(self):
        answer = self.host.request("GET", f"/{FUNCTION}")
        self.assertEqual(answer.status, 405)
        check_answer(answer)

    def test_body_over_8_mib_is_413(self):
        body = json.dumps({"Data": {"event": "x" * MAX_BODY}}).encode()
        for framing in ("length", "chunked"):
            with self.subTest(framing=framing):
                answer = self.post(f"/{FUNCTION}", body, framing=framing)
                self.assertEqual(answer.status, 413)
                check_answer(answer)

    def test_log_lines_carry_the_invocation_id(self):
        binding = load_app(self.root).functions[FUNCTION]
        aml, foreign = fresh_event(), blob_created_event()
        cases = {
            "recorded": (aml["id"], invocation_body(FUNCTION, binding, aml)),
            "rejected": (foreign["id"], invocation_body(FUNCTION, binding, foreign)),
            "invalid": (None, {"Metadata": {}}),
        }
        for case, (event_id, body) in cases.items():
            with self.subTest(case=case):
                invocation_id = str(uuid.uuid4())
                self.post(f"/{FUNCTION}", json.dumps(body).encode(), invocation_id)
                tagged = re.compile(rf"(^| )invocation_id={invocation_id}( |$)")
                self.host.wait_for(
                    lambda: any(tagged.search(line) for line in self.log_lines()),
                    what=f"a log line with invocation_id={invocation_id}")
                mentions = [line for line in self.log_lines()
                            if invocation_id in line or (event_id and event_id in line)]
                for line in mentions:
                    self.assertRegex(line, tagged)

    def log_lines(self):
        return [line for _, line in self.host.output() if parse_record(line) is None]

    def test_sample_pipeline_is_accepted_with_one_record_per_event(self):
        delivery = self.host.deliver(SAMPLE, concurrency=len(SAMPLE))
        self.assertEqual(delivery.status, 202)
        for event in SAMPLE:
            with self.subTest(event=event["id"]):
                self.wait_for_record(event["id"])
                [line] = records_of(self.host, event["id"])
                self.assert_fields(line["record"], expected_record(event))


@NEEDS_HANDLER
class LifecycleTest(unittest.TestCase):
    """Start-up and shutdown, each test with its own handler process."""

    def setUp(self):
        self.root = make_app_root()
        self.addCleanup(shutil.rmtree, self.root)

    def test_function_app_files_name_the_handler(self):
        app = load_app(REPO)
        self.assertEqual(app.executable, REPO / "build" / "handler")
        self.assertEqual(app.functions, {FUNCTION: "event", "workspace_watch": None})
        timer = app.timers["workspace_watch"]
        self.assertEqual(timer["name"], "timer")
        self.assertEqual(timer["schedule"], "%HANDLER_WATCH_SCHEDULE%")
        # The schedule is an app setting the host resolves (changeable without a
        # rebuild); the example settings carry the default, every 5 minutes.
        example = json.loads((REPO / "local.settings.json.example").read_text())["Values"]
        self.assertEqual(resolve_schedule(timer, example), "0 */5 * * * *")

    def test_sigterm_when_idle_exits_0(self):
        host = start_handler(self.root)
        self.assertEqual(host.stop(), 0)

    def test_first_log_line_says_how_long_start_up_took(self):
        # The host gives a custom handler 30 s to listen (Flex Consumption cannot
        # change it): the first line says how long it took, since exec and main().
        # A credential makes start-up log lines of its own: they come after it.
        host = HostEmulator(self.root, executable=HANDLER_BIN, env={
            "AZURE_TENANT_ID": str(uuid.uuid4()), "AZURE_CLIENT_ID": str(uuid.uuid4()),
            "AZURE_CLIENT_SECRET": "not-a-real-secret", "HANDLER_LOG_LEVEL": "debug"}).start()
        self.addCleanup(host.stop)
        lines = host.wait_for(
            lambda: (lambda ls: ls if any("aml_client_ready" in l for l in ls) else None)(
                [l for l in host.stdout_lines() if "event=" in l]),
            what="the start-up log lines")
        first = lines[0]
        self.assertIn("event=listening", first)
        fields = dict(re.findall(r"(\w+)=(\S+)", first))
        startup, main = float(fields["startup_ms"]), float(fields["main_ms"])
        self.assertGreaterEqual(startup, main)
        self.assertGreater(main, 0.0)
        self.assertLess(startup, 30000.0)
        self.assertIn("credential=\"client secret\"", first)
        self.assertTrue(any("event=aml_client_ready" in l for l in lines[1:]))

    def test_sigterm_answers_in_flight_invocations_then_exits_0(self):
        host = start_handler(self.root)
        self.addCleanup(host.stop)
        event = fresh_event()
        body = json.dumps(invocation_body(FUNCTION, "event", event)).encode()
        conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
        self.addCleanup(conn.close)
        conn.putrequest("POST", f"/{FUNCTION}")
        for name, value in invocation_headers(str(uuid.uuid4())).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body[:100])
        time.sleep(0.2)  # the handler has taken the headers in: in flight
        host.terminate()
        time.sleep(0.2)
        self.assertIsNone(host.process.poll(), "exited with an invocation in flight")
        conn.send(body[100:])
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        self.assertIn("Outputs", json.loads(response.read()))
        self.assertEqual(host.wait(10), 0)
        self.assertEqual(len(records_of(host, event["id"])), 1)

    def test_start_without_a_port_setting_fails_with_one_line(self):
        env = {"PATH": os.environ.get("PATH", ""), "FUNCTIONS_APP_ROOT_PATH": str(self.root)}
        result = subprocess.run([HANDLER_BIN], env=env, cwd=self.root, timeout=10,
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertNotEqual(result.returncode, 0)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("FUNCTIONS_CUSTOMHANDLER_PORT", lines[0])

    def test_a_client_id_no_credential_can_use_stops_start_up_with_one_line(self):
        # Issue 11 item 7: AZURE_CLIENT_ID without tenant and secret (or
        # certificate, or token file) and without a managed identity.
        env = {"PATH": os.environ.get("PATH", ""), "FUNCTIONS_APP_ROOT_PATH": str(self.root),
               "FUNCTIONS_CUSTOMHANDLER_PORT": "1",
               "AZURE_CLIENT_ID": "00000000-1111-2222-3333-444444444444"}
        result = subprocess.run([HANDLER_BIN], env=env, cwd=self.root, timeout=10,
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertNotEqual(result.returncode, 0)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("AZURE_CLIENT_ID", lines[0])
        self.assertIn("no credential can use it", lines[0])


if __name__ == "__main__":
    unittest.main()
