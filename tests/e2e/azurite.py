"""Azurite's Table service (Microsoft's emulator, npm package `azurite`, pinned
and installed by scripts/setup into .tools/azurite) for the end-to-end tests:
started on a free loopback port, with its data in a temporary folder, so a
restart keeps the tables (`restart()`) and `wipe()` starts empty.

The connection string is Azurite's documented development account with an
explicit TableEndpoint (the handler signs with Shared Key as against Azure).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(os.environ.get("REPO_DIR") or Path(__file__).resolve().parents[2])
AZURITE_TABLE = Path(os.environ.get("AZURITE_TABLE") or
                     REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-table")
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
           "KBHBeksoGMGw==")
# Skipped on a developer's machine without Azurite; never in CI (CI=true), where a
# missing Azurite is a failed setup and must fail the suite, not hide it.
NEEDS_AZURITE = unittest.skipUnless(
    os.access(AZURITE_TABLE, os.X_OK) or os.environ.get("CI") == "true",
    f"no Azurite at {AZURITE_TABLE}: run scripts/setup (npm install of azurite)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    def __init__(self):
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [str(AZURITE_TABLE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
             "--location", self._dir, "--silent", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("azurite-table exited at start")
                time.sleep(0.1)
        raise RuntimeError("azurite-table did not listen within 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def wipe(self):
        """Stops, forgets every table, starts again (an emulator restarted empty)."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        os.makedirs(self._dir)
        return self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def connection_string(self):
        return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};"
                f"AccountKey={DEV_KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{DEV_ACCOUNT};")
