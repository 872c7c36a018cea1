"""Every stand-in started together, with the settings a handler needs to use them.

In-process use (unittest):

    with Stack() as stack:                      # or Stack(fixtures=path, ...)
        env = stack.env("secret")               # or "certificate", "workload_identity", ...
        ... run the handler with env ...
        stack.ingestion.faults.add("track", Fault.error(503, retry_after=1))
        stack.ingestion.service.items(name="AmlRunCompleted")
        stack.entra.journal.stats()["connections"]

Servers (each a server.StandinServer: `.base_url`, `.journal`, `.faults`,
`.service`): `entra` (token endpoint), `msi` (managed identity, plain HTTP),
`arm`, `aml` (discovery, run history, metrics), `prices` (the Azure Retail
Prices API), `ingestion` and `ingestion_alt` (a second App Insights endpoint,
target of redirect tests).
Shared state: `directory` (tenant, app registration, identities, roles, issued
tokens) and `catalog` (workspaces and runs from the fixtures).

One app registration holds all three service-principal credentials: a secret,
the test certificate (pki.client_*), and a federated token file
(`federated_token_file`, rewritten by `rotate_federated_token()`). The
managed identity endpoint knows the system-assigned identity and one
user-assigned identity (`user_identity`).
"""

import dataclasses
import pathlib
import tempfile
import uuid

from .aml import AmlService
from .arm import ArmService
from .assertion import federated_token
from .directory import AppRegistration, Directory
from .entra import EntraService
from .fixtures import DEFAULT_FIXTURES, Catalog
from .ingestion import IngestionService
from .msi import ManagedIdentityService
from .prices import PricesService
from .server import StandinServer
from .swagger import SwaggerSchema
from .tls import create_pki

# Entra ID secrets use [A-Za-z0-9~._-]; older ones also held + / =, which a
# client must percent-encode in the form body.
CLIENT_SECRET = "Xq8Q~stand.in-secret_w1th+sl/sh=="
CREDENTIALS = ("secret", "certificate", "certificate_encrypted",
               "certificate_legacy_encrypted", "workload_identity", "managed_identity",
               "user_managed_identity")


class Stack:
    def __init__(self, fixtures: pathlib.Path = DEFAULT_FIXTURES,
                 workdir: pathlib.Path | None = None, token_lifetime: int = 3599,
                 msi_expires_on: str = "string", ingestion_entra_only: bool = False) -> None:
        self._fixtures = fixtures
        self._workdir = workdir
        self._token_lifetime = token_lifetime
        self._msi_expires_on = msi_expires_on
        self._ingestion_entra_only = ingestion_entra_only
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._servers: list[StandinServer] = []

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "Stack":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="standins-")
            self._workdir = pathlib.Path(self._tmp.name)
        workdir = pathlib.Path(self._workdir)
        self.pki = create_pki(workdir / "pki")
        self.directory = Directory()
        self.federated_token_file = workdir / "federated-token"
        self.rotate_federated_token()
        self.app = self.directory.register(AppRegistration(
            client_id=str(uuid.uuid4()), client_secret=CLIENT_SECRET,
            certificate_pem=self.pki.client_cert.read_bytes(),
            federated_token_file=str(self.federated_token_file)))
        self.user_identity = self.directory.add_user_identity()
        self.catalog = Catalog.load(self._fixtures)
        self.instrumentation_key = str(uuid.uuid4())
        schema = SwaggerSchema.load()

        self.entra = self._serve(EntraService(self.directory, expires_in=self._token_lifetime))
        self.msi = self._serve(ManagedIdentityService(
            self.directory, expires_on_format=self._msi_expires_on), tls=False)
        aml = AmlService(self.directory, self.catalog)
        self.aml = self._serve(aml)
        aml.base_url = self.aml.base_url
        self.arm = self._serve(ArmService(self.directory, self.catalog,
                                          authority=self.entra.base_url,
                                          aml_base_url=self.aml.base_url))
        prices = PricesService()
        self.prices = self._serve(prices)
        prices.base_url = self.prices.base_url
        self.ingestion, self.ingestion_alt = (
            self._serve(IngestionService(self.directory, self.instrumentation_key, schema,
                                         entra_only=self._ingestion_entra_only))
            for _ in range(2))

    def _serve(self, service, tls: bool = True) -> StandinServer:
        server = StandinServer(service, self.pki.server_context() if tls else None).start()
        self._servers.append(server)
        return server

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def reset(self) -> None:
        """Forgets every stand-in's faults and requests, and the accepted telemetry."""
        for server in self._servers:
            server.faults.clear()
            server.journal.clear()
        self.ingestion.service.clear()
        self.ingestion_alt.service.clear()

    def rotate_federated_token(self, lifetime: float = 3600.0) -> str:
        """Writes a fresh federated token to the token file; returns it."""
        token = federated_token(lifetime=lifetime)
        self.federated_token_file.write_text(token)
        return token

    @property
    def workspace(self):
        """The first workspace of the fixtures (what env() watches)."""
        return self.catalog.workspaces[0]

    @property
    def token_url(self) -> str:
        return f"{self.entra.base_url}/{self.directory.tenant_id}/oauth2/v2.0/token"

    def credential_env(self, credential: str) -> dict[str, str]:
        """The settings of one credential kind (see CREDENTIALS)."""
        principal = {"AZURE_TENANT_ID": self.directory.tenant_id,
                     "AZURE_CLIENT_ID": self.app.client_id}
        certificate = dict(principal, AZURE_CLIENT_CERTIFICATE_PATH=str(self.pki.client_pem))
        encrypted = dict(principal, AZURE_CLIENT_CERTIFICATE_PASSWORD=self.pki.client_password)
        managed = {"IDENTITY_ENDPOINT": f"{self.msi.base_url}/msi/token",
                   "IDENTITY_HEADER": self.msi.service.identity_header}
        return {
            "secret": dict(principal, AZURE_CLIENT_SECRET=CLIENT_SECRET),
            "certificate": certificate,
            "certificate_encrypted": dict(
                encrypted, AZURE_CLIENT_CERTIFICATE_PATH=str(self.pki.client_pem_encrypted)),
            "certificate_legacy_encrypted": dict(
                encrypted,
                AZURE_CLIENT_CERTIFICATE_PATH=str(self.pki.client_pem_legacy_encrypted)),
            "workload_identity": dict(
                principal, AZURE_FEDERATED_TOKEN_FILE=str(self.federated_token_file)),
            "managed_identity": managed,
            "user_managed_identity": dict(managed, AZURE_CLIENT_ID=self.user_identity),
        }[credential]

    def env(self, credential: str | None = "secret", ingestion_aad: bool = False
            ) -> dict[str, str]:
        """Settings for a handler: endpoints, CA, the watched workspace, one
        credential (None: none), and with `ingestion_aad` Entra ID ingestion
        through the managed identity (user-assigned one for
        "user_managed_identity")."""
        workspace = self.workspace
        env = {
            "SSL_CERT_FILE": str(self.pki.ca),
            "AZURE_AUTHORITY_HOST": f"{self.entra.base_url}/",
            "AZURE_RESOURCE_MANAGER_ENDPOINT": self.arm.base_url,
            "HANDLER_RETAIL_PRICES_ENDPOINT": self.prices.base_url,
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                f"InstrumentationKey={self.instrumentation_key};"
                f"IngestionEndpoint={self.ingestion.base_url}/",
            "SUBSCRIPTION_ID": workspace.subscription_id,
            "AML_RESOURCE_GROUP": workspace.resource_group,
            "AML_WORKSPACE_NAME": workspace.name,
        }
        if credential is not None:
            env.update(self.credential_env(credential))
        if ingestion_aad:
            env.update(self.credential_env("managed_identity"))
            env["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] = "Authorization=AAD" + (
                f";ClientId={self.user_identity}" if credential == "user_managed_identity"
                else "")
        return env

    def describe(self) -> dict:
        """Everything a shell script needs, JSON-ready (written by the CLI)."""
        return {
            "ca": str(self.pki.ca),
            "urls": {"authority": self.entra.base_url, "token": self.token_url,
                     "msi": f"{self.msi.base_url}/msi/token", "arm": self.arm.base_url,
                     "aml": self.aml.base_url, "prices": self.prices.base_url,
                     "ingestion": self.ingestion.base_url,
                     "ingestion_alt": self.ingestion_alt.base_url},
            "tenant_id": self.directory.tenant_id,
            "client_id": self.app.client_id,
            "client_secret": CLIENT_SECRET,
            "client_certificate": {
                "certificate": str(self.pki.client_cert), "key": str(self.pki.client_key),
                "pem": str(self.pki.client_pem),
                "pem_encrypted": str(self.pki.client_pem_encrypted),
                "pem_legacy_encrypted": str(self.pki.client_pem_legacy_encrypted),
                "password": self.pki.client_password},
            "federated_token_file": str(self.federated_token_file),
            "identity_header": self.msi.service.identity_header,
            "system_assigned_client_id": self.directory.system_identity,
            "user_assigned_client_id": self.user_identity,
            "instrumentation_key": self.instrumentation_key,
            "workspace": {"subscription_id": self.workspace.subscription_id,
                          "resource_group": self.workspace.resource_group,
                          "name": self.workspace.name},
            "env": self.env("secret"),
            "credential_env": {name: self.credential_env(name) for name in CREDENTIALS},
        }

    def dump(self) -> dict:
        """Journals and accepted telemetry, JSON-ready (Authorization masked)."""
        servers = {"entra": self.entra, "msi": self.msi, "arm": self.arm, "aml": self.aml,
                   "prices": self.prices, "ingestion": self.ingestion, "ingestion_alt": self.ingestion_alt}
        return {
            "servers": {name: {"stats": s.journal.stats(),
                               "exchanges": [e.summary() for e in s.journal.exchanges()]}
                        for name, s in servers.items()},
            "telemetry": {name: {"items": [i.envelope for i in s.service.items()],
                                 "posts": [dataclasses.asdict(p) for p in s.service.posts()]}
                          for name, s in (("ingestion", self.ingestion),
                                          ("ingestion_alt", self.ingestion_alt))},
        }
