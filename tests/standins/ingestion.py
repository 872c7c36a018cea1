"""Stand-in for the Application Insights ingestion endpoint ("Breeze").

Routes (base URL = the connection string's IngestionEndpoint):
- POST /v2.1/track  (route "track")
- POST /v2/track    (route "track_v2"; legacy: refused with 401 when the
  resource is Entra-ID-only, inferred status)

Request:
- body: a JSON array of envelopes (Content-Type application/json) or one
  envelope per line (application/x-json-stream, also "x-json-stream" as the
  swagger spells it); other types -> 415 (inferred). `Content-Encoding: gzip`
  is decoded; other encodings -> 415 (inferred).
- Authorization: with `entra_only`, a bearer token for
  https://monitor.azure.com/ is required (401 otherwise; `audiences` names the
  accepted ones, e.g. (MONITOR_US,) for a resource in Azure Government, where a
  public-cloud token is an invalid token); a token present is always checked. A caller whose "publisher" role was revoked (no Monitoring
  Metrics Publisher) gets 403.

Answer, as the service does: {"itemsReceived", "itemsAccepted", "errors":
[{"index", "statusCode", "message"}]}; 200 when every item is accepted, 206
when some are, 400 when none is and every error is a 400 (as public reports of
single-item batches show). A body that does not parse as a JSON array, an
empty batch or one over 65,536 items is a 400 too (inferred). Each item is
judged by telemetry.py. Per-item failures can be injected with `fail_items()`:
the chosen items (when otherwise valid) fail with the chosen status, so the
client must re-send exactly those.

Whole-request faults (429 + Retry-After, 5xx, 307/308 redirect, 402/439
daily cap, reset, delay) come from faults.py; their body is a TrackResponse.

Every accepted item is recorded (`items()`), and every POST the service judged
(`posts()`; POSTs answered by an injected whole-request fault are only in the
journal). Thread-safe.
"""

import collections
import dataclasses
import gzip
import json
import re
import threading
import zlib
from collections.abc import Iterable
from typing import Any

from .directory import MONITOR, ROLE_PUBLISHER, Directory
from .server import Request, Response, Route, Service
from .swagger import SwaggerSchema
from .telemetry import EnvelopeRules

MAX_ITEMS = 65536
_JSON_TYPES = ("application/json",)
_STREAM_TYPES = ("application/x-json-stream", "x-json-stream")


@dataclasses.dataclass(frozen=True)
class Item:
    """One accepted telemetry item."""

    post: int  # seq of the POST that carried it (from 1)
    index: int  # its index in that POST
    envelope: dict[str, Any]

    @property
    def base_type(self) -> str:
        return self.envelope["data"]["baseType"]

    @property
    def base_data(self) -> dict[str, Any]:
        return self.envelope["data"]["baseData"]

    @property
    def name(self) -> str | None:
        """baseData.name (event, request, dependency), or the metric's name."""
        if self.base_type == "MetricData":
            return self.base_data["metrics"][0]["name"]
        return self.base_data.get("name")

    @property
    def properties(self) -> dict[str, str]:
        return self.base_data.get("properties") or {}

    @property
    def tags(self) -> dict[str, str]:
        return self.envelope.get("tags") or {}


@dataclasses.dataclass(frozen=True)
class Post:
    """One POST to the track endpoint, as answered."""

    seq: int
    path: str
    status: int
    items_received: int
    items_accepted: int
    errors: tuple[dict[str, Any], ...]
    gzip: bool
    authorized_by: str | None  # client id of the bearer token, if any


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _loads(data: bytes | str) -> Any:
    return json.loads(data, parse_constant=_reject_constant)


def _compact_size(envelope: Any) -> int:
    """The item's size as a client would serialize it (compact UTF-8)."""
    return len(json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode())


class IngestionService(Service):
    def __init__(self, directory: Directory, instrumentation_key: str,
                 schema: SwaggerSchema | None = None, entra_only: bool = False,
                 audiences: tuple[str, ...] = (MONITOR,)) -> None:
        self.directory = directory
        self.audiences = audiences
        self.instrumentation_key = instrumentation_key
        self.rules = EnvelopeRules(schema or SwaggerSchema.load(), instrumentation_key)
        self.entra_only = entra_only
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._posts: list[Post] = []
        self._post_count = 0
        self._item_faults: collections.deque[tuple[frozenset[int] | None, int]] = (
            collections.deque())

    def routes(self) -> list[Route]:
        return [Route("track", ("POST",), re.compile(r"/v2\.1/track"), self._track),
                Route("track_v2", ("POST",), re.compile(r"/v2/track"), self._track)]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"itemsReceived": 0, "itemsAccepted": 0,
                                      "errors": [{"index": 0, "statusCode": status,
                                                  "message": message}]})

    def fail_items(self, indices: Iterable[int] | None, status: int, times: int = 1) -> None:
        """The next `times` POSTs fail items at `indices` (None: every item) with
        `status` (e.g. 429, 500, 503 retryable; 400 not)."""
        chosen = None if indices is None else frozenset(indices)
        with self._lock:
            self._item_faults.extend([(chosen, status)] * times)

    def items(self, name: str | None = None, base_type: str | None = None) -> list[Item]:
        """Accepted items in arrival order, filtered by `Item.name` / baseType."""
        with self._lock:
            return [i for i in self._items
                    if (name is None or i.name == name)
                    and (base_type is None or i.base_type == base_type)]

    def posts(self) -> list[Post]:
        """POSTs in arrival order."""
        with self._lock:
            return sorted(self._posts, key=lambda p: p.seq)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._posts.clear()
            self._item_faults.clear()
            self._post_count = 0

    def _track(self, request: Request, match: re.Match) -> Response:
        with self._lock:
            self._post_count += 1
            seq = self._post_count
        return self._answer(request, seq, *self._process(request, seq))

    def _process(self, request: Request, seq: int) -> tuple[Response, str | None]:
        """The answer to a POST, and the client id of its bearer token."""
        client = None
        authorization = request.header("Authorization")
        if self.entra_only and request.path == "/v2/track":
            return self.error(401, "", "The legacy /v2/track endpoint does not accept "
                                       "Entra ID authentication; use /v2.1/track."), None
        if self.entra_only or authorization is not None:
            check = self.directory.check_bearer(authorization, self.audiences)
            if check.problem is not None:
                return self.error(401, "", f"An invalid authentication token was "
                                           f"provided ({check.problem})."), None
            client = check.grant.client_id
            if not self.directory.has_role(client, ROLE_PUBLISHER):
                return self.error(403, "", "The provided credentials have insufficient "
                                           "access to perform the requested "
                                           "operation."), client
        try:
            items = self._decode(request)
        except _BadBody as bad:
            return self.error(bad.status, "", str(bad)), client
        return self._judge(items, seq), client

    @staticmethod
    def _decode(request: Request) -> list[tuple[Any, int, str | None]]:
        """Items as (envelope or None, size in bytes, parse error or None)."""
        encoding = (request.header("Content-Encoding") or "identity").strip().lower()
        body = request.body
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                raise _BadBody(400, "The gzip body could not be decoded.") from None
        elif encoding != "identity":
            raise _BadBody(415, f"Content-Encoding {encoding} is not supported.")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type in _JSON_TYPES:
            try:
                document = _loads(body)
            except ValueError as exc:
                raise _BadBody(400, f"Invalid JSON: {exc}") from None
            if not isinstance(document, list):
                raise _BadBody(400, "The body must be a JSON array of telemetry items.")
            items = [(e, _compact_size(e), None) for e in document]
        elif content_type in _STREAM_TYPES:
            items = []
            for line in body.splitlines():
                if not line.strip():
                    continue
                try:
                    items.append((_loads(line), len(line), None))
                except ValueError as exc:
                    items.append((None, len(line), f"Invalid JSON: {exc}"))
        else:
            raise _BadBody(415, f"Content-Type {content_type or '(none)'} is not supported.")
        if not items:
            raise _BadBody(400, "The request contains no telemetry items.")
        if len(items) > MAX_ITEMS:
            raise _BadBody(400, f"{len(items)} items exceed the {MAX_ITEMS}-item limit.")
        return items

    def _judge(self, items: list[tuple[Any, int, str | None]], post: int) -> Response:
        with self._lock:
            chosen, fault_status = self._item_faults.popleft() if self._item_faults else (
                frozenset(), 0)
        errors, accepted = [], []
        for index, (envelope, size, parse_error) in enumerate(items):
            problems = [parse_error] if parse_error else self.rules.problems(envelope, size)
            if problems:
                errors.append({"index": index, "statusCode": 400,
                               "message": "; ".join(problems)})
            elif chosen is None or index in chosen:
                errors.append({"index": index, "statusCode": fault_status,
                               "message": "Injected item failure"})
            else:
                accepted.append(Item(post, index, envelope))
        with self._lock:
            self._items.extend(accepted)
        if not errors:
            status = 200
        elif not accepted and all(e["statusCode"] == 400 for e in errors):
            status = 400
        else:
            status = 206
        return Response.json(status, {"itemsReceived": len(items),
                                      "itemsAccepted": len(accepted), "errors": errors})

    def _answer(self, request: Request, seq: int, response: Response, client: str | None
                ) -> Response:
        document = json.loads(response.body)
        gzipped = (request.header("Content-Encoding") or "").strip().lower() == "gzip"
        with self._lock:
            self._posts.append(Post(seq=seq, path=request.path,
                                    status=response.status,
                                    items_received=document["itemsReceived"],
                                    items_accepted=document["itemsAccepted"],
                                    errors=tuple(document["errors"]), gzip=gzipped,
                                    authorized_by=client))
        return response
