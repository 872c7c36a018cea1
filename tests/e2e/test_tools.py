"""End-to-end tests of the handler's tools against the stand-ins: `handler check`
(one line per step, exit status, the fix named for a refused secret and for a
missing role) and `handler replay` (single events, arrays, dead-letter blobs,
idempotence with the exporter, a non-zero exit when events fail), and `handler
--help` (the settings it lists are the README's).
"""

import json
import os
import re
import subprocess
import tempfile
import unittest
from pathlib import Path

from tests.e2e.support import HANDLER_BIN, NEEDS_HANDLER, REPO, Bench
from tests.standins.faults import Fault


def run_tool(args, env, timeout=60):
    """Runs build/handler with `args` and only `env` (plus PATH)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full.update(env)
    return subprocess.run([str(HANDLER_BIN), *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


@NEEDS_HANDLER
class CheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bench = Bench().start()
        cls.addClassCleanup(cls.bench.stop)

    def setUp(self):
        self.bench.clear_journals()

    def test_a_good_configuration_passes_every_step(self):
        for dry_run in (False, True):
            with self.subTest(dry_run=dry_run):
                args = ["check"] + (["--dry-run"] if dry_run else [])
                result = run_tool(args, self.bench.settings("secret"))
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                lines = result.stdout.splitlines()
                for step in ("settings", "Entra ID token", "workspace discovery",
                             "run history read", "Retail Prices API", "ingestion"):
                    self.assertTrue(any(l.startswith("ok") and step in l for l in lines),
                                    f"no passed step '{step}' in:\n{result.stdout}")
                self.assertEqual(lines[-1], "check: all steps passed")

    def test_dry_run_stores_nothing_and_a_real_check_stores_one_event(self):
        run_tool(["check", "--dry-run"], self.bench.settings("secret"))
        self.assertEqual(self.bench.stack.ingestion.service.items(), [])
        run_tool(["check"], self.bench.settings("secret"))
        items = self.bench.stack.ingestion.service.items()
        self.assertEqual([(i.base_type, i.base_data.get("name")) for i in items],
                         [("EventData", "AmlHandlerCheck")])

    def test_a_refused_secret_fails_with_the_setting_to_fix(self):
        result = run_tool(["check", "--dry-run"],
                          self.bench.settings("secret", AZURE_CLIENT_SECRET="not-the-secret"))
        self.assertEqual(result.returncode, 1)
        failed = [l for l in result.stdout.splitlines() if l.startswith("FAIL")]
        self.assertEqual(len(failed), 1, result.stdout)
        self.assertIn("Entra ID token", failed[0])
        self.assertIn("AZURE_CLIENT_SECRET", failed[0])
        self.assertNotIn("not-the-secret", result.stdout + result.stderr)

    def test_a_missing_role_is_named(self):
        stack = self.bench.stack
        stack.directory.revoke(stack.app.client_id, "workspace")
        self.addCleanup(stack.directory._revoked.discard, (stack.app.client_id, "workspace"))
        result = run_tool(["check", "--dry-run"], self.bench.settings("secret"))
        self.assertEqual(result.returncode, 1)
        failed = [l for l in result.stdout.splitlines() if l.startswith("FAIL")]
        self.assertTrue(failed, result.stdout)
        self.assertIn("403", failed[0])
        self.assertRegex(failed[0], "role")

    def test_prices_api_down_is_named(self):
        self.bench.stack.prices.faults.add("prices", Fault.error(503), times=10)
        result = run_tool(["check", "--dry-run"], self.bench.settings("secret"))
        self.assertEqual(result.returncode, 1)
        failed = [l for l in result.stdout.splitlines() if l.startswith("FAIL")]
        self.assertEqual(len(failed), 1, result.stdout)
        self.assertIn("Retail Prices API", failed[0])
        self.assertIn("HTTP 503", failed[0])
        cost_off = run_tool(["check", "--dry-run"],
                            self.bench.settings("secret", HANDLER_COST="off"))
        self.assertIn("skip  Retail Prices API", cost_off.stdout)

    def test_a_malformed_setting_is_one_failed_line(self):
        result = run_tool(["check"], self.bench.settings("secret", AML_WORKSPACES="/nope"))
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stdout, r"^FAIL  settings \(AML_WORKSPACES\): ")


@NEEDS_HANDLER
class ReplayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bench = Bench().start()
        cls.addClassCleanup(cls.bench.stop)
        cls.tmp = tempfile.TemporaryDirectory(prefix="handler-replay-")
        cls.addClassCleanup(cls.tmp.cleanup)

    def setUp(self):
        self.bench.clear_journals()

    def write(self, name, content):
        path = Path(self.tmp.name) / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    def accepted_event_ids(self):
        items = self.bench.stack.ingestion.service.items(base_type="EventData")
        return {i.base_data.get("properties", {}).get("event_id") for i in items}

    def test_dead_letter_blobs_arrays_and_lines_are_replayed(self):
        events = self.bench.events
        dead = [dict(e, deadLetterReason="MaxDeliveryAttemptsExceeded",
                     deliveryAttempts=30, lastDeliveryOutcome="Probation",
                     publishTime=e["eventTime"]) for e in events[:6]]
        files = [self.write("deadletter.json", dead),
                 self.write("single.json", events[6]),
                 self.write("lines.jsonl", "\n".join(json.dumps(e) for e in events[7:]) + "\n")]
        settings = self.bench.settings("secret", HANDLER_LOG_LEVEL="warn")
        result = run_tool(["replay", *files], settings, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"done: {len(events)} events from 3 files, {len(events)} recorded",
                      result.stderr)
        self.assertEqual(self.accepted_event_ids(), {e["id"] for e in events})
        # Replayed again (the backfill was re-run): every event is recorded again,
        # and queries dedupe on event_id, which each record carries.
        before = len(self.bench.stack.ingestion.service.items(base_type="EventData"))
        again = run_tool(["replay", files[0]], settings, timeout=120)
        self.assertEqual(again.returncode, 0, again.stderr)
        after = self.bench.stack.ingestion.service.items(base_type="EventData")
        self.assertEqual(len(after) - before, len(dead))

    def test_an_event_twice_in_one_replay_is_sent_once(self):
        event = self.bench.events[3]
        path = self.write("twice.json", [event, event])
        settings = self.bench.settings("secret", HANDLER_LOG_LEVEL="warn")
        result = run_tool(["replay", path], settings)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 events from 1 files, 2 recorded", result.stderr)
        sent = [i for i in self.bench.stack.ingestion.service.items(base_type="EventData")
                if i.base_data["properties"].get("event_id") == event["id"]]
        self.assertEqual(len(sent), 1)

    def test_failed_events_make_the_exit_status_non_zero(self):
        stack = self.bench.stack
        stack.ingestion.faults.add("track", Fault.error(503), times=1000)
        self.addCleanup(stack.ingestion.faults.clear)
        settings = self.bench.settings("secret", HANDLER_LOG_LEVEL="warn")
        path = self.write("one.json", self.bench.events[0])
        result = run_tool(["replay", "--budget-ms", "1500", path], settings)
        self.assertEqual(result.returncode, 1)
        self.assertIn("1 failed", result.stderr)

    def test_an_unreadable_file_is_reported(self):
        result = run_tool(["replay", "/nonexistent/events.json"],
                          self.bench.settings("secret", appinsights=False))
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot read /nonexistent/events.json", result.stderr)


@NEEDS_HANDLER
class HelpTest(unittest.TestCase):
    def test_help_lists_exactly_the_settings_of_the_readme(self):
        result = run_tool(["--help"], {})
        self.assertEqual(result.returncode, 0, result.stderr)
        listed = set()
        for line in result.stdout.split("Settings (", 1)[1].splitlines():
            m = re.match(r"^  ([A-Z][A-Z0-9_]+)((?: \(or [A-Z0-9_]+\))*)$", line)
            if m:
                listed.add(m.group(1))
                listed.update(re.findall(r"\(or ([A-Z0-9_]+)\)", m.group(2)))
        readme = Path(REPO, "README.md").read_text()
        table = readme.split("| setting | meaning |", 1)[1].split("\n\n", 1)[0]
        documented = set()
        for row in table.splitlines()[2:]:
            documented.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row))
        self.assertGreater(len(listed), 20)
        self.assertEqual(listed, documented)


if __name__ == "__main__":
    unittest.main()
