"""Stand-in for the App Service / Functions managed identity endpoint
(IDENTITY_ENDPOINT, api-version 2019-08-01).

The real endpoint is plain HTTP on a local port (`http://127.0.0.1:41xxx/msi/token`),
so this one is too: a client that insists on https for IDENTITY_ENDPOINT fails
here as it would in Azure.

GET /msi/token?api-version=2019-08-01&resource=<uri>[&client_id=<id>]  (route "msi")
- header X-IDENTITY-HEADER must equal IDENTITY_HEADER: missing -> 400, wrong ->
  401 (statuses inferred; the platform documents only that it is required);
- api-version other than 2019-08-01 -> 400 UnsupportedApiVersion (wording seen
  from the platform);
- resource: an identifier URI the directory knows, else 400 with the AADSTS500011
  text relayed (inferred);
- client_id: a user-assigned identity; without it the system-assigned identity,
  if enabled. Otherwise 400 "Unable to load the proper Managed Identity.".
  principal_id / mi_res_id selection is not supported (400).
Success: {"access_token", "expires_on", "resource", "token_type": "Bearer",
"client_id"}; `expires_on` as the platform sends it ("string": epoch seconds in a
string), or as other hosts do ("number", or "date": "11/28/2026 10:00:00 +00:00").
Errors: {"statusCode": n, "message": "...", "correlationId": "..."}.

With `cache`, the endpoint behaves as the platform's does (a managed identity
endpoint returns its cached token, which can be close to expiry): one token per
resource and identity, handed out again until it has expired, whatever time it
has left.
"""

import datetime
import re
import threading
import time
import uuid

from .directory import RESOURCES, Directory
from .server import Request, Response, Route, Service

API_VERSION = "2019-08-01"
EXPIRES_ON_FORMATS = ("string", "number", "date")


class ManagedIdentityService(Service):
    scheme = "http"

    def __init__(self, directory: Directory, identity_header: str | None = None,
                 lifetime: int = 86400, expires_on_format: str = "string",
                 system_assigned: bool = True, cache: bool = False) -> None:
        if expires_on_format not in EXPIRES_ON_FORMATS:
            raise ValueError(f"expires_on_format must be one of {EXPIRES_ON_FORMATS}")
        self.directory = directory
        self.identity_header = identity_header or uuid.uuid4().hex
        self.lifetime = lifetime
        self.expires_on_format = expires_on_format
        self.system_assigned = system_assigned
        self.cache = cache
        self._cached = {}
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        return [Route("msi", ("GET",), re.compile(r"/msi/token"), self._token)]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"statusCode": status, "message": message,
                                      "correlationId": str(uuid.uuid4())})

    def _token(self, request: Request, match: re.Match) -> Response:
        secret = request.header("X-IDENTITY-HEADER")
        if secret is None:
            return self.error(400, "", "The X-IDENTITY-HEADER header is required.")
        if secret != self.identity_header:
            return self.error(401, "", "Unauthorized: X-IDENTITY-HEADER does not match.")
        version = request.query_one("api-version")
        if version != API_VERSION:
            return self.error(400, "", f"(UnsupportedApiVersion) The HTTP resource that "
                                       f"matches the request URI '{request.url}' does not "
                                       f"support the API version '{version}'.")
        resource = request.query_one("resource")
        if not resource:
            return self.error(400, "", "The 'resource' parameter is required.")
        if resource not in RESOURCES:
            return self.error(400, "", f"AADSTS500011: The resource principal named "
                                       f"{resource} was not found in the tenant named "
                                       f"{self.directory.tenant_id}.")
        client_id = self._identity(request)
        if client_id is None:
            return self.error(400, "", "Unable to load the proper Managed Identity.")
        grant = self._grant(resource, client_id)
        return Response.json(200, {"access_token": grant.token,
                                   "expires_on": self._expires_on(grant.expires_at),
                                   "resource": resource, "token_type": "Bearer",
                                   "client_id": client_id})

    def _grant(self, resource: str, client_id: str):
        with self._lock:
            grant = self._cached.get((resource, client_id)) if self.cache else None
            if grant is None or grant.expires_at <= time.time():
                grant = self.directory.issue(resource, client_id, "managed_identity",
                                             self.lifetime)
                self._cached[(resource, client_id)] = grant
            return grant

    def _identity(self, request: Request) -> str | None:
        if "principal_id" in request.query or "mi_res_id" in request.query:
            return None
        client_id = request.query_one("client_id")
        if client_id is None:
            return self.directory.system_identity if self.system_assigned else None
        return client_id if client_id in self.directory.user_identities else None

    def _expires_on(self, expires_at: float) -> int | str:
        epoch = int(expires_at)
        if self.expires_on_format == "number":
            return epoch
        if self.expires_on_format == "string":
            return str(epoch)
        moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        return moment.strftime("%m/%d/%Y %H:%M:%S +00:00")
