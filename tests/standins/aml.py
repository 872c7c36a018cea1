"""Stand-in for the AML regional API: discovery, run history and metrics v2.

Routes (base URL = the discovery document's "api"; literal segments
case-insensitive, as ASP.NET routing is):
- GET  /discovery                                   (route "discovery", no auth)
- GET  {P}/runs/{runId}[/details]                   (route "run")
- GET  {P}/experimentids/{experimentId}/runs/{runId}[/details]   (route "run")
- GET  {P}/runs/{runId}/children[?$top=&$continuationtoken=]     (route "children")
- POST {M}/runs/{runId}/list   body {} or empty     (route "metrics_list")
- POST {M}/runs/{runId}/full   body {"metricName"}  (route "metrics_full")
with P = /history/v1.0/subscriptions/{sub}/resourceGroups/{rg}/providers/
Microsoft.MachineLearningServices/workspaces/{ws} and M the same under
/metric/v2.0. No api-version (the version is in the path).

Every route but discovery needs a bearer token for ARM (or ml.azure.com):
401 otherwise, 403 when the caller's "workspace" role was revoked; unknown
workspace or run -> 404. Runs come from fixtures.py and are answered in the
shape of the SDK's Run / RunDetails models: every key of the model present,
null when the fixture has no value (the service serializes nulls; inferred).
A run asked for under another experiment id is not found. Metric bodies that
are not empty must be JSON objects sent as application/json (415 otherwise,
inferred from ASP.NET's [FromBody]); `full` without metricName is 400.
startTime/endTime filters of `full` are ignored. Both metric answers are paged
as the service pages them (`continuationToken` and `nextLink` on every page
but the last; the client sends the token back in the next request's body, as
the AML SDK's MetricsClient does): `list` pages hold `list_page_size` metrics,
`full` pages `full_page_size` points (small by default, so a client that reads
only the first page misses metrics and last values). A token that is not one
this service gave is 400. `metricNamespace` selects the metrics of a namespace
(fixture metrics are in the default namespace "").

Errors: AML's ErrorResponse {"error": {"code", "message", "innerError", ...},
"correlation": {"operation", "request"}, ...}; codes UserError, ServiceError,
TransientError, RequestThrottled (an injected status picks one).
"""

import datetime
import json
import re
import urllib.parse
import uuid
from typing import Any

from .directory import AML, ARM, ROLE_WORKSPACE, Directory
from .fixtures import Catalog, Workspace
from .server import Request, Response, Route, Service

# Keys of the runhistory models (azure-ai-ml _restclient/runhistory/models).
RUN_KEYS = (
    "runNumber", "rootRunId", "createdUtc", "createdBy", "userId", "token",
    "tokenExpiryTimeUtc", "error", "warnings", "revision", "statusRevision", "runUuid",
    "parentRunUuid", "rootRunUuid", "hasVirtualParent", "lastStartTimeUtc",
    "currentComputeTime", "computeDuration", "effectiveStartTimeUtc", "lastModifiedBy",
    "lastModifiedUtc", "duration", "cancelationReason", "runId", "parentRunId",
    "experimentId", "status", "startTimeUtc", "endTimeUtc", "options", "isVirtual",
    "displayName", "name", "dataContainerId", "description", "hidden", "runType",
    "runTypeV2", "properties", "parameters", "actionUris", "scriptName", "target",
    "uniqueChildRunComputeTargets", "tags", "settings", "services", "inputDatasets",
    "outputDatasets", "runDefinition", "jobSpecification", "primaryMetricName",
    "createdFrom", "cancelUri", "completeUri", "diagnosticsUri", "computeRequest",
    "compute", "retainForLifetimeOfWorkspace", "queueingInfo", "activeChildRunId",
    "inputs", "outputs")
DETAILS_KEYS = (
    "runId", "runUuid", "parentRunUuid", "rootRunUuid", "target", "status", "parentRunId",
    "createdTimeUtc", "startTimeUtc", "endTimeUtc", "error", "warnings", "tags",
    "properties", "parameters", "services", "inputDatasets", "outputDatasets",
    "runDefinition", "logFiles", "jobCost", "revision", "runTypeV2", "settings",
    "computeRequest", "compute", "createdBy", "computeDuration", "effectiveStartTimeUtc",
    "runNumber", "rootRunId", "userId", "statusRevision", "hasVirtualParent",
    "currentComputeTime", "lastStartTimeUtc", "lastModifiedBy", "lastModifiedUtc",
    "duration", "inputs", "outputs")
AML_CODES = ("UserError", "ServiceError", "ValidationError", "AzureStorageError",
             "TransientError", "RequestThrottled")

_WORKSPACE = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
              r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
_HISTORY = r"/history/v1\.0" + _WORKSPACE
_METRIC = r"/metric/v2\.0" + _WORKSPACE


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if isinstance(value, int):
        return "Int"
    if isinstance(value, float):
        return "Double"
    return "String"


class AmlService(Service):
    def __init__(self, directory: Directory, catalog: Catalog) -> None:
        self.directory = directory
        self.catalog = catalog
        self.base_url = ""  # set by the stack once the server has its port
        self.list_page_size = 1
        self.full_page_size = 2

    def routes(self) -> list[Route]:
        flags = re.IGNORECASE
        return [
            Route("discovery", ("GET",), re.compile(r"/discovery", flags), self._discovery),
            Route("run", ("GET",), re.compile(
                _HISTORY + r"(?:/experimentids/(?P<exp>[^/]+))?/runs/(?P<run>[^/]+)"
                           r"(?P<details>/details)?", flags), self._run),
            Route("children", ("GET",), re.compile(
                _HISTORY + r"/runs/(?P<run>[^/]+)/children", flags), self._children),
            Route("metrics_list", ("POST",), re.compile(
                _METRIC + r"/runs/(?P<run>[^/]+)/list", flags), self._metrics_list),
            Route("metrics_full", ("POST",), re.compile(
                _METRIC + r"/runs/(?P<run>[^/]+)/full", flags), self._metrics_full),
        ]

    def error(self, status: int, code: str, message: str, inner: str | None = None
              ) -> Response:
        if code not in AML_CODES:
            inner = inner or code
            code = ("RequestThrottled" if status == 429 else
                    "TransientError" if status in (502, 503, 504) else
                    "ServiceError" if status >= 500 else "UserError")
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        return Response.json(status, {
            "error": {"code": code, "severity": None, "message": message,
                      "messageFormat": None, "messageParameters": None,
                      "referenceCode": None, "detailsUri": None, "target": None,
                      "details": [],
                      "innerError": {"code": inner, "innerError": None} if inner else None,
                      "debugInfo": None, "additionalInfo": None},
            "correlation": {"operation": uuid.uuid4().hex, "request": uuid.uuid4().hex[:16]},
            "environment": "eastus", "location": "eastus", "time": now,
            "componentName": "run-history"})

    def _discovery(self, request: Request, match: re.Match) -> Response:
        base = self.base_url
        return Response.json(200, {
            "api": base, "catalog": "https://catalog.cortanaanalytics.com",
            "experimentation": base,
            "gallery": "https://gallery.cortanaintelligence.com/project", "history": base,
            "hyperdrive": base, "labeling": base, "modelmanagement": base,
            "pipelines": base, "studio": "https://ml.azure.com"})

    def _authorize(self, request: Request, match: re.Match
                   ) -> tuple[Workspace | None, Response | None]:
        """The workspace of the path, or the error answer (401/403/404)."""
        check = self.directory.check_bearer(request.header("Authorization"), (ARM, AML))
        if check.problem is not None:
            return None, self.error(401, "UserError", f"Authentication failed: token "
                                    f"{check.problem}.", "AuthenticationError")
        if not self.directory.has_role(check.grant.client_id, ROLE_WORKSPACE):
            return None, self.error(403, "UserError",
                                    f"The client '{check.grant.client_id}' does not have "
                                    f"permission on workspace '{match['ws']}'.",
                                    "AuthorizationError")
        workspace = self.catalog.find(match["sub"], match["rg"], match["ws"])
        if workspace is None:
            return None, self.error(404, "UserError", f"Workspace '{match['ws']}' was not "
                                    "found.", "NotFoundError")
        return workspace, None

    def _find_run(self, request: Request, match: re.Match
                  ) -> tuple[Workspace | None, dict | None, Response | None]:
        workspace, refusal = self._authorize(request, match)
        if refusal is not None:
            return None, None, refusal
        run_id = urllib.parse.unquote(match["run"])
        run = self.catalog.run(workspace, run_id)
        experiment = match.groupdict().get("exp")
        if run is None or (experiment is not None and
                           str(run.get("experimentId", "")).lower() != experiment.lower()):
            return None, None, self.error(404, "UserError", f"Run {run_id} was not found",
                                          "NotFoundError")
        return workspace, run, None

    def _run(self, request: Request, match: re.Match) -> Response:
        _, run, refusal = self._find_run(request, match)
        if refusal is not None:
            return refusal
        if match["details"]:
            return Response.json(200, _details(run))
        return Response.json(200, _run_document(run))

    def _children(self, request: Request, match: re.Match) -> Response:
        workspace, run, refusal = self._find_run(request, match)
        if refusal is not None:
            return refusal
        children = [_run_document(c) for c in self.catalog.children(workspace, run["runId"])]
        try:
            top = int(request.query_one("$top") or len(children) or 1)
            start = int(request.query_one("$continuationtoken") or 0)
        except ValueError:
            return self.error(400, "UserError", "Invalid $top or $continuationtoken.",
                              "BadArgument")
        page, end = children[start:start + top], start + top
        token = str(end) if end < len(children) else None
        query = urllib.parse.urlencode({"$top": top, "$continuationtoken": token})
        return Response.json(200, {
            "value": page, "continuationToken": token,
            "nextLink": f"{self.base_url}{request.path}?{query}" if token else None})

    def _body(self, request: Request) -> tuple[dict | None, Response | None]:
        if not request.body.strip():
            return {}, None
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return None, self.error(415, "UserError", "Unsupported Media Type",
                                    "UnsupportedMediaType")
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return None, self.error(400, "UserError", "The request body is not a JSON "
                                    "object.", "BadArgument")
        return body, None

    def _page(self, request: Request, body: dict, items: list, size: int, document: dict
              ) -> Response:
        """One page of `items` per the body's continuationToken, in `document`."""
        token = body.get("continuationToken")
        start = 0
        if token is not None:
            match = re.fullmatch(r"page-(\d+)", token) if isinstance(token, str) else None
            if match is None or int(match[1]) >= len(items):
                return self.error(400, "UserError", "The continuation token is not valid.",
                                  "BadArgument")
            start = int(match[1])
        end = start + size
        following = f"page-{end}" if end < len(items) else None
        return Response.json(200, dict(
            document, value=items[start:end], continuationToken=following,
            nextLink=f"{self.base_url}{request.path}" if following else None))

    def _metrics_list(self, request: Request, match: re.Match) -> Response:
        _, run, refusal = self._find_run(request, match)
        body, bad = self._body(request)
        if refusal is not None or bad is not None:
            return refusal or bad
        namespace = body.get("metricNamespace")
        value = [{"metricKey": {"namespace": "", "name": name, "labels": None,
                                "labelValues": None, "columnNames": None},
                  "columns": {name: _value_type(points[0]["value"]) if points else "Double"},
                  "properties": {"uxMetricType": "azureml.v1.scalar"}}
                 for name, points in run.get("metrics", {}).items()
                 if namespace in (None, "")]
        return self._page(request, body, value, self.list_page_size, {})

    def _metrics_full(self, request: Request, match: re.Match) -> Response:
        _, run, refusal = self._find_run(request, match)
        body, bad = self._body(request)
        if refusal is not None or bad is not None:
            return refusal or bad
        name = body.get("metricName")
        if not isinstance(name, str) or not name:
            return self.error(400, "UserError", "metricName is required.", "BadArgument")
        points = run.get("metrics", {}).get(name)
        if points is None or body.get("metricNamespace") not in (None, ""):
            return self.error(404, "UserError", f"Metric {name} was not found for run "
                              f"{run['runId']}.", "NotFoundError")
        value = [{"metricId": str(uuid.uuid4()), "createdUtc": p["createdUtc"],
                  "step": p["step"], "data": {name: p["value"]}} for p in points]
        return self._page(request, body, value, self.full_page_size, {
            "dataContainerId": run.get("dataContainerId"), "name": name,
            "columns": {name: _value_type(points[0]["value"]) if points else "Double"},
            "properties": {"uxMetricType": "azureml.v1.scalar"}, "namespace": "",
            "standardSchemaId": None})


def _run_document(run: dict) -> dict:
    return {key: run.get(key) for key in RUN_KEYS}


def _details(run: dict) -> dict:
    run = dict(run, createdTimeUtc=run.get("createdUtc"))
    return {key: run.get(key) for key in DETAILS_KEYS}
