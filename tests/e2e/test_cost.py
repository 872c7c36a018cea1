"""End-to-end tests of issue 14: the cost estimate of finished runs and pipelines.

The real executable runs under the Functions host emulator against the HTTPS
stand-ins: ARM answers the workspace and its compute targets (the fixtures'
"computes"), run history the runs and the pipeline's step list, and the Retail
Prices stand-in (tests/standins/prices.py) the price pages, where Windows,
Spot, Low Priority, DevTest, reservation, secondary-region and older meters
surround the one Linux pay-as-you-go price, on the last page. Expectations come
from the fixtures and the stand-in's price sheet, never from the handler.

Covered: the sample pipeline in App Insights: each step's dependency and event
carry vm_size, vm_priority, node_count, the hourly price and price x nodes x
hours; the pipeline's request carries the sum over its steps; AmlRunCostUsd
points for the steps (not the pipeline); one compute read and one price lookup
(its pages) for the whole pipeline, no token sent to the prices API. The prices
API down: records go out without cost, with the reason, and the invocation
succeeds. A price that arrives after the invocation stopped waiting serves the
next runs without a new lookup. HANDLER_COST=off: no cost keys, no compute or
price requests.
"""

import time
import unittest

from tests.e2e.support import (
    NEEDS_HANDLER,
    BenchTestCase,
    expected_from_run,
    fresh_copy,
)
from tests.e2e.host_emulator import HandlerStartError, succeeded
from tests.standins.faults import Fault

PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"
STEPS = ("3e387505-7222-4a23-a1ff-15572a7db2c7", "b5fb4970-c5e1-48a7-ac98-8d4f951669ef",
         "907918cc-bca5-4cc9-8e33-b44feeff4d62")
TRAIN = STEPS[1]
# The stand-in's Consumption meters of one size (Windows, Spot, Windows Low
# Priority, secondary region, older price, Low Priority, Linux), four a page.
PAGES = 2
COST_KEYS = ("vm_size", "vm_priority", "node_count", "cost_price_per_hour_usd",
             "cost_estimate_usd")


def describe(result):
    if hasattr(result, "status"):
        return f"{result.status} {result.raw[:300]!r}"
    return repr(result)


class CostTestCase(BenchTestCase):
    def price(self):
        return self.stack.prices.service.linux_price("eastus", "Standard_DS3_v2")

    def expected_cost(self, run_id):
        hours = expected_from_run(self.bench.runs[run_id])["execution_time_ms"] / 3600000
        return self.price() * 1 * hours

    def assert_delivered(self, delivery):
        self.assertEqual(delivery.status, 202,
                         "; ".join(describe(r) for r in delivery.results if not succeeded(r)))

    def terminal_event(self, run_id):
        for event in self.bench.events:
            if (event["data"]["runId"] == run_id
                    and event["eventType"].endswith(".RunStatusChanged")
                    and event["data"].get("runStatus") in ("Completed", "Failed")):
                return fresh_copy(event)
        raise LookupError(f"no terminal event of {run_id}")

    def record_of(self, host, event):
        host.wait_for(lambda: any(r.get("record", {}).get("event_id") == event["id"]
                                  for r in host.record_lines()), 15, "the record")
        return next(r["record"] for r in host.record_lines()
                    if r.get("record", {}).get("event_id") == event["id"])


@NEEDS_HANDLER
class PipelineCostTest(CostTestCase):
    """The sample pipeline once, exported to the ingestion stand-in."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bench.clear_journals()
        cls.host = cls.bench.handler("secret", appinsights=True)
        cls.delivery = cls.host.deliver(cls.bench.events)
        cls.exit_code = cls.host.stop()
        cls.service = cls.stack.ingestion.service

    def setUp(self):
        pass  # the class's delivery is what every test reads

    def test_delivered(self):
        self.assert_delivered(self.delivery)
        self.assertEqual(self.exit_code, 0)

    def test_steps_dependencies_carry_their_cost(self):
        deps = self.service.items(base_type="RemoteDependencyData")
        self.assertEqual({d.properties["cicd.pipeline.task.run.id"] for d in deps},
                         set(STEPS))
        for dep in deps:
            run_id = dep.properties["cicd.pipeline.task.run.id"]
            with self.subTest(step=run_id):
                props = dep.properties
                self.assertEqual(props["vm_size"], "STANDARD_DS3_V2")
                self.assertEqual(props["vm_priority"], "Dedicated")
                self.assertEqual(float(props["node_count"]), 1)
                self.assertEqual(float(props["cost_price_per_hour_usd"]), self.price())
                self.assertAlmostEqual(float(props["cost_estimate_usd"]),
                                       self.expected_cost(run_id), places=6)
                self.assertAlmostEqual(dep.base_data["measurements"]["cost_estimate_usd"],
                                       self.expected_cost(run_id), places=9)
                self.assertNotIn("cost_unknown_reason", props)

    def test_pipeline_request_carries_the_sum_of_its_steps(self):
        requests = self.service.items(base_type="RequestData")
        self.assertEqual(len(requests), 1)
        props = requests[0].properties
        total = sum(self.expected_cost(s) for s in STEPS)
        self.assertAlmostEqual(float(props["cost_estimate_usd"]), total, places=6)
        self.assertAlmostEqual(requests[0].base_data["measurements"]["cost_estimate_usd"],
                               total, places=9)
        self.assertNotIn("vm_size", props)  # a pipeline has no one VM size

    def test_cost_metric_for_each_step_not_the_pipeline(self):
        points = [i for i in self.service.items(base_type="MetricData")
                  if i.base_data["metrics"][0]["name"] == "AmlRunCostUsd"]
        self.assertEqual(len(points), len(STEPS))
        values = sorted(p.base_data["metrics"][0]["value"] for p in points)
        expected = sorted(self.expected_cost(s) for s in STEPS)
        for value, want in zip(values, expected):
            self.assertAlmostEqual(value, want, places=9)
        for point in points:
            self.assertEqual(set(point.properties) & {"experiment", "compute_target",
                                                     "status"},
                             {"experiment", "compute_target", "status"})
            self.assertEqual(point.properties["compute_target"], "cpu-cluster")

    def test_one_compute_read_and_one_price_lookup(self):
        self.assertEqual(len(self.stack.arm.journal.exchanges("compute")), 1)
        pages = self.stack.prices.journal.exchanges("prices")
        self.assertEqual(len(pages), PAGES)  # one lookup, every page once
        for page in pages:
            self.assertIsNone(page.header("Authorization"))
        # Two terminal events of the pipeline (RunStatusChanged and RunCompleted,
        # delivered together) share one read of its one-page step list.
        self.assertEqual(len(self.stack.aml.journal.exchanges("children")), 1)


@NEEDS_HANDLER
class PricesUnavailableTest(CostTestCase):
    appinsights = False

    def test_prices_down_leaves_cost_out_and_the_invocation_succeeds(self):
        self.stack.prices.faults.add("prices", Fault.error(503), times=100)
        host = self.handler("secret", HANDLER_INVOCATION_BUDGET_MS=20000)
        event = self.terminal_event(TRAIN)
        self.assert_delivered(host.deliver([event]))
        record = self.record_of(host, event)
        self.assertEqual(record.get("enrichment"), "ok")
        for key in COST_KEYS:
            self.assertNotIn(key, record)
        self.assertIn("the prices API answered HTTP 503", record["cost_unknown_reason"])

    def test_a_late_price_serves_the_next_runs(self):
        # The first page takes longer than an invocation waits (5 s at most).
        self.stack.prices.faults.add("prices", Fault.slow(7))
        host = self.handler("secret")
        first = self.terminal_event(TRAIN)
        self.assert_delivered(host.deliver([first]))
        record = self.record_of(host, first)
        self.assertIn("still being looked up", record["cost_unknown_reason"])
        host.wait_for(lambda: len(self.stack.prices.journal.exchanges("prices")) == PAGES, 15,
                      "the lookup to finish")
        time.sleep(0.2)
        second = self.terminal_event(STEPS[0])
        self.assert_delivered(host.deliver([second]))
        record = self.record_of(host, second)
        self.assertAlmostEqual(float(record["cost_estimate_usd"]),
                               self.expected_cost(STEPS[0]), places=6)
        self.assertEqual(len(self.stack.prices.journal.exchanges("prices")), PAGES)

    def test_cost_off(self):
        host = self.handler("secret", HANDLER_COST="off")
        event = self.terminal_event(TRAIN)
        self.assert_delivered(host.deliver([event]))
        record = self.record_of(host, event)
        self.assertEqual(record.get("enrichment"), "ok")
        for key in COST_KEYS + ("cost_unknown_reason",):
            self.assertNotIn(key, record)
        self.assertEqual(self.stack.arm.journal.exchanges("compute"), [])
        self.assertEqual(self.stack.prices.journal.stats()["requests"], 0)

    def test_bad_cost_setting_stops_start_up(self):
        with self.assertRaises(HandlerStartError) as caught:
            self.bench.handler("secret", appinsights=False, HANDLER_COST="maybe")
        self.assertIn("setting=HANDLER_COST", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
