"""The HTTP(S) server every stand-in runs on.

A `Service` (one remote Azure service) declares its routes and how it words an
error; `StandinServer` serves it on 127.0.0.1 at a free port, over TLS with the
test CA's server certificate (or plain HTTP, as the App Service managed
identity endpoint is), one thread per connection.

HTTP behaviour, kept close to what Azure's front ends do:
- HTTP/1.1 with keep-alive; every answer has a Content-Length; `Connection:
  close` from the client is honoured; `Expect: 100-continue` is answered.
- Request bodies framed by Content-Length or `Transfer-Encoding: chunked`; a
  request without Host is refused (400), as HTTP/1.1 requires; bodies over
  64 MiB are refused (413).
- The TLS handshake runs in the connection's thread, so a stalled client
  stalls no one else; handshakes and resumed sessions are counted in the
  journal.
- Unknown path: the service's 404; known path, wrong method: its 405.

Before a route's handler runs, a queued fault (faults.py) may delay, reset or
replace the answer. Every request is journaled (journal.py).

Threading: handlers run concurrently, one thread per connection; services keep
their shared state behind their own locks.
"""

import dataclasses
import email.message
import json
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .faults import Fault, FaultPlan
from .journal import Journal

MAX_BODY = 64 * 1024 * 1024
IDLE_TIMEOUT = 120.0  # seconds an idle keep-alive connection is kept open
HANDSHAKE_TIMEOUT = 10.0


class _HttpError(Exception):
    """A request the HTTP layer refuses before any route sees it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Request:
    method: str
    path: str  # raw (percent-encoded) path, without the query
    query: dict[str, list[str]]
    headers: email.message.Message
    body: bytes
    scheme: str  # "https" or "http"

    @property
    def host(self) -> str:
        return self.headers.get("Host", "")

    @property
    def url(self) -> str:
        """The URL the client used, without the query."""
        return f"{self.scheme}://{self.host}{self.path}"

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query_one(self, name: str) -> str | None:
        """The value of query parameter `name` (the first, if repeated)."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def json(cls, status: int, document: Any,
             headers: list[tuple[str, str]] | None = None) -> "Response":
        body = json.dumps(document).encode()
        return cls(status, body,
                   [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])


Handler = Callable[[Request, re.Match], Response]


@dataclasses.dataclass(frozen=True)
class Route:
    name: str
    methods: tuple[str, ...]
    pattern: re.Pattern  # full match against the raw path
    handler: Handler


class Service:
    """Base of the stand-ins: a list of routes and an error format."""

    scheme = "https"

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str) -> Response:
        """The service's error document for `status`."""
        raise NotImplementedError

    def fault_response(self, fault: Fault) -> Response:
        if fault.body is not None:
            response = Response(fault.status, fault.body)
        else:
            response = self.error(fault.status, fault.code or _default_code(fault.status),
                                  fault.message or "Injected fault")
        response.headers.extend(fault.headers)
        return response


def _default_code(status: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            408: "RequestTimeout", 429: "TooManyRequests", 500: "InternalServerError",
            502: "BadGateway", 503: "ServiceUnavailable",
            504: "GatewayTimeout"}.get(status, f"Status{status}")


def _reset(sock: socket.socket) -> None:
    """Closes `sock` with a TCP RST (no TLS close_notify, no FIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"  # what many Azure front ends say
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def __init__(self, sock, address, server, standin: "StandinServer", connection: int,
                 tls_resumed: bool | None) -> None:
        self.standin = standin
        self.connection_id = connection
        self.tls_resumed = tls_resumed
        super().__init__(sock, address, server)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the journal holds every request."""

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise _HttpError(501, f"Transfer-Encoding {encoding} not supported")
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise _HttpError(400, "Invalid Content-Length")
        size = int(length)
        if size > MAX_BODY:
            raise _HttpError(413, "Request entity too large")
        body = self.rfile.read(size)
        if len(body) != size:
            raise _HttpError(400, "Body shorter than Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _HttpError(400, "Invalid chunk size") from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _HttpError(413, "Request entity too large")
            parts.append(self.rfile.read(size))
            if self.rfile.read(2) != b"\r\n":
                raise _HttpError(400, "Invalid chunk framing")
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailers are ignored
        return b"".join(parts)

    def _serve(self) -> None:
        standin = self.standin
        arrival = time.time()
        # The raw request target: http.server collapses a leading "//" in
        # self.path, which would hide a client's doubled slash.
        path, _, raw_query = self.requestline.split()[1].partition("?")
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        record = dict(time=arrival, connection=self.connection_id,
                      tls_resumed=self.tls_resumed, method=self.command, path=path,
                      query=query, headers=tuple(self.headers.items()), body=b"",
                      route=None, status=None, fault=None)
        try:
            if not self.headers.get("Host"):
                raise _HttpError(400, "Bad Request - Invalid Hostname")
            record["body"] = self._read_body()
        except _HttpError as exc:
            self.close_connection = True
            record["status"] = exc.status
            standin.journal.record(**record)
            self._send(Response(exc.status, str(exc).encode(),
                                [("Content-Type", "text/plain")]))
            return

        request = Request(self.command, path, query, self.headers, record["body"],
                          standin.service.scheme)
        route, match, response = standin.match(request)
        if route is not None:
            record["route"] = route.name
            fault = standin.faults.take(route.name)
            if fault is not None:
                record["fault"] = fault.describe()
                time.sleep(fault.delay)
                if fault.reset:
                    standin.journal.record(**record)
                    self.close_connection = True
                    _reset(self.connection)
                    return
                if fault.status is not None:
                    response = standin.service.fault_response(fault)
            if response is None:
                response = standin.call(route, request, match)
        record["status"] = response.status
        standin.journal.record(**record)
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _ThreadingServer(socketserver.ThreadingTCPServer):
    request_queue_size = 128  # 32+ concurrent clients connect at once in tests
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, standin: "StandinServer", port: int) -> None:
        self.standin = standin
        super().__init__((standin.host, port), _RequestHandler)

    def finish_request(self, request, client_address) -> None:
        standin = self.standin
        connection = standin.journal.on_connection()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to many answers.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls_resumed = None
        if standin.tls is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request = standin.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                standin.journal.on_handshake_failure()
                return
            tls_resumed = request.session_reused
            standin.journal.on_handshake(tls_resumed)
        standin.track(request, True)
        try:
            _RequestHandler(request, client_address, self, standin, connection, tls_resumed)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass  # the client went away
        finally:
            standin.track(request, False)
            request.close()


class StandinServer:
    """Serves one `Service` on 127.0.0.1; `start()` then use `base_url`."""

    def __init__(self, service: Service, tls: ssl.SSLContext | None, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        if (tls is None) != (service.scheme == "http"):
            raise ValueError("TLS context required exactly for https services")
        self.service = service
        self.tls = tls
        self.host = host
        self.journal = Journal()
        self.faults = FaultPlan()
        self._routes = service.routes()
        self._port = port
        self._server: _ThreadingServer | None = None
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """e.g. https://127.0.0.1:43121 (no trailing slash)."""
        return f"{self.service.scheme}://{self.host}:{self.port}"

    def url_for(self, host: str) -> str:
        """The base URL with another host name (e.g. "localhost")."""
        return f"{self.service.scheme}://{host}:{self.port}"

    def start(self) -> "StandinServer":
        self._server = _ThreadingServer(self, self._port)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"standin-{type(self.service).__name__}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server = None

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(sock)

    def match(self, request: Request
              ) -> tuple[Route | None, re.Match | None, Response | None]:
        """(route, its match, None), or (None, None, the 404/405 answer)."""
        path_known = False
        for route in self._routes:
            found = route.pattern.fullmatch(request.path)
            if found is None:
                continue
            if request.method in route.methods:
                return route, found, None
            path_known = True
        if path_known:
            return None, None, self.service.error(
                405, "MethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.")
        return None, None, self.service.error(404, "NotFound",
                                              f"No route matches '{request.path}'.")

    def call(self, route: Route, request: Request, match: re.Match) -> Response:
        try:
            return route.handler(request, match)
        except Exception:  # a stand-in bug: visible in the test log and as a 500
            traceback.print_exc(file=sys.stderr)
            return self.service.error(500, "InternalServerError", "Stand-in failure")
