"""Stand-in for Azure Resource Manager, reading an AML workspace.

GET /subscriptions/{sub}/resourceGroups/{rg}/providers/
    Microsoft.MachineLearningServices/workspaces/{ws}?api-version=...
(route "workspace"), and its compute targets,
GET .../workspaces/{ws}/computes/{name}?api-version=...   (route "compute"),
answered as a ComputeResource (location, properties.computeType,
properties.properties.vmSize / vmPriority / osType / scaleSettings, as the
2024-04-01 examples in azure-rest-api-specs show) from the workspace's
"computes" in the fixtures. Like ARM, literal path segments and names compare
case-insensitively, and the checks run in ARM's order:
1. bearer token for an ARM audience (directory.py): 401 AuthenticationFailed
   (header missing or not "Bearer ..."), InvalidAuthenticationToken (unknown
   token), ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience,
   each with a WWW-Authenticate challenge naming the authority;
2. api-version: missing -> 400 MissingApiVersionParameter; not one the
   provider supports -> 400 NoRegisteredProviderFound (the supported list is a
   subset of the real one);
3. 404 SubscriptionNotFound;
4. 403 AuthorizationFailed when the caller's "workspace" role was revoked (ARM
   authorizes before the resource provider looks the resource up);
5. 404 ResourceGroupNotFound / ResourceNotFound (the workspace, then the
   compute).
Success: the workspace document, with properties.discoveryUrl pointing at the
AML stand-in's /discovery. Errors: {"error": {"code", "message"}}.
"""

import datetime
import re
import urllib.parse
import uuid

from .directory import ARM, ROLE_WORKSPACE, Directory
from .fixtures import Catalog, Workspace
from .server import Request, Response, Route, Service

API_VERSIONS = ("2023-04-01", "2023-10-01", "2024-04-01", "2024-10-01")
ALLOWED_AUDIENCES = ("https://management.core.windows.net/",
                     "https://management.core.windows.net",
                     "https://management.azure.com/", "https://management.azure.com")

_UNAUTHORIZED = {
    "missing": ("AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing."),
    "malformed": ("AuthenticationFailed", "Authentication failed. The 'Authorization' "
                                          "header is provided in an invalid format."),
    "unknown": ("InvalidAuthenticationToken", "The access token is invalid."),
    "expired": ("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier "
                                              "than current UTC time."),
}


class ArmService(Service):
    def __init__(self, directory: Directory, catalog: Catalog, authority: str,
                 aml_base_url: str) -> None:
        self.directory = directory
        self.catalog = catalog
        self.authority = authority  # Entra stand-in base URL, named in challenges
        self.aml_base_url = aml_base_url

    def routes(self) -> list[Route]:
        return [Route("workspace", ("GET",), re.compile(
            r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
            r"Microsoft\.MachineLearningServices/workspaces/([^/]+)", re.IGNORECASE),
            self._workspace),
            Route("compute", ("GET",), re.compile(
                r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                r"Microsoft\.MachineLearningServices/workspaces/([^/]+)/computes/([^/]+)",
                re.IGNORECASE), self._compute)]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"error": {"code": code, "message": message}},
                             [("x-ms-request-id", str(uuid.uuid4())),
                              ("x-ms-correlation-request-id", str(uuid.uuid4()))])

    def _unauthorized(self, code: str, message: str) -> Response:
        response = self.error(401, code, message)
        response.headers.append((
            "WWW-Authenticate",
            f'Bearer authorization_uri="{self.authority}/{self.directory.tenant_id}", '
            f'error="invalid_token", error_description="{message}"'))
        return response

    def _compute(self, request: Request, match: re.Match) -> Response:
        workspace, refusal = self._find_workspace(request, match, "workspaces/computes")
        if refusal is not None:
            return refusal
        name = urllib.parse.unquote(match[4])
        compute = next((c for c in workspace.computes
                        if c["name"].lower() == name.lower()), None)
        if compute is None:
            return self.error(404, "ResourceNotFound",
                              f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                              f"{workspace.name}/computes/{name}' under resource group "
                              f"'{workspace.resource_group}' was not found.")
        document = dict(compute, id=f"{workspace.resource_id}/computes/{compute['name']}",
                        type="Microsoft.MachineLearningServices/workspaces/computes")
        return Response.json(200, document, [("x-ms-request-id", str(uuid.uuid4()))])

    def _workspace(self, request: Request, match: re.Match) -> Response:
        workspace, refusal = self._find_workspace(request, match, "workspaces")
        if refusal is not None:
            return refusal
        return Response.json(200, self._document(workspace),
                             [("x-ms-request-id", str(uuid.uuid4()))])

    def _find_workspace(self, request: Request, match: re.Match, kind: str
                        ) -> tuple[Workspace | None, Response | None]:
        """The workspace of the path after ARM's checks, or the refusal."""
        check = self.directory.check_bearer(request.header("Authorization"), (ARM,))
        if check.problem == "audience":
            return None, self._unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource "
                f"'{check.detail}'. It should exactly match with one of the allowed "
                f"audiences {','.join(repr(a) for a in ALLOWED_AUDIENCES)}.")
        if check.problem is not None:
            return None, self._unauthorized(*_UNAUTHORIZED[check.problem])

        version = request.query_one("api-version")
        if not version:
            return None, self.error(400, "MissingApiVersionParameter",
                              "The api-version query parameter (?api-version=) is required "
                              "for all requests.")
        if version not in API_VERSIONS:
            return None, self.error(400, "NoRegisteredProviderFound",
                              f"No registered resource provider found for location "
                              f"'eastus' and API version '{version}' for type '{kind}'. "
                              f"The supported api-versions are '{', '.join(API_VERSIONS)}'.")

        sub, rg, name = match.groups()[:3]
        if not self.catalog.has_subscription(sub):
            return None, self.error(404, "SubscriptionNotFound",
                              f"The subscription '{sub}' could not be found.")
        if not self.directory.has_role(check.grant.client_id, ROLE_WORKSPACE):
            client = check.grant.client_id
            return None, self.error(403, "AuthorizationFailed",
                              f"The client '{client}' with object id '{client}' does not "
                              f"have authorization to perform action "
                              f"'Microsoft.MachineLearningServices/{kind}/read' over "
                              f"scope '{request.path}' or the scope is invalid. If access "
                              f"was recently granted, please refresh your credentials.")
        if not self.catalog.has_resource_group(sub, rg):
            return None, self.error(404, "ResourceGroupNotFound",
                              f"Resource group '{rg}' could not be found.")
        workspace = self.catalog.find(sub, rg, name)
        if workspace is None:
            return None, self.error(404, "ResourceNotFound",
                              f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                              f"{name}' under resource group '{rg}' was not found. For more "
                              f"details please go to https://aka.ms/ARMResourceNotFoundFix")
        return workspace, None

    def _document(self, w: Workspace) -> dict:
        created = datetime.datetime(2025, 1, 6, 9, 30, tzinfo=datetime.timezone.utc)
        group = f"/subscriptions/{w.subscription_id}/resourceGroups/{w.resource_group}"
        return {
            "id": w.resource_id, "name": w.name,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": w.location, "tags": {}, "etag": None, "kind": "Default",
            "sku": {"name": "Basic", "tier": "Basic"},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                         "tenantId": self.directory.tenant_id},
            "properties": {
                "friendlyName": w.name, "description": "", "provisioningState": "Succeeded",
                "workspaceId": w.workspace_id,
                "discoveryUrl": f"{self.aml_base_url}/discovery",
                "mlFlowTrackingUri": f"azureml://{w.location}.api.azureml.ms/mlflow/v1.0"
                                     f"{w.resource_id}",
                "storageAccount": f"{group}/providers/Microsoft.Storage/storageAccounts/"
                                  f"{w.name.replace('-', '')}storage",
                "keyVault": f"{group}/providers/Microsoft.KeyVault/vaults/{w.name}-kv",
                "applicationInsights": f"{group}/providers/Microsoft.Insights/components/"
                                       f"{w.name}-ai",
                "hbiWorkspace": False, "publicNetworkAccess": "Enabled",
                "v1LegacyMode": False, "enableDataIsolation": False,
            },
            "systemData": {"createdAt": created.isoformat().replace("+00:00", "Z"),
                           "createdBy": "owner@example.com", "createdByType": "User"},
        }
