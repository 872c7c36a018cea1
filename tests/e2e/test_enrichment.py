"""End-to-end tests of issue 3: every run resolved through the AML REST API.

The real executable runs under the Functions host emulator against the HTTPS
stand-ins (tests/standins): Entra ID or the managed identity endpoint for the
token, ARM and AML discovery for the workspace, run history for the runs. No
App Insights connection string is set, so each record is one JSON line on
stdout. Expectations are computed from the stand-ins' fixture runs (time-shifted
with the sample events, support.py), never from the handler's output.

Covered: each credential kind gives complete records of the sample pipeline;
one token request and one discovery per workspace; a 50-step pipeline costs one
parent lookup; 429 + Retry-After and 503 are retried (the Retry-After honoured);
run history down past the invocation budget fails the invocation and the
redelivery is accepted; a run that does not exist (404) and a forbidden
workspace (403) are acknowledged with `enrichment` saying why, and so is a
credential Entra ID refuses (as aml_client.h documents: a configuration problem
redelivery cannot fix), with the reason in the log too; tokens are refreshed ahead of
expiry, once, not per event; no secret or token ever reaches stdout/stderr.
"""

import copy
import time
import unittest
import uuid

from tests.e2e.host_emulator import succeeded
from tests.e2e.support import (
    FUNCTION,
    NEEDS_HANDLER,
    BenchTestCase,
    budget_s,
    event_status,
    expected_from_run,
    expected_record,
    fresh_copy,
    last_metrics,
    leaked,
)
from tests.standins.directory import ARM, ROLE_WORKSPACE
from tests.standins.faults import Fault

PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"
PREP = "3e387505-7222-4a23-a1ff-15572a7db2c7"
CREDENTIAL_KINDS = ("secret", "certificate", "workload_identity", "managed_identity",
                    "user_managed_identity")
GRANT_KIND = {"secret": "client_secret", "certificate": "client_certificate",
              "workload_identity": "workload_identity",
              "managed_identity": "managed_identity",
              "user_managed_identity": "managed_identity"}
WRONG_SECRET = "Wr0ng~secret.value-that-must-not-leak"


def records_of(host, event_id):
    return [r for r in host.record_lines()
            if r.get("record", {}).get("event_id") == event_id]


def stop_and_check(test, host):
    code = host.stop()
    if code != 0:
        tail = "\n".join(host.stderr_lines()[-20:])
        test.fail(f"the handler exited with {code}; stderr ends:\n{tail}")


def run_requests(server, run_id):
    """The run-history requests (route "run") naming `run_id` in their path."""
    needle = f"/runs/{run_id}".lower()
    return [e for e in server.journal.exchanges("run")
            if needle in e.path.lower() and
            (e.path.lower().endswith(needle) or e.path.lower().endswith(needle + "/details"))]


def describe(result):
    if hasattr(result, "status"):
        return f"{result.status} {result.raw[:300]!r}"
    return repr(result)


class EnrichmentTestCase(BenchTestCase):
    appinsights = False

    def sample_event(self, run_id, status=None, event_type="RunStatusChanged"):
        """A fresh copy of the sample event of `run_id` with `status`."""
        for event in self.bench.events:
            if (event["data"]["runId"] == run_id
                    and event["eventType"].endswith("." + event_type)
                    and (status is None or event_status(event) == status)):
                return fresh_copy(event)
        raise LookupError(f"no {event_type} {status} event of run {run_id} in the sample")

    def assert_delivered(self, delivery):
        self.assertEqual(delivery.status, 202,
                         "; ".join(describe(r) for r in delivery.results if not succeeded(r)))

    def wait_for_records(self, host, events, timeout=10.0):
        """{event id: [record line]} once every event has its record."""
        ids = {e["id"] for e in events}
        host.wait_for(lambda: ids <= {r.get("record", {}).get("event_id")
                                      for r in host.record_lines()},
                      timeout, f"the records of {len(ids)} events")
        return {e["id"]: records_of(host, e["id"]) for e in events}

    def assert_complete(self, event, line):
        """The record of a sample event holds every field its run's details carry."""
        record = line["record"]
        short_type = event["eventType"].rsplit(".", 1)[1]
        self.assertEqual(line["name"], "Aml" + short_type)
        self.assertEqual(record.get("enrichment"), "ok", record)
        run = self.bench.runs[event["data"]["runId"]]
        expected = expected_record(self.bench.runs, event)
        self.assertEqual({k: record.get(k) for k in expected}, expected)
        # Metrics are read for records of completed runs (what the event said).
        if expected["status"] == "Completed" and last_metrics(run):
            self.assertEqual(line.get("metrics"), last_metrics(run))
        else:
            self.assertNotIn("metrics", line)


@NEEDS_HANDLER
class CredentialKindTest(EnrichmentTestCase):
    def test_sample_pipeline_gives_complete_records_with_each_credential_kind(self):
        stack = self.stack
        for kind in CREDENTIAL_KINDS:
            with self.subTest(credential=kind):
                self.bench.clear_journals()
                issued_before = len(stack.directory.grants())
                host = self.handler(kind)
                delivery = host.deliver(self.bench.events)
                self.assert_delivered(delivery)
                lines = self.wait_for_records(host, self.bench.events)
                for event in self.bench.events:
                    with self.subTest(event=event["id"]):
                        self.assertEqual(len(lines[event["id"]]), 1)
                        self.assert_complete(event, lines[event["id"]][0])

                # One token and one discovery serve the whole pipeline.
                token_route = (stack.msi, "msi") if "managed" in kind else (stack.entra,
                                                                             "token")
                other = stack.entra if "managed" in kind else stack.msi
                self.assertEqual(len(token_route[0].journal.exchanges(token_route[1])), 1)
                self.assertEqual(other.journal.stats()["requests"], 0)
                self.assertEqual(len(stack.arm.journal.exchanges("workspace")), 1)
                self.assertEqual(len(stack.aml.journal.exchanges("discovery")), 1)
                grants = stack.directory.grants()[issued_before:]
                self.assertEqual([(g.audience, g.kind) for g in grants],
                                 [(ARM, GRANT_KIND[kind])])
                if kind == "user_managed_identity":
                    self.assertEqual(grants[0].client_id, stack.user_identity)
                elif kind == "managed_identity":
                    self.assertEqual(grants[0].client_id, stack.directory.system_identity)
                else:
                    self.assertEqual(grants[0].client_id, stack.app.client_id)
                # No request was refused upstream.
                for server in (stack.arm, stack.aml):
                    self.assertEqual([e.status for e in server.journal.exchanges()
                                      if e.status != 200], [])

                stop_and_check(self, host)
                self.assertEqual(leaked(host, self.bench.secrets()), [])

    def test_50_step_pipeline_costs_one_parent_lookup(self):
        stack = self.stack
        workspace = stack.workspace
        template_run = self.bench.runs[PREP]
        template_event = self.sample_event(PREP, "Completed")
        events = []
        for _ in range(50):
            run = copy.deepcopy(template_run)
            run["runId"], run["runUuid"] = str(uuid.uuid4()), str(uuid.uuid4())
            stack.catalog.put_run(workspace, run)
            events.append(fresh_copy(template_event, runId=run["runId"]))
        host = self.handler("secret")
        self.assert_delivered(host.deliver(events))
        lines = self.wait_for_records(host, events)
        for event in events:
            [line] = lines[event["id"]]
            record = line["record"]
            self.assertEqual(record.get("enrichment"), "ok", record)
            self.assertEqual(record.get("run_id"), event["data"]["runId"])
            self.assertEqual(record.get("pipelinerunid"), PIPELINE)
            self.assertEqual(record.get("parent_run_id"), PIPELINE)
            self.assertEqual(record.get("execution_time_ms"),
                             expected_from_run(template_run)["execution_time_ms"])
        self.assertEqual(len(run_requests(stack.aml, PIPELINE)), 1,
                         [e.path for e in run_requests(stack.aml, PIPELINE)])
        for event in events:
            self.assertGreaterEqual(len(run_requests(stack.aml, event["data"]["runId"])), 1)
        self.assertEqual(len(stack.entra.journal.exchanges("token")), 1)
        self.assertEqual(len(stack.arm.journal.exchanges("workspace")), 1)
        self.assertEqual(len(stack.aml.journal.exchanges("discovery")), 1)
        stop_and_check(self, host)


@NEEDS_HANDLER
class FailureTest(EnrichmentTestCase):
    def pipeline_event(self):
        return self.sample_event(PIPELINE, "Failed")

    def test_429_with_retry_after_is_retried_after_the_delay(self):
        host = self.handler()
        self.stack.aml.faults.add("run", Fault.error(429, retry_after=2))
        event = self.pipeline_event()
        answer = host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 200, answer.raw)
        [line] = self.wait_for_records(host, [event])[event["id"]]
        self.assert_complete(event, line)
        attempts = run_requests(self.stack.aml, PIPELINE)
        self.assertGreaterEqual(len(attempts), 2)
        self.assertEqual((attempts[0].status, attempts[1].status), (429, 200))
        self.assertGreaterEqual(attempts[1].time - attempts[0].time, 2.0)

    def test_503_then_success(self):
        host = self.handler()
        self.stack.aml.faults.add("run", Fault.error(503))
        event = self.pipeline_event()
        answer = host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 200, answer.raw)
        [line] = self.wait_for_records(host, [event])[event["id"]]
        self.assert_complete(event, line)
        statuses = [e.status for e in run_requests(self.stack.aml, PIPELINE)]
        self.assertEqual(statuses[:2], [503, 200])

    def test_run_history_down_past_the_budget_fails_then_redelivery_is_accepted(self):
        budget = budget_s(2)
        host = self.handler(HANDLER_INVOCATION_BUDGET_MS=budget * 1000)
        self.stack.aml.faults.add("run", Fault.error(503), times=1000)
        event = self.pipeline_event()
        started = time.monotonic()
        answer = host.invoke(FUNCTION, event)
        elapsed = time.monotonic() - started
        self.assertEqual(answer.status, 500, answer.raw)
        self.assertLess(elapsed, budget + 3.0, f"the invocation overran its {budget} s budget")
        self.assertGreaterEqual(len(run_requests(self.stack.aml, PIPELINE)), 2,
                                "the 503 was not retried")
        self.assertEqual(records_of(host, event["id"]), [],
                         "a failed invocation wrote a record")

        self.stack.aml.faults.clear()
        [outcome] = host.deliver_until_accepted([event])
        self.assertTrue(outcome.accepted, [describe(r) for r in outcome.results])
        [line] = self.wait_for_records(host, [event])[event["id"]]
        self.assert_complete(event, line)

    def test_unknown_run_is_acknowledged_with_the_404(self):
        host = self.handler()
        event = fresh_copy(self.pipeline_event(), runId=str(uuid.uuid4()))
        answer = host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 200, answer.raw)
        [line] = self.wait_for_records(host, [event])[event["id"]]
        record = line["record"]
        self.assertNotEqual(record.get("enrichment"), "ok")
        self.assertIn("404", record.get("enrichment", ""))
        self.assertEqual(record.get("run_id"), event["data"]["runId"])
        self.assertEqual(record.get("status"), "Failed")  # what the event said
        self.assertNotIn("execution_time_ms", record)

    def test_forbidden_workspace_is_acknowledged_with_the_403(self):
        self.stack.directory.revoke(self.stack.user_identity, ROLE_WORKSPACE)
        host = self.handler("user_managed_identity")
        event = self.pipeline_event()
        answer = host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 200, answer.raw)
        [line] = self.wait_for_records(host, [event])[event["id"]]
        enrichment = line["record"].get("enrichment", "")
        self.assertNotEqual(enrichment, "ok")
        self.assertIn("403", enrichment)

    def test_refused_credential_fails_the_invocation_and_says_why(self):
        # Issue 3: a credential refused at run time is logged clearly (never the
        # secret) and fails the invocation, so Event Grid delivers the event again
        # once the credential is fixed; nothing is recorded without details.
        host = self.handler("secret", AZURE_CLIENT_SECRET=WRONG_SECRET)
        event = self.pipeline_event()
        answer = host.invoke(FUNCTION, event)
        self.assertEqual(answer.status, 500, answer.raw)
        self.assertEqual(answer.body["error"]["code"], "CredentialRefused")
        self.assertIn("AADSTS7000215", answer.body["error"]["message"])
        host.wait_for(
            lambda: [line for line in host.stderr_lines()
                     if "AADSTS7000215" in line and "AZURE_CLIENT_SECRET" in line],
            what="a log line with Entra ID's error code and the setting to check")
        self.assertEqual(records_of(host, event["id"]), [])
        self.assertEqual(self.stack.arm.journal.stats()["requests"], 0)
        stop_and_check(self, host)
        self.assertEqual(leaked(host, self.bench.secrets() + [("wrong", WRONG_SECRET)]), [])


@NEEDS_HANDLER
class TokenRefreshTest(EnrichmentTestCase):
    # 12 s tokens: the credential hands one out for 6 s (refreshed half-way).
    bench_options = {"token_lifetime": 12}

    def test_token_is_refreshed_once_ahead_of_expiry_not_per_event(self):
        stack = self.stack
        host = self.handler("secret")
        tokens = lambda: len(stack.entra.journal.exchanges("token"))  # noqa: E731
        waves = [[fresh_copy(e) for e in self.bench.events] for _ in range(4)]
        self.assert_delivered(host.deliver(waves[0]))
        self.assert_delivered(host.deliver(waves[1]))
        self.assertEqual(tokens(), 1)
        [first] = stack.directory.grants(ARM)
        time.sleep(max(0.0, first.issued_at + 7.0 - time.time()))
        self.assert_delivered(host.deliver(waves[2], concurrency=len(waves[2])))
        self.assertEqual(tokens(), 2)
        self.assert_delivered(host.deliver(waves[3]))
        self.assertEqual(tokens(), 2)
        second = stack.directory.grants(ARM)[1]
        self.assertGreater(second.issued_at, first.issued_at + 5.0)
        for server in (stack.arm, stack.aml):
            self.assertEqual([e.status for e in server.journal.exchanges() if e.status != 200],
                             [], "a request went out with an expired or unknown token")
        lines = self.wait_for_records(host, [e for wave in waves for e in wave])
        for wave in waves:
            for event in wave:
                self.assert_complete(event, lines[event["id"]][0])
        stop_and_check(self, host)
        self.assertEqual(leaked(host, self.bench.secrets()), [])


if __name__ == "__main__":
    unittest.main()
