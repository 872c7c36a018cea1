"""Fault injection: what a stand-in does to the next requests of a route
instead of (or before) answering them normally.

A test queues faults per route name (or "*" for any route of that server);
each request takes the first queued fault of its route, else of "*":

    server.faults.add("track", Fault.error(429, retry_after=2))       # next one
    server.faults.add("token", Fault.error(503), times=3)             # next three
    server.faults.add("*", Fault.connection_reset())
    server.faults.add("track", Fault.redirect("https://localhost:4431/v2.1/track"))
    server.faults.add("run", Fault.slow(1.5))    # answer normally, 1.5 s late

An error fault's body is the service's own error document for that status
(AAD, ARM, AML or App Insights shape) unless `body` is given. A reset closes
the TCP connection with RST without answering. Thread-safe.
"""

import collections
import dataclasses
import datetime
import email.utils
import threading


@dataclasses.dataclass(frozen=True)
class Fault:
    status: int | None = None  # None: answer normally (after `delay`)
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # None: the service's error document
    code: str | None = None  # error code put in the service's error document
    message: str | None = None
    delay: float = 0.0  # seconds to wait before acting
    reset: bool = False  # close the connection (RST) without answering

    @classmethod
    def error(cls, status: int, *, retry_after: int | str | datetime.datetime | None = None,
              retry_after_ms: int | None = None, x_ms_retry_after_ms: int | None = None,
              code: str | None = None, message: str | None = None,
              body: bytes | None = None, delay: float = 0.0) -> "Fault":
        """An error answer; `retry_after` as seconds, a raw string, or a datetime
        (sent as an HTTP date)."""
        headers = []
        if isinstance(retry_after, datetime.datetime):
            headers.append(("Retry-After", email.utils.format_datetime(
                retry_after.astimezone(datetime.timezone.utc), usegmt=True)))
        elif retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", str(retry_after_ms)))
        if x_ms_retry_after_ms is not None:
            headers.append(("x-ms-retry-after-ms", str(x_ms_retry_after_ms)))
        return cls(status=status, headers=tuple(headers), code=code, message=message,
                   body=body, delay=delay)

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> "Fault":
        return cls(status=status, headers=(("Location", location),), body=b"")

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        return cls(delay=seconds)

    @classmethod
    def connection_reset(cls, delay: float = 0.0) -> "Fault":
        return cls(reset=True, delay=delay)

    def describe(self) -> str:
        if self.reset:
            return "reset"
        if self.status is None:
            return f"delay {self.delay:g}s"
        return f"status {self.status}" + (f" after {self.delay:g}s" if self.delay else "")


class FaultPlan:
    """Queues of faults per route name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[Fault]] = collections.defaultdict(
            collections.deque)

    def add(self, route: str, *faults: Fault, times: int = 1) -> None:
        """Queues `faults` (in order), the whole sequence `times` times."""
        with self._lock:
            self._queues[route].extend(list(faults) * times)

    def take(self, route: str) -> Fault | None:
        with self._lock:
            for name in (route, "*"):
                if self._queues[name]:
                    return self._queues[name].popleft()
        return None

    def pending(self, route: str | None = None) -> int:
        with self._lock:
            if route is not None:
                return len(self._queues[route])
            return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
