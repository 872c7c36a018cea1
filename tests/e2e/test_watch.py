"""The workspace watch end to end: the real handler under the host emulator, the
run table in Azurite (Microsoft's Table storage emulator, never an imitation),
run history and ingestion from the stand-ins.

Runs are made old by their events' eventTime (a Queued event two hours ago),
never by sleeping. Entities are read back with a small Shared Key client
written here from Microsoft's "Authorize with Shared Key" page, independent of
the handler's own.
"""

import base64
import concurrent.futures
import datetime
import email.utils
import hashlib
import hmac
import json
import re
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from tests.e2e.azurite import DEV_ACCOUNT, DEV_KEY, NEEDS_AZURITE, Azurite
from tests.e2e.support import NEEDS_HANDLER, BenchTestCase, budget_s, stop_cleanly
from tests.standins.faults import Fault

WATCH = "workspace_watch"
FUNCTION = "function_app"
EXPERIMENT_ID = "0b6e1d2c-7f3a-4e59-9c1d-5a4b3c2d1e0f"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ago(**delta):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(**delta)


class TableReader:
    """Reads entities from Azurite with Shared Key (Table service flavour)."""

    def __init__(self, azurite, table):
        self.base = f"http://127.0.0.1:{azurite.port}/{DEV_ACCOUNT}"
        self.table = table

    def _get(self, resource, query=""):
        date = email.utils.formatdate(usegmt=True)
        path = f"/{DEV_ACCOUNT}{resource}"
        to_sign = f"GET\n\napplication/json\n{date}\n/{DEV_ACCOUNT}{path}"
        sig = base64.b64encode(hmac.new(base64.b64decode(DEV_KEY), to_sign.encode(),
                                        hashlib.sha256).digest()).decode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.base.split(':')[2].split('/')[0]}{path}"
            + (f"?{query}" if query else ""),
            headers={"x-ms-date": date, "x-ms-version": "2019-02-02",
                     "Accept": "application/json;odata=nometadata",
                     "Content-Type": "application/json",
                     "Authorization": f"SharedKey {DEV_ACCOUNT}:{sig}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def entities(self):
        try:
            return self._get(f"/{self.table}()")["value"]
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise

    def run(self, run_id):
        return next((e for e in self.entities() if e["RunId"] == run_id), None)


@NEEDS_HANDLER
@NEEDS_AZURITE
class WatchTest(BenchTestCase):
    appinsights = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.azurite = Azurite().start()
        cls.addClassCleanup(cls.azurite.close)

    def setUp(self):
        super().setUp()
        self.table = "runs" + uuid.uuid4().hex[:12]
        self.reader = TableReader(self.azurite, self.table)
        self.ws = self.stack.workspace

    # -- helpers -----------------------------------------------------------------

    def watch_handler(self, **extra):
        settings = {"AzureWebJobsStorage": self.azurite.connection_string,
                    "HANDLER_RUNS_TABLE": self.table,
                    "HANDLER_INVOCATION_BUDGET_MS": 8000}
        settings.update(extra)
        return self.handler("secret", **settings)

    def put_run(self, run_id, status, start=None, end=None):
        run = {"runId": run_id, "experimentId": EXPERIMENT_ID, "status": status,
               "runType": "azureml.scriptrun", "target": "cpu-cluster",
               "createdUtc": iso(ago(hours=30)),
               "startTimeUtc": start and iso(start), "endTimeUtc": end and iso(end),
               "properties": {"azureml.runsource": "azureml.scriptrun"}, "tags": {}}
        self.stack.catalog.put_run(self.ws, run)

    def event(self, run_id, status, when, event_id=None):
        return {
            "id": event_id or str(uuid.uuid4()),
            "topic": self.ws.resource_id,
            "subject": f"experiments/{EXPERIMENT_ID}/runs/{run_id}",
            "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
            "eventTime": iso(when),
            "data": {"experimentId": EXPERIMENT_ID, "experimentName": "watch-tests",
                     "runId": run_id, "runType": "azureml.scriptrun", "runTags": {},
                     "runProperties": {"azureml.runsource": "azureml.scriptrun"},
                     "runStatus": status},
            "dataVersion": "2", "metadataVersion": "1"}

    def deliver(self, host, *events):
        for event in events:
            answer = host.invoke(FUNCTION, event)
            self.assertEqual(answer.status, 200, answer.body)

    def tick(self, host):
        answer = host.invoke_timer(WATCH)
        self.assertEqual(answer.status, 200, answer.body)
        return answer

    def ingested(self, name):
        return self.stack.ingestion.service.items(name=name)

    def stuck_for(self, run_id):
        return [i for i in self.ingested("AmlRunStuck") if i.properties.get("run_id") == run_id]

    def table_stats(self, host):
        stop_cleanly(host)
        line = next(l for _, l in host.output() if "event=table_stats" in l)
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

    # -- cases -------------------------------------------------------------------

    def test_run_queued_too_long_is_reported_once(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Queued")
        host = self.watch_handler(HANDLER_STUCK_WAITING_MINUTES=60)
        self.deliver(host, self.event(run, "Queued", ago(hours=2)))
        self.tick(host)
        stuck = self.stuck_for(run)
        self.assertEqual(len(stuck), 1)
        props = stuck[0].properties
        self.assertEqual(props["stuck_status"], "Queued")
        self.assertEqual(props["threshold_ms"], "3600000")
        self.assertGreater(float(props["stuck_for_ms"]), 7_000_000)
        self.assertEqual(self.reader.run(run)["StuckReported"], "Queued")
        self.tick(host)
        self.assertEqual(len(self.stuck_for(run)), 1, "reported twice")
        active = {i.properties.get("status"): i.base_data["metrics"][0]["value"]
                  for i in self.ingested("AmlActiveRuns")}
        self.assertEqual(active.get("Queued"), 1)
        self.assertEqual(active.get("all"), 1)
        oldest = self.ingested("AmlOldestWaitingRunAgeMs")
        self.assertTrue(oldest and oldest[-1].base_data["metrics"][0]["value"] > 7_000_000)

    def test_run_running_too_long_is_reported(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Running", start=ago(hours=25))
        host = self.watch_handler(HANDLER_STUCK_RUNNING_HOURS=24)
        self.deliver(host, self.event(run, "Queued", ago(hours=26)),
                     self.event(run, "Running", ago(hours=25)))
        self.tick(host)
        stuck = self.stuck_for(run)
        self.assertEqual([s.properties["stuck_status"] for s in stuck], ["Running"])
        self.assertEqual(stuck[0].properties["threshold_ms"], str(24 * 3600 * 1000))

    def test_a_young_run_is_not_checked(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Queued")
        host = self.watch_handler()
        self.deliver(host, self.event(run, "Queued", ago(minutes=5)))
        self.stack.reset()
        self.tick(host)
        self.assertEqual(self.stuck_for(run), [])
        history = [r for r in self.stack.aml.journal.exchanges() if run in r.path]
        self.assertEqual(history, [], "a run under its threshold cost a run history call")

    def test_missing_terminal_event_is_reconciled_with_its_request(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Completed", start=ago(hours=26), end=ago(hours=1))
        host = self.watch_handler()
        self.deliver(host, self.event(run, "Running", ago(hours=26)))
        self.tick(host)
        reconciled = [i for i in self.ingested("AmlRunReconciled")
                      if i.properties.get("run_id") == run]
        self.assertEqual(len(reconciled), 1)
        self.assertEqual(reconciled[0].properties["status"], "Completed")
        requests = [i for i in self.stack.ingestion.service.items(base_type="RequestData")
                    if i.properties.get("run_id") == run]
        self.assertEqual(len(requests), 1, "the reconciled run's request is missing")
        self.assertEqual(self.stuck_for(run), [])
        entity = self.reader.run(run)
        self.assertFalse(entity["Open"])
        self.assertEqual(entity["Status"], "Completed")
        self.tick(host)
        self.assertEqual(len([i for i in self.ingested("AmlRunReconciled")
                              if i.properties.get("run_id") == run]), 1)

    def test_run_gone_from_history_is_removed(self):
        run = str(uuid.uuid4())  # never put into run history
        host = self.watch_handler()
        self.deliver(host, self.event(run, "Queued", ago(hours=3)))
        self.assertIsNotNone(self.reader.run(run))
        self.tick(host)
        self.assertIsNone(self.reader.run(run))
        host.wait_for(lambda: any("event=run_gone" in l and run in l
                                  for _, l in host.output()), what="event=run_gone")

    def test_out_of_order_and_duplicate_events(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Completed", start=ago(hours=2), end=ago(hours=1))
        host = self.watch_handler()
        completed = self.event(run, "Completed", ago(hours=1))
        self.deliver(host, completed, self.event(run, "Running", ago(hours=2)),
                     self.event(run, "Queued", ago(hours=3)), completed)
        entity = self.reader.run(run)
        self.assertEqual(entity["Status"], "Completed")
        self.assertFalse(entity["Open"])
        other = str(uuid.uuid4())
        self.put_run(other, "Running", start=ago(minutes=20))
        running = self.event(other, "Running", ago(minutes=20))
        self.deliver(host, self.event(other, "Queued", ago(minutes=30)), running, running,
                     self.event(other, "Queued", ago(minutes=30)))
        entity = self.reader.run(other)
        self.assertEqual(entity["Status"], "Running")
        self.assertTrue(entity["Open"])
        self.assertTrue(entity["Since"].startswith(iso(ago(minutes=20))[:15]))
        stats = self.table_stats(host)
        self.assertEqual(stats["run_events"], 8)
        self.assertEqual(stats["entity_writes"], 3)  # Completed; Queued, Running
        self.assertEqual(stats["writes"], 3)
        # Each run was new to this instance: inserted at once, later events
        # decided from what it remembers (no read).
        self.assertEqual(stats["reads"], 0)

    def test_non_run_events_touch_no_table(self):
        host = self.watch_handler()
        event = {"id": str(uuid.uuid4()), "topic": self.ws.resource_id,
                 "subject": "models/m:1",
                 "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                 "eventTime": iso(ago(minutes=1)),
                 "data": {"modelName": "m", "modelVersion": "1", "modelTags": {},
                          "modelProperties": {}},
                 "dataVersion": "2", "metadataVersion": "1"}
        self.deliver(host, event)
        stats = self.table_stats(host)
        self.assertEqual((stats["reads"], stats["writes"], stats["queries"]), (0, 0, 0))

    def test_two_instances_share_the_table_and_never_double_report(self):
        runs = [str(uuid.uuid4()) for _ in range(4)]
        for run in runs:
            self.put_run(run, "Queued")
        first, second = self.watch_handler(), self.watch_handler()
        events = [self.event(run, status, ago(hours=2, minutes=m))
                  for run in runs for status, m in (("NotStarted", 2), ("Queued", 0))]
        # Both instances get every event, concurrently (Event Grid's at-least-once
        # delivery to a scaled-out app): the table ends with each run Queued.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            deliveries = list(pool.map(
                lambda h: h.deliver(events, function_name=FUNCTION), (first, second)))
        for delivery in deliveries:
            self.assertTrue(all(getattr(r, "status", 0) == 200 for r in delivery.results),
                            delivery.results)
        self.assertEqual({self.reader.run(run)["Status"] for run in runs}, {"Queued"})
        results = []
        threads = [threading.Thread(target=lambda h=h: results.append(h.invoke_timer(WATCH)))
                   for h in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(a.status == 200 for a in results), [a.body for a in results])
        for run in runs:
            self.assertEqual(len(self.stuck_for(run)), 1, f"run {run}")

    def test_storage_outage_fails_the_invocation_then_redelivery_succeeds(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Queued")
        host = self.watch_handler(HANDLER_INVOCATION_BUDGET_MS=3000)
        event = self.event(run, "Queued", ago(hours=2))
        self.azurite.stop()
        try:
            answer = host.invoke(FUNCTION, event)
            self.assertEqual(answer.status, 500, answer.body)
            self.assertEqual(host.invoke_timer(WATCH).status, 500)
        finally:
            self.azurite.start()
        self.deliver(host, event)  # Event Grid's redelivery
        self.assertEqual(self.reader.run(run)["Status"], "Queued")
        self.tick(host)
        self.assertEqual(len(self.stuck_for(run)), 1)

    def test_azurite_restarted_mid_run(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Running", start=ago(hours=30))
        host = self.watch_handler()
        self.deliver(host, self.event(run, "Queued", ago(hours=31)))
        self.azurite.restart()  # same data, every connection dropped
        self.deliver(host, self.event(run, "Preparing", ago(hours=30, minutes=30)))
        self.assertEqual(self.reader.run(run)["Status"], "Preparing")
        self.azurite.wipe()  # restarted empty: the table is gone
        # The next status change finds the table and the entity gone: the table
        # is created again and the run written anew.
        self.deliver(host, self.event(run, "Running", ago(hours=30)))
        self.assertEqual(self.reader.run(run)["Status"], "Running")
        self.tick(host)
        self.assertEqual(len(self.stuck_for(run)), 1)
        # Once more, empty again: the tick finds the table gone and creates it;
        # the handler then forgets what it remembered of the runs, so even a
        # redelivered event (a duplicate) writes its run anew.
        other = str(uuid.uuid4())
        self.put_run(other, "Queued")
        queued = self.event(other, "Queued", ago(hours=2))
        self.deliver(host, queued)
        self.azurite.wipe()
        self.tick(host)
        self.deliver(host, queued)
        self.assertEqual(self.reader.run(other)["Status"], "Queued")

    def test_tick_with_more_candidates_than_its_budget(self):
        runs = [str(uuid.uuid4()) for _ in range(5)]
        host = self.watch_handler(HANDLER_WATCH_MAX_CHECKS=2)
        for run in runs:
            self.put_run(run, "Queued")
            self.deliver(host, self.event(run, "Queued", ago(hours=2)))
        counts = []
        for _ in range(3):
            self.tick(host)
            counts.append(sum(len(self.stuck_for(run)) for run in runs))
        self.assertEqual(counts, [2, 4, 5])
        host.wait_for(lambda: any("deferred=3" in l for _, l in host.output()),
                      what="a tick that deferred 3 candidates")

    def test_lost_ending_after_finalizing_is_found_without_a_stuck_report(self):
        run = str(uuid.uuid4())
        self.put_run(run, "Failed", start=ago(hours=3), end=ago(hours=2))
        host = self.watch_handler(HANDLER_STUCK_WAITING_MINUTES=60)
        self.deliver(host, self.event(run, "Finalizing", ago(hours=2)))
        self.tick(host)
        self.assertEqual(self.stuck_for(run), [])
        self.assertEqual(self.reader.run(run)["Status"], "Failed")
        self.assertEqual(len([i for i in self.ingested("AmlRunReconciled")
                              if i.properties.get("run_id") == run]), 1)

    def test_check_verifies_the_table(self):
        import subprocess
        from tests.e2e.support import HANDLER_BIN
        env = {"AzureWebJobsStorage": self.azurite.connection_string,
               "HANDLER_RUNS_TABLE": self.table, "PATH": "/usr/bin:/bin"}
        good = subprocess.run([str(HANDLER_BIN), "check"], env=env, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertIn(f"ok    run table {self.table} exists", good.stdout)
        self.assertIn("ok    run table write, read and delete of a probe entity", good.stdout)
        self.assertEqual([e for e in self.reader.entities()], [], "the probe was left behind")
        env["AzureWebJobsStorage"] = env["AzureWebJobsStorage"].replace("Eby8", "Fby8")
        bad = subprocess.run([str(HANDLER_BIN), "check"], env=env, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("403", bad.stdout)
        self.assertNotIn("Fby8", bad.stdout + bad.stderr)
        off = subprocess.run([str(HANDLER_BIN), "check"], env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60)
        self.assertIn("skip  workspace watch: off", off.stdout)

    def test_tick_that_runs_out_of_time_stops_cleanly(self):
        runs = [str(uuid.uuid4()) for _ in range(4)]
        host = self.watch_handler(HANDLER_INVOCATION_BUDGET_MS=int(budget_s(3) * 1000))
        for run in runs:
            self.put_run(run, "Queued")
            self.deliver(host, self.event(run, "Queued", ago(hours=2)))
        self.stack.reset()
        self.stack.aml.faults.add("run", Fault.slow(budget_s(1.0)), times=4)
        answer = self.tick(host)
        self.assertIn("stopped at the deadline", " ".join(answer.body["Logs"]))
        first = sum(len(self.stuck_for(run)) for run in runs)
        self.assertTrue(1 <= first < 4, first)
        self.assertEqual(self.ingested("AmlActiveRuns"), [], "partial gauges were sent")
        for _ in range(4):
            if sum(len(self.stuck_for(run)) for run in runs) == 4:
                break
            self.tick(host)
        self.assertEqual([len(self.stuck_for(run)) for run in runs], [1, 1, 1, 1])

    def test_timer_without_storage_says_the_watch_is_off(self):
        host = self.handler("secret")
        answer = host.invoke_timer(WATCH)
        self.assertEqual(answer.status, 200)
        self.assertIn("watch is off", " ".join(answer.body["Logs"]))
        host.wait_for(lambda: any("event=watch_off" in l for _, l in host.output()),
                      what="event=watch_off")


if __name__ == "__main__":
    unittest.main()
