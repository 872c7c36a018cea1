"""The request journal of one stand-in server: what the client sent, and on which
connection.

Every request that reached a stand-in becomes an `Exchange` (method, path,
query, headers, body, arrival time, the route it matched, the status answered
or None when the connection was reset instead) tagged with the id of its TCP
connection. The journal also counts connections accepted, TLS handshakes
completed or failed, and handshakes that resumed an earlier TLS session
(`ssl.SSLSocket.session_reused`), so tests can prove a client reuses its
connections and sessions.

Thread-safe: the server's connection threads record while tests read.
"""

import dataclasses
import threading
import time
from typing import Any


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request and how it was answered."""

    seq: int
    time: float  # time.time() at arrival
    connection: int  # id of the TCP connection, from 1
    tls_resumed: bool | None  # None on a plain-HTTP server
    method: str
    path: str  # raw path, without the query
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    route: str | None  # name of the matched route, None when nothing matched
    status: int | None  # None when the connection was reset instead
    fault: str | None  # description of the injected fault, if any

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly form (Authorization values masked), for dumps."""
        headers = [[k, "<redacted>" if k.lower() == "authorization" else v]
                   for k, v in self.headers]
        return {"seq": self.seq, "time": self.time, "connection": self.connection,
                "tls_resumed": self.tls_resumed, "method": self.method, "path": self.path,
                "query": self.query, "headers": headers, "route": self.route,
                "status": self.status, "fault": self.fault,
                "body": self.body.decode("utf-8", "replace")}


class Journal:
    """Exchanges and connection counters of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._next_connection_id = 0
        self._connections = 0
        self._handshakes = 0
        self._handshake_failures = 0
        self._resumed = 0

    def on_connection(self) -> int:
        """Counts a new TCP connection and returns its id."""
        with self._lock:
            self._connections += 1
            self._next_connection_id += 1
            return self._next_connection_id

    def on_handshake(self, resumed: bool) -> None:
        with self._lock:
            self._handshakes += 1
            self._resumed += int(resumed)

    def on_handshake_failure(self) -> None:
        with self._lock:
            self._handshake_failures += 1

    def record(self, **fields: Any) -> Exchange:
        with self._lock:
            exchange = Exchange(seq=len(self._exchanges) + 1, **fields)
            self._exchanges.append(exchange)
            return exchange

    def exchanges(self, route: str | None = None) -> list[Exchange]:
        """Exchanges in arrival order, optionally only those of one route."""
        with self._lock:
            return [e for e in self._exchanges if route is None or e.route == route]

    def stats(self) -> dict[str, int]:
        """connections, handshakes, handshake_failures, resumed_handshakes, requests."""
        with self._lock:
            return {"connections": self._connections, "handshakes": self._handshakes,
                    "handshake_failures": self._handshake_failures,
                    "resumed_handshakes": self._resumed, "requests": len(self._exchanges)}

    def clear(self) -> None:
        """Forgets exchanges and zeroes the counters (ids keep increasing)."""
        with self._lock:
            self._exchanges.clear()
            self._connections = self._handshakes = self._handshake_failures = 0
            self._resumed = 0

    def wait_for(self, count: int, route: str | None = None, timeout: float = 10.0
                 ) -> list[Exchange]:
        """Waits until at least `count` exchanges (of `route`) were recorded."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.exchanges(route)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)
