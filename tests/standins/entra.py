"""Stand-in for the Microsoft Entra ID token endpoint (v2.0, client credentials).

Routes (base URL = AZURE_AUTHORITY_HOST):
- POST /{tenant}/oauth2/v2.0/token  (route "token")
- GET  /{tenant}/v2.0/.well-known/openid-configuration  (route "openid")

The token request must be `application/x-www-form-urlencoded` with
grant_type=client_credentials, client_id, one scope `<resource>/.default` for a
resource the tenant knows (directory.py), and exactly one credential:
- client_secret equal to the app's secret;
- client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
  and client_assertion =
  - a certificate assertion (iss = client id): alg RS256 or PS256, typ JWT,
    x5t (or x5t#S256) naming the app's certificate, signature verified with
    openssl, aud = the token URL exactly as requested, iss = sub = client_id,
    jti present and never seen before, nbf <= now + 5 min skew, exp > now and
    exp - nbf <= 1 h;
  - a federated token (iss != client id): equal to the current content of the
    app's federated token file (re-read on every request, so tests rotate it)
    and not expired.
Success: {"token_type": "Bearer", "expires_in", "ext_expires_in",
"access_token"} with a random opaque token recorded in the directory.
Failures use AAD's error document and status: 400 invalid_request /
unsupported_grant_type / unauthorized_client / invalid_scope / invalid_resource,
401 invalid_client. AADSTS codes are those seen in public error reports where
one exists; the codes marked "inferred" below are the nearest documented ones.
Authentication by HTTP Basic (client_secret_basic) is not implemented, so it
is not advertised in the openid-configuration.
"""

import datetime
import re
import threading
import time
import urllib.parse
import uuid

from . import assertion
from .directory import RESOURCES, AppRegistration, Directory
from .server import Request, Response, Route, Service

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300.0
MAX_ASSERTION_LIFETIME = 3600.0  # inferred; SDKs use 10 minutes


class _Refusal(Exception):
    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.code = status, error, code


def _refuse_client(code: int, message: str) -> _Refusal:
    return _Refusal(401, "invalid_client", code, message)


class EntraService(Service):
    def __init__(self, directory: Directory, expires_in: int = 3599,
                 refresh_in: int | None = None) -> None:
        self.directory = directory
        self.expires_in = expires_in  # tests shorten it to exercise refresh
        self.refresh_in = refresh_in
        self._seen_jti: set[str] = set()
        self._lock = threading.Lock()
        self._public_keys: dict[bytes, bytes] = {}

    def routes(self) -> list[Route]:
        return [
            Route("token", ("POST",), re.compile(r"/([^/]+)/oauth2/v2\.0/token"), self._token),
            Route("openid", ("GET",),
                  re.compile(r"/([^/]+)/v2\.0/\.well-known/openid-configuration"),
                  self._openid),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        """An OAuth error code (lower case, e.g. "invalid_grant") is used as given;
        generic codes become invalid_request, or temporarily_unavailable for 429/5xx."""
        oauth_error = code if code.islower() else (
            "invalid_request" if status < 500 and status != 429 else "temporarily_unavailable")
        return self._aad_error(status, oauth_error, 0, message)

    def _aad_error(self, status: int, error: str, code: int, message: str) -> Response:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        text = f"AADSTS{code}: {message}" if code else message
        return Response.json(status, {
            "error": error,
            "error_description": f"{text}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {correlation}\r\nTimestamp: {now}",
            "error_codes": [code] if code else [],
            "timestamp": now, "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")])

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() == self.directory.tenant_id.lower()

    def _unknown_tenant(self, tenant: str, error: str) -> Response:
        return self._aad_error(400, error, 90002,
                               f"Tenant '{tenant}' not found. Check to make sure you have "
                               "the correct tenant ID and are signing into the correct "
                               "cloud.")

    def _openid(self, request: Request, match: re.Match) -> Response:
        tenant = urllib.parse.unquote(match.group(1))
        if not self._known_tenant(tenant):
            return self._unknown_tenant(tenant, "invalid_tenant")
        base = f"https://{request.host}/{tenant}"
        return Response.json(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token",
                                         "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
        })

    def _token(self, request: Request, match: re.Match) -> Response:
        tenant = urllib.parse.unquote(match.group(1))
        if not self._known_tenant(tenant):
            return self._unknown_tenant(tenant, "invalid_request")
        try:
            form = self._form(request)
            app = self._app(form)
            resource = self._resource(form)
            kind = self._authenticate(app, form, request.url)
        except _Refusal as refusal:
            return self._aad_error(refusal.status, refusal.error, refusal.code, str(refusal))
        grant = self.directory.issue(resource, app.client_id, kind, self.expires_in)
        body = {"token_type": "Bearer", "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in, "access_token": grant.token}
        if self.refresh_in is not None:
            body["refresh_in"] = self.refresh_in
        return Response.json(200, body, [("Cache-Control", "no-store, no-cache"),
                                          ("Pragma", "no-cache")])

    @staticmethod
    def _form(request: Request) -> dict[str, str]:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        # A body of another type is not read at all, so grant_type is "missing".
        pairs = []
        if content_type == "application/x-www-form-urlencoded":
            try:
                pairs = urllib.parse.parse_qsl(request.body.decode("utf-8"),
                                               keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise _Refusal(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: "
                               "'grant_type'.") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name in form:
                raise _Refusal(400, "invalid_request", 9000411,
                               f"The request is not properly formatted. The parameter "
                               f"'{name}' is duplicated.")
            form[name] = value
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name):
                raise _Refusal(400, "invalid_request", 900144,
                               f"The request body must contain the following parameter: "
                               f"'{name}'.")
        if form["grant_type"] != "client_credentials":
            raise _Refusal(400, "unsupported_grant_type", 70003,
                           f"The app requested an unsupported grant type "
                           f"'{form['grant_type']}'.")
        return form

    def _app(self, form: dict[str, str]) -> AppRegistration:
        app = self.directory.apps.get(form["client_id"])
        if app is None:
            raise _Refusal(400, "unauthorized_client", 700016,
                           f"Application with identifier '{form['client_id']}' was not "
                           f"found in the directory '{self.directory.tenant_id}'.")
        return app

    def _resource(self, form: dict[str, str]) -> str:
        scope = form["scope"]
        if " " in scope.strip() or not scope.endswith("/.default"):
            raise _Refusal(400, "invalid_scope", 1002012,
                           f"The provided value for scope {scope} is not valid. Client "
                           "credential flows must have a scope value with /.default "
                           "suffixed to the resource identifier (application ID URI).")
        resource = scope[:-len("/.default")]
        if resource not in RESOURCES:
            raise _Refusal(400, "invalid_resource", 500011,
                           f"The resource principal named {resource} was not found in the "
                           f"tenant named {self.directory.tenant_id}.")
        return resource

    def _authenticate(self, app: AppRegistration, form: dict[str, str], token_url: str
                      ) -> str:
        secret = form.get("client_secret")
        # Inferred: another assertion type leaves the assertion unread.
        signed = form.get("client_assertion_type") == JWT_BEARER and "client_assertion" in form
        if secret is not None and signed:
            raise _refuse_client(7000218, "Only one of 'client_assertion' and "
                                          "'client_secret' may be given (inferred).")
        if secret is not None:
            if app.client_secret is None or secret != app.client_secret:
                raise _refuse_client(7000215, "Invalid client secret provided. Ensure the "
                                              "secret being sent in the request is the "
                                              "client secret value, not the client secret "
                                              f"ID, for a secret added to app "
                                              f"'{app.client_id}'.")
            return "client_secret"
        if not signed:
            raise _refuse_client(7000218, "The request body must contain the following "
                                          "parameter: 'client_assertion' or "
                                          "'client_secret'.")
        try:
            jwt = assertion.parse(form["client_assertion"])
        except ValueError:
            raise _Refusal(400, "invalid_request", 50027,
                           "JWT token is invalid or malformed.") from None
        if jwt.claims.get("iss") == app.client_id:
            self._check_certificate_assertion(app, jwt, token_url)
            return "client_certificate"
        self._check_federated_token(app, form["client_assertion"], jwt)
        return "workload_identity"

    def _public_key(self, certificate_pem: bytes) -> bytes:
        with self._lock:
            if certificate_pem not in self._public_keys:
                self._public_keys[certificate_pem] = assertion.public_key_pem(certificate_pem)
            return self._public_keys[certificate_pem]

    def _check_certificate_assertion(self, app: AppRegistration, jwt: assertion.Jwt,
                                     token_url: str) -> None:
        header, claims = jwt.header, jwt.claims
        if header.get("alg") not in ("RS256", "PS256"):
            raise _refuse_client(5002738, f"Invalid JWT token. '{header.get('alg')}' is not "
                                          "a supported signature algorithm.")
        if header.get("typ") != "JWT":  # inferred: every SDK sends typ JWT
            raise _Refusal(400, "invalid_request", 50027, "JWT token is invalid or "
                                                          "malformed (typ).")
        if app.certificate_pem is None:
            raise _refuse_client(700027, "Client assertion failed signature validation: no "
                                         "certificate is registered on the application.")
        thumbprints = app.thumbprints()
        named = [(k, header[k]) for k in ("x5t", "x5t#S256") if k in header]
        if not named or any(thumbprints[k] != v for k, v in named):
            raise _refuse_client(700027, "The certificate with identifier used to sign the "
                                         "client assertion is not registered on "
                                         f"application. Thumbprint of key used by client: "
                                         f"'{dict(named)}'.")
        if not assertion.verify_signature(jwt, self._public_key(app.certificate_pem)):
            raise _refuse_client(700027, "Client assertion failed signature validation.")
        if claims.get("aud") != token_url:
            raise _refuse_client(700023, "Client assertion audience claim does not match "
                                         f"Realm issuer (expected '{token_url}').")
        if claims.get("sub") != app.client_id:
            raise _refuse_client(700021, "Client assertion application identifier doesn't "
                                         "match 'client_id' parameter.")
        jti = claims.get("jti")
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(jti, str) or not jti or not _numeric(nbf) or not _numeric(exp):
            raise _Refusal(400, "invalid_request", 50027, "JWT token is invalid or malformed "
                                                          "(jti, nbf and exp are required).")
        now = time.time()
        if nbf > now + CLOCK_SKEW or exp <= now or exp - nbf > MAX_ASSERTION_LIFETIME:
            raise _refuse_client(700024, f"Client assertion is not within its valid time "
                                         f"range. Current time: {now:.0f}, assertion valid "
                                         f"from {nbf}, expiry time of assertion {exp}.")
        with self._lock:
            if jti in self._seen_jti:  # code inferred
                raise _refuse_client(700027, "Client assertion replayed: jti already used.")
            self._seen_jti.add(jti)

    @staticmethod
    def _check_federated_token(app: AppRegistration, token: str, jwt: assertion.Jwt
                               ) -> None:
        expected = None
        if app.federated_token_file is not None:
            with open(app.federated_token_file, encoding="utf-8") as f:
                expected = f.read()
        if token != expected:
            raise _Refusal(400, "invalid_request", 70021,
                           "No matching federated identity record found for presented "
                           f"assertion. Assertion Issuer: '{jwt.claims.get('iss')}'. "
                           f"Assertion Subject: '{jwt.claims.get('sub')}'.")
        exp = jwt.claims.get("exp")
        if not _numeric(exp) or exp <= time.time():
            raise _refuse_client(700024, "Client assertion is not within its valid time "
                                         "range.")


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
