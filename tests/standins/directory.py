"""The Entra ID tenant the stand-ins share: who exists, what they may do, which
access tokens were issued.

- App registrations (service principals): client id, optional secret,
  optional certificate (its PEM), optional workload-identity federation (a
  token file whose current content is the one federated token accepted).
- Managed identities: the system-assigned one and user-assigned ones, by
  client id, reachable through the managed identity endpoint.
- Role assignments: every principal holds "workspace" (read the AML workspace
  and its runs: ARM + AML) and "publisher" (Monitoring Metrics Publisher on the
  App Insights resource) until a test revokes one.
- Issued tokens: opaque random strings, each recorded with its audience,
  client id, credential kind and expiry. Resource servers call
  `check_bearer()` with the audiences they accept.

Resources are named by identifier URI exactly as Entra ID knows them (scope =
URI + "/.default"): ARM has both `https://management.azure.com/` and the URI
without slash (and the classic management.core.windows.net pair); Azure
Monitor only `https://monitor.azure.com/` (`https://monitor.azure.us/` and
`https://monitor.azure.cn/` in the sovereign clouds; hence its documented scope
`https://monitor.azure.com//.default`; a scope `https://monitor.azure.com/.default`
names an unknown resource: inferred from that documentation); AML also takes
tokens for `https://ml.azure.com`.

Thread-safe.
"""

import base64
import dataclasses
import hashlib
import secrets
import threading
import time
import uuid

ARM, MONITOR, AML = "arm", "monitor", "aml"
# Azure Monitor in the sovereign clouds (Azure Government, Azure China): other
# audiences, so a public-cloud token is refused there.
MONITOR_US, MONITOR_CN = "monitor_us", "monitor_cn"

RESOURCES = {
    "https://management.azure.com/": ARM,
    "https://management.azure.com": ARM,
    "https://management.core.windows.net/": ARM,
    "https://management.core.windows.net": ARM,
    "https://monitor.azure.com/": MONITOR,
    "https://monitor.azure.us/": MONITOR_US,
    "https://monitor.azure.cn/": MONITOR_CN,
    "https://ml.azure.com/": AML,
    "https://ml.azure.com": AML,
}

ROLE_WORKSPACE, ROLE_PUBLISHER = "workspace", "publisher"


def pem_to_der(pem: bytes) -> bytes:
    """The DER bytes of the first certificate in a PEM text."""
    text = pem.decode()
    begin = text.index("-----BEGIN CERTIFICATE-----") + len("-----BEGIN CERTIFICATE-----")
    return base64.b64decode(text[begin:text.index("-----END CERTIFICATE-----")])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclasses.dataclass
class AppRegistration:
    client_id: str
    client_secret: str | None = None
    certificate_pem: bytes | None = None  # public certificate uploaded to the app
    federated_token_file: str | None = None  # the file's content is the accepted token

    def thumbprints(self) -> dict[str, str]:
        """{"x5t": b64url(SHA-1 of DER), "x5t#S256": b64url(SHA-256 of DER)}."""
        der = pem_to_der(self.certificate_pem)
        return {"x5t": b64url(hashlib.sha1(der).digest()),
                "x5t#S256": b64url(hashlib.sha256(der).digest())}


@dataclasses.dataclass(frozen=True)
class Grant:
    """An issued access token."""

    token: str
    audience: str  # ARM, MONITOR or AML
    resource: str  # the identifier URI requested
    client_id: str
    kind: str  # client_secret, client_certificate, workload_identity, managed_identity
    issued_at: float
    expires_at: float


@dataclasses.dataclass(frozen=True)
class BearerCheck:
    """Outcome of `Directory.check_bearer`: a grant, or why not."""

    grant: Grant | None
    problem: str | None  # missing, malformed, unknown, expired, audience
    detail: str = ""


class Directory:
    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.apps: dict[str, AppRegistration] = {}
        self.system_identity = str(uuid.uuid4())  # client id of the system-assigned MI
        self.user_identities: set[str] = set()
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._revoked: set[tuple[str, str]] = set()

    def register(self, app: AppRegistration) -> AppRegistration:
        self.apps[app.client_id] = app
        return app

    def add_user_identity(self, client_id: str | None = None) -> str:
        client_id = client_id or str(uuid.uuid4())
        self.user_identities.add(client_id)
        return client_id

    def revoke(self, client_id: str, role: str) -> None:
        with self._lock:
            self._revoked.add((client_id, role))

    def has_role(self, client_id: str, role: str) -> bool:
        with self._lock:
            return (client_id, role) not in self._revoked

    def issue(self, resource: str, client_id: str, kind: str, lifetime: float) -> Grant:
        now = time.time()
        grant = Grant(token=secrets.token_urlsafe(48), audience=RESOURCES[resource],
                      resource=resource, client_id=client_id, kind=kind, issued_at=now,
                      expires_at=now + lifetime)
        with self._lock:
            self._grants[grant.token] = grant
        return grant

    def grants(self, audience: str | None = None) -> list[Grant]:
        """Tokens issued so far, in order, optionally for one audience."""
        with self._lock:
            return [g for g in self._grants.values()
                    if audience is None or g.audience == audience]

    def check_bearer(self, authorization: str | None, audiences: tuple[str, ...]
                     ) -> BearerCheck:
        """Validates an Authorization header value against accepted audiences."""
        if not authorization:
            return BearerCheck(None, "missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return BearerCheck(None, "malformed")
        with self._lock:
            grant = self._grants.get(token.strip())
        if grant is None:
            return BearerCheck(None, "unknown")
        if grant.expires_at <= time.time():
            return BearerCheck(None, "expired")
        if grant.audience not in audiences:
            return BearerCheck(None, "audience", grant.resource)
        return BearerCheck(grant, None)
