"""End-to-end tests of issue 11: faithful to what Azure really sends and accepts.

The real executable runs under the Functions host emulator against the
stand-ins; the ingestion stand-in refuses, per item, what the service refuses
(items timed more than 48 hours ago, with the service's message; bearer tokens
for another audience).

Covered: a pipeline that ran three days ago still has its request, its
dependencies and its events (moved to the oldest accepted time, marked
`timestamp_adjusted`, true times and durations kept); a connection string's
`AADAudience` (Azure Government) makes the ingestion token one for that
audience, which the sovereign ingestion accepts; a managed identity endpoint
that keeps handing out its cached token with seconds left fails no invocation;
run tags and properties reach App Insights (the event's, completed by the Run
document's from the REST read), numbers with every digit.
"""

import json
import time
import unittest

from tests.e2e.support import (
    FUNCTION,
    NEEDS_HANDLER,
    REPO,
    BenchTestCase,
    duration_ms,
    expected_from_run,
    fresh_copy,
    iso_ms,
)
from tests.standins.directory import ARM, MONITOR, MONITOR_US

PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"
STEPS = ("3e387505-7222-4a23-a1ff-15572a7db2c7", "b5fb4970-c5e1-48a7-ac98-8d4f951669ef",
         "907918cc-bca5-4cc9-8e33-b44feeff4d62")
THREE_DAYS_S = 3 * 86400
HOUR_MS = 3600 * 1000


@NEEDS_HANDLER
class OldRunTest(BenchTestCase):
    """The sample pipeline, its events and runs moved three days into the past."""

    bench_options = {"lag_seconds": THREE_DAYS_S}

    def test_a_run_older_than_48_hours_keeps_every_item(self):
        host = self.handler("secret")
        delivery = host.deliver(self.bench.events)
        self.assertEqual(delivery.status, 202)
        service = self.stack.ingestion.service
        refused = [e for p in service.posts() for e in p.errors]
        self.assertEqual(refused, [], "the ingestion stand-in refused items")

        requests = service.items(base_type="RequestData")
        self.assertEqual(len(requests), 1, "the pipeline run has no request")
        dependencies = service.items(base_type="RemoteDependencyData")
        self.assertEqual({d.properties.get("cicd.pipeline.task.run.id")
                          for d in dependencies}, set(STEPS))
        events = service.items(base_type="EventData")
        self.assertEqual(len(events), len(self.bench.events))

        for item in requests + dependencies:
            run_id = item.properties.get("cicd.pipeline.task.run.id") or PIPELINE
            expected = expected_from_run(self.bench.runs[run_id])
            with self.subTest(run=run_id):
                self.assertEqual(item.properties.get("timestamp_adjusted"), "true")
                # The true times stay in the record keys, the duration is true.
                self.assertEqual(float(item.properties["start_time_utc_ms"]),
                                 expected["start_time_utc_ms"])
                self.assertEqual(round(duration_ms(item.base_data["duration"])),
                                 expected["execution_time_ms"])
                moved = iso_ms(item.envelope["time"])
                self.assertGreater(moved, expected["start_time_utc_ms"] + 24 * HOUR_MS)
        for item in events:
            with self.subTest(event=item.properties.get("event_id")):
                self.assertEqual(item.properties.get("timestamp_adjusted"), "true")
                self.assertNotEqual(iso_ms(item.envelope["time"]),
                                    iso_ms(item.properties["event_time"]))


@NEEDS_HANDLER
class TagsAndPropertiesTest(BenchTestCase):
    """The sample pipeline's events against the stand-ins' runs."""

    def test_tags_and_properties_of_the_event_and_the_run_document(self):
        host = self.handler("secret")
        self.assertEqual(host.deliver(self.bench.events).status, 202)
        service = self.stack.ingestion.service
        for event in self.bench.events:
            with self.subTest(event=event["id"]):
                [item] = [i for i in service.items(base_type="EventData")
                          if i.properties.get("event_id") == event["id"]]
                props = item.properties
                run = self.bench.runs[event["data"]["runId"]]
                event_tags = event["data"].get("runTags") or {}
                # The event's tags win; the Run document's complete them.
                expected_tags = dict(run.get("tags") or {}, **event_tags)
                for name, value in expected_tags.items():
                    self.assertEqual(props.get(f"tag.{name}"), value, name)
                run_properties = json.loads(props["run_properties"])
                expected_props = dict(run.get("properties") or {},
                                      **(event["data"].get("runProperties") or {}))
                self.assertEqual(run_properties, expected_props)


DRIFT_SAMPLE = "published_sdk_eg_dataset_drift_detected"  # driftCoefficient 0.8350349068479208


@NEEDS_HANDLER
class NumbersOnStdoutTest(BenchTestCase):
    """Records on standard output (no connection string): numbers keep every
    digit in the record line and in a rejected event's raw_event."""

    appinsights = False

    def test_every_digit_in_the_line_and_the_raw_event(self):
        sample = json.loads((REPO / "tests" / "cases" / DRIFT_SAMPLE / "input.json").read_text())
        # The sample's workspace is not the watched one: rejected, raw event kept.
        foreign = dict(sample, id="foreign-drift")
        watched = dict(sample, id="watched-drift", topic=workspace_topic(self.stack))
        host = self.handler(None)
        self.assertEqual(host.deliver([foreign, watched]).status, 202)
        host.wait_for(lambda: len(host.record_lines()) >= 2, what="two record lines")
        lines = {r["record"]["event_id"]: line for line in host.stdout_lines()
                 if line.startswith("{")
                 for r in [json.loads(line)] if "record" in r}
        self.assertIn('"drift_coefficient":0.8350349068479208', lines["watched-drift"])
        self.assertIn('\\"driftCoefficient\\":0.8350349068479208', lines["foreign-drift"])


def workspace_topic(stack):
    w = stack.workspace
    return (f"/subscriptions/{w.subscription_id}/resourceGroups/{w.resource_group}/providers/"
            "Microsoft.MachineLearningServices/workspaces/" + w.name)


@NEEDS_HANDLER
class SovereignCloudTest(BenchTestCase):
    """An App Insights resource in Azure Government: Entra ID only, and only
    tokens for https://monitor.azure.us/ (a public-cloud token is a 401)."""

    def setUp(self):
        super().setUp()
        service = self.stack.ingestion.service
        service.entra_only, service.audiences = True, (MONITOR_US,)
        self.addCleanup(setattr, service, "audiences", (MONITOR,))
        self.addCleanup(setattr, service, "entra_only", False)

    def test_aad_audience_sets_the_ingestion_token_scope(self):
        connection = (f"InstrumentationKey={self.stack.instrumentation_key};"
                      f"IngestionEndpoint={self.stack.ingestion.base_url}/;"
                      f"AADAudience=https://monitor.azure.us/")
        host = self.handler("secret", ingestion_aad=True,
                            APPLICATIONINSIGHTS_CONNECTION_STRING=connection)
        event = fresh_copy(self.bench.events[0])
        self.assertEqual(host.deliver([event]).status, 202)
        service = self.stack.ingestion.service
        statuses = [p.status for p in service.posts()]
        self.assertEqual(statuses, [200], [p.errors for p in service.posts()])
        self.assertEqual(len(service.items(base_type="EventData")), 1)
        resources = {g.resource for g in self.stack.directory.grants(MONITOR_US)}
        self.assertEqual(resources, {"https://monitor.azure.us/"})


@NEEDS_HANDLER
class ShortLivedTokenTest(BenchTestCase):
    """The managed identity endpoint hands out its cached 20-second token again
    and again, until it has expired (as the platform's cache does)."""

    appinsights = False

    def setUp(self):
        super().setUp()
        msi = self.stack.msi.service
        msi.cache, msi.lifetime = True, 20
        self.addCleanup(setattr, msi, "lifetime", msi.lifetime)
        self.addCleanup(setattr, msi, "cache", False)

    def test_a_valid_token_close_to_expiry_fails_no_invocation(self):
        host = self.handler("managed_identity")
        deadline = time.time() + 24  # past the first token's expiry
        delivered = 0
        while time.time() < deadline:
            event = fresh_copy(self.bench.events[delivered % len(self.bench.events)])
            answer = host.invoke(FUNCTION, event)
            self.assertEqual(answer.status, 200, answer.raw)
            delivered += 1
            time.sleep(2)
        self.assertGreaterEqual(delivered, 10)
        grants = self.stack.directory.grants(ARM)
        self.assertGreaterEqual(len(grants), 2, "the token never expired during the test")
        for server in (self.stack.arm, self.stack.aml):
            self.assertEqual([e.status for e in server.journal.exchanges()
                              if e.status != 200], [],
                             "a request went out with an expired token")


if __name__ == "__main__":
    unittest.main()
