"""Self-tests of the stand-ins, with Python's own http.client/ssl as the client
and the openssl CLI to sign client assertions.

Each stand-in must refuse what its service refuses and accept the valid forms;
fault injection and the journal must do what tests rely on. One Stack serves
the whole module (starting one costs about a second, mostly key generation);
tests that change shared state use their own principals or restore it.

Run: python3 -m unittest -v tests.standins.test_standins (from the repository root).
"""

import base64
import concurrent.futures
import datetime
import gzip
import http.client
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

from .aml import DETAILS_KEYS, RUN_KEYS
from .directory import ARM, MONITOR, MONITOR_US, ROLE_PUBLISHER, ROLE_WORKSPACE, AppRegistration, b64url
from .faults import Fault
from .stack import Stack

REPO_DIR = pathlib.Path(__file__).resolve().parents[2]
ARM_SCOPE = "https://management.azure.com/.default"
MONITOR_SCOPE = "https://monitor.azure.com//.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PREP, TRAIN, EVALUATE = ("3e387505-7222-4a23-a1ff-15572a7db2c7",
                         "b5fb4970-c5e1-48a7-ac98-8d4f951669ef",
                         "907918cc-bca5-4cc9-8e33-b44feeff4d62")
EXPERIMENT = "82c99df0-345e-47f5-9f37-17182d398f02"
PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"

stack: Stack


def setUpModule() -> None:
    global stack
    stack = Stack().start()


def tearDownModule() -> None:
    stack.stop()


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self):
        return json.loads(self.body)


def connect(server, host: str = "127.0.0.1", context: ssl.SSLContext | None = None
            ) -> http.client.HTTPConnection:
    if server.service.scheme == "http":
        return http.client.HTTPConnection(host, server.port, timeout=10)
    return http.client.HTTPSConnection(host, server.port, timeout=10,
                                       context=context or stack.pki.client_context())


def call(server, method: str, path: str, body: bytes | str | None = None,
         headers: dict | None = None, host: str = "127.0.0.1") -> Answer:
    connection = connect(server, host)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        return Answer(connection.getresponse())
    finally:
        connection.close()


def form_post(form: dict, tenant: str | None = None, host: str = "127.0.0.1") -> Answer:
    tenant = tenant or stack.directory.tenant_id
    return call(stack.entra, "POST", f"/{tenant}/oauth2/v2.0/token",
                urllib.parse.urlencode(form),
                {"Content-Type": "application/x-www-form-urlencoded"}, host)


def token_for(scope: str = ARM_SCOPE) -> str:
    answer = form_post({"grant_type": "client_credentials", "client_id": stack.app.client_id,
                        "client_secret": stack.app.client_secret, "scope": scope})
    assert answer.status == 200, answer.body
    return answer.json()["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def sign(header: dict, claims: dict, key: pathlib.Path) -> str:
    """A compact JWS signed by the openssl CLI (RS256, or PS256 by header)."""
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    options = (["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
               if header.get("alg") == "PS256" else [])
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key), *options],
                               input=signing_input.encode(), capture_output=True,
                               check=True).stdout
    return f"{signing_input}.{b64url(signature)}"


def assertion_parts(**overrides) -> tuple[dict, dict]:
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5t": stack.app.thumbprints()["x5t"]}
    claims = {"aud": stack.token_url, "iss": stack.app.client_id, "sub": stack.app.client_id,
              "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600}
    for name, value in overrides.items():
        target = header if name in ("alg", "typ", "x5t", "x5t#S256") else claims
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return header, claims


def assertion_form(jwt: str) -> dict:
    return {"grant_type": "client_credentials", "client_id": stack.app.client_id,
            "scope": ARM_SCOPE, "client_assertion_type": JWT_BEARER, "client_assertion": jwt}


class StandinTestCase(unittest.TestCase):
    def setUp(self) -> None:
        stack.reset()

    def assertAad(self, answer: Answer, status: int, error: str, code: int) -> None:
        self.assertEqual(answer.status, status, answer.body)
        document = answer.json()
        self.assertEqual(document["error"], error)
        self.assertEqual(document["error_codes"], [code])
        self.assertTrue(document["error_description"].startswith(f"AADSTS{code}:"))


class ServerTest(StandinTestCase):
    def test_keep_alive_reuses_one_connection_and_counts_new_ones(self):
        connection = connect(stack.aml)
        for _ in range(3):
            connection.request("GET", "/discovery")
            answer = Answer(connection.getresponse())
            self.assertEqual(answer.status, 200)
            self.assertEqual(answer.headers["Content-Length"], str(len(answer.body)))
        connection.close()
        call(stack.aml, "GET", "/discovery")
        exchanges = stack.aml.journal.exchanges("discovery")
        self.assertEqual([e.connection for e in exchanges][:3], [exchanges[0].connection] * 3)
        self.assertNotEqual(exchanges[3].connection, exchanges[0].connection)
        self.assertEqual(stack.aml.journal.stats()["connections"], 2)
        self.assertEqual(stack.aml.journal.stats()["handshakes"], 2)

    def test_tls_session_resumption_is_reported(self):
        context = stack.pki.client_context()
        first = connect(stack.aml, context=context)
        first.request("GET", "/discovery")
        Answer(first.getresponse())  # session tickets arrive with the first answer
        session = first.sock.session
        first.close()
        raw = socket.create_connection(("127.0.0.1", stack.aml.port))
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        second = http.client.HTTPSConnection("127.0.0.1", stack.aml.port, context=context)
        second.sock = tls
        second.request("GET", "/discovery")
        Answer(second.getresponse())
        self.assertTrue(tls.session_reused)
        second.close()
        self.assertEqual(stack.aml.journal.stats()["resumed_handshakes"], 1)
        self.assertEqual([e.tls_resumed for e in stack.aml.journal.exchanges()], [False, True])

    def test_untrusted_client_fails_the_handshake_and_is_counted(self):
        connection = connect(stack.aml, context=ssl.create_default_context())  # system CAs
        with self.assertRaises(ssl.SSLCertVerificationError):
            connection.request("GET", "/discovery")
        connection.close()
        deadline = time.monotonic() + 5
        while (stack.aml.journal.stats()["handshake_failures"] == 0
               and time.monotonic() < deadline):
            time.sleep(0.01)
        self.assertEqual(stack.aml.journal.stats()["handshake_failures"], 1)

    def test_concurrent_clients(self):
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: call(stack.aml, "GET", "/discovery").status,
                                     range(32)))
        self.assertEqual(statuses, [200] * 32)
        self.assertEqual(stack.aml.journal.stats()["connections"], 32)
        self.assertEqual(len({e.connection for e in stack.aml.journal.exchanges()}), 32)

    def test_localhost_name_is_in_the_certificate(self):
        self.assertEqual(call(stack.aml, "GET", "/discovery", host="localhost").status, 200)

    def test_chunked_request_body_is_read(self):
        connection = connect(stack.ingestion)
        body = json.dumps([event_envelope()]).encode()
        connection.request("POST", "/v2.1/track", body=iter([body[:10], body[10:]]),
                           headers={"Content-Type": "application/json"},
                           encode_chunked=True)
        answer = Answer(connection.getresponse())
        connection.close()
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(stack.ingestion.journal.exchanges()[0].header("Transfer-Encoding"),
                         "chunked")

    def test_request_without_host_is_refused(self):
        with socket.create_connection(("127.0.0.1", stack.msi.port)) as raw:
            raw.sendall(b"GET /msi/token HTTP/1.1\r\nConnection: close\r\n\r\n")
            self.assertTrue(raw.recv(100).startswith(b"HTTP/1.1 400"))

    def test_unknown_path_and_wrong_method(self):
        self.assertEqual(call(stack.arm, "GET", "/nothing/here").status, 404)
        doubled = f"//{stack.directory.tenant_id}/v2.0/.well-known/openid-configuration"
        self.assertEqual(call(stack.entra, "GET", doubled).status, 404)
        self.assertEqual(stack.entra.journal.exchanges()[0].path, doubled)
        self.assertEqual(call(stack.ingestion, "GET", "/v2.1/track").status, 405)


class FaultTest(StandinTestCase):
    def test_error_with_retry_headers_then_normal_answer(self):
        when = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        stack.aml.faults.add("discovery", Fault.error(503, retry_after=when,
                                                      retry_after_ms=1500,
                                                      x_ms_retry_after_ms=1600))
        stack.aml.faults.add("discovery", Fault.error(429, retry_after=7))
        first = call(stack.aml, "GET", "/discovery")
        self.assertEqual(first.status, 503)
        self.assertEqual(first.headers["Retry-After"], "Wed, 02 Jan 2030 03:04:05 GMT")
        self.assertEqual(first.headers["retry-after-ms"], "1500")
        self.assertEqual(first.headers["x-ms-retry-after-ms"], "1600")
        self.assertEqual(first.json()["error"]["code"], "TransientError")
        second = call(stack.aml, "GET", "/discovery")
        self.assertEqual((second.status, second.headers["Retry-After"]), (429, "7"))
        self.assertEqual(second.json()["error"]["code"], "RequestThrottled")
        self.assertEqual(call(stack.aml, "GET", "/discovery").status, 200)
        self.assertEqual([e.fault for e in stack.aml.journal.exchanges()],
                         ["status 503", "status 429", None])

    def test_each_service_words_an_injected_error_its_own_way(self):
        stack.entra.faults.add("token", Fault.error(503))
        stack.arm.faults.add("workspace", Fault.error(500, code="InternalServerError"))
        stack.ingestion.faults.add("track", Fault.error(439, message="Daily quota exceeded"))
        self.assertEqual(form_post({}).json()["error"], "temporarily_unavailable")
        self.assertEqual(call(stack.arm, "GET", stack.workspace.resource_id).json()["error"]
                         ["code"], "InternalServerError")
        answer = call(stack.ingestion, "POST", "/v2.1/track", "[]")
        self.assertEqual((answer.status, answer.json()["errors"][0]["statusCode"]), (439, 439))

    def test_times_and_wildcard_route(self):
        stack.aml.faults.add("discovery", Fault.error(500), times=2)
        stack.aml.faults.add("*", Fault.error(502))
        self.assertEqual(stack.aml.faults.pending(), 3)
        statuses = [call(stack.aml, "GET", "/discovery").status for _ in range(4)]
        self.assertEqual(statuses, [500, 500, 502, 200])
        self.assertEqual(stack.aml.faults.pending(), 0)

    def test_connection_reset_answers_nothing(self):
        stack.aml.faults.add("discovery", Fault.connection_reset())
        with self.assertRaises(ConnectionError):
            call(stack.aml, "GET", "/discovery")
        self.assertEqual(stack.aml.journal.exchanges()[0].status, None)
        self.assertEqual(stack.aml.journal.exchanges()[0].fault, "reset")
        self.assertEqual(call(stack.aml, "GET", "/discovery").status, 200)

    def test_connection_reset_is_a_tcp_rst(self):
        stack.msi.faults.add("msi", Fault.connection_reset())
        with socket.create_connection(("127.0.0.1", stack.msi.port), timeout=5) as raw:
            raw.sendall(b"GET /msi/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            with self.assertRaises(ConnectionResetError):
                while raw.recv(100):  # a FIN would end this loop without an error
                    pass

    def test_delay_then_normal_answer(self):
        stack.aml.faults.add("discovery", Fault.slow(0.3))
        started = time.monotonic()
        self.assertEqual(call(stack.aml, "GET", "/discovery").status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_redirect_to_the_second_ingestion_endpoint(self):
        target = f"{stack.ingestion_alt.url_for('localhost')}/v2.1/track"
        stack.ingestion.faults.add("track", Fault.redirect(target, status=308))
        body = json.dumps([event_envelope()])
        first = call(stack.ingestion, "POST", "/v2.1/track", body,
                     {"Content-Type": "application/json"})
        self.assertEqual((first.status, first.headers["Location"]), (308, target))
        second = call(stack.ingestion_alt, "POST", "/v2.1/track", body,
                      {"Content-Type": "application/json"}, host="localhost")
        self.assertEqual(second.status, 200)
        self.assertEqual(len(stack.ingestion_alt.journal.wait_for(1, "track")), 1)
        self.assertEqual(len(stack.ingestion_alt.service.items()), 1)
        self.assertEqual(stack.ingestion.service.items(), [])


class EntraSecretTest(StandinTestCase):
    def base_form(self, **changes) -> dict:
        form = {"grant_type": "client_credentials", "client_id": stack.app.client_id,
                "client_secret": stack.app.client_secret, "scope": ARM_SCOPE}
        form.update(changes)
        return {k: v for k, v in form.items() if v is not None}

    def test_secret_grants_an_arm_token(self):
        answer = form_post(self.base_form())
        self.assertEqual(answer.status, 200, answer.body)
        document = answer.json()
        self.assertEqual((document["token_type"], document["expires_in"]), ("Bearer", 3599))
        self.assertIn("ext_expires_in", document)
        grant = stack.directory.grants()[-1]
        self.assertEqual((grant.token, grant.audience, grant.kind),
                         (document["access_token"], ARM, "client_secret"))

    def test_wrong_secret(self):
        self.assertAad(form_post(self.base_form(client_secret="nope")), 401, "invalid_client",
                       7000215)

    def test_secret_not_percent_encoded_is_wrong(self):
        raw = (f"grant_type=client_credentials&client_id={stack.app.client_id}"
               f"&scope={urllib.parse.quote(ARM_SCOPE)}"
               f"&client_secret={stack.app.client_secret}")
        answer = call(stack.entra, "POST", f"/{stack.directory.tenant_id}/oauth2/v2.0/token",
                      raw, {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertAad(answer, 401, "invalid_client", 7000215)

    def test_unknown_tenant_and_client(self):
        self.assertAad(form_post(self.base_form(), tenant=str(uuid.uuid4())), 400,
                       "invalid_request", 90002)
        self.assertAad(form_post(self.base_form(client_id=str(uuid.uuid4()))), 400,
                       "unauthorized_client", 700016)

    def test_scopes(self):
        self.assertAad(form_post(self.base_form(scope="https://management.azure.com/")),
                       400, "invalid_scope", 1002012)
        self.assertAad(form_post(self.base_form(scope="https://monitor.azure.com/.default")),
                       400, "invalid_resource", 500011)
        self.assertEqual(form_post(self.base_form(scope=MONITOR_SCOPE)).status, 200)
        self.assertEqual(stack.directory.grants()[-1].audience, MONITOR)

    def test_malformed_requests(self):
        self.assertAad(form_post(self.base_form(grant_type=None)), 400, "invalid_request",
                       900144)
        self.assertAad(form_post(self.base_form(grant_type="password")), 400,
                       "unsupported_grant_type", 70003)
        self.assertAad(form_post(self.base_form(client_secret=None)), 401, "invalid_client",
                       7000218)
        as_json = call(stack.entra, "POST", f"/{stack.directory.tenant_id}/oauth2/v2.0/token",
                       json.dumps(self.base_form()), {"Content-Type": "application/json"})
        self.assertAad(as_json, 400, "invalid_request", 900144)
        twice = urllib.parse.urlencode(self.base_form()) + "&scope=x"
        answer = call(stack.entra, "POST", f"/{stack.directory.tenant_id}/oauth2/v2.0/token",
                      twice, {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertAad(answer, 400, "invalid_request", 9000411)

    def test_openid_configuration(self):
        tenant = stack.directory.tenant_id
        answer = call(stack.entra, "GET", f"/{tenant}/v2.0/.well-known/openid-configuration")
        self.assertEqual(answer.json()["token_endpoint"], stack.token_url)
        unknown = call(stack.entra, "GET",
                       f"/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
        self.assertEqual((unknown.status, unknown.json()["error"]), (400, "invalid_tenant"))

    def test_token_lifetime_is_configurable(self):
        stack.entra.service.expires_in, stack.entra.service.refresh_in = 7200, 3600
        try:
            document = form_post(self.base_form()).json()
            self.assertEqual((document["expires_in"], document["refresh_in"]), (7200, 3600))
        finally:
            stack.entra.service.expires_in, stack.entra.service.refresh_in = 3599, None


class EntraCertificateTest(StandinTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.other_key = stack.pki.directory / "other.key"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", str(cls.other_key)],
                       check=True, capture_output=True)

    def post(self, key: pathlib.Path | None = None, **overrides) -> Answer:
        header, claims = assertion_parts(**overrides)
        return form_post(assertion_form(sign(header, claims, key or stack.pki.client_key)))

    def test_valid_rs256_and_ps256_assertions(self):
        answer = self.post()
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(stack.directory.grants()[-1].kind, "client_certificate")
        self.assertEqual(self.post(alg="PS256").status, 200)
        sha256 = stack.app.thumbprints()["x5t#S256"]
        self.assertEqual(self.post(x5t=None, **{"x5t#S256": sha256}).status, 200)

    def test_signature_by_another_key(self):
        self.assertAad(self.post(key=self.other_key), 401, "invalid_client", 700027)

    def test_tampered_claims_break_the_signature(self):
        header, claims = assertion_parts()
        jwt = sign(header, claims, stack.pki.client_key).split(".")
        claims["exp"] += 1
        jwt[1] = b64url(json.dumps(claims).encode())
        self.assertAad(form_post(assertion_form(".".join(jwt))), 401, "invalid_client", 700027)

    def test_thumbprint_must_name_the_registered_certificate(self):
        self.assertAad(self.post(x5t=b64url(b"\0" * 20)), 401, "invalid_client", 700027)
        self.assertAad(self.post(x5t=None), 401, "invalid_client", 700027)

    def test_audience_must_be_the_token_url_as_used(self):
        self.assertAad(self.post(aud=stack.token_url.replace("127.0.0.1", "localhost")), 401,
                       "invalid_client", 700023)
        self.assertAad(self.post(aud=stack.token_url.replace("/v2.0", "")), 401,
                       "invalid_client", 700023)
        header, claims = assertion_parts(aud=stack.token_url.replace("127.0.0.1", "localhost"))
        answer = form_post(assertion_form(sign(header, claims, stack.pki.client_key)),
                           host="localhost")
        self.assertEqual(answer.status, 200, answer.body)

    def test_time_claims(self):
        now = int(time.time())
        self.assertAad(self.post(exp=now - 1, nbf=now - 600), 401, "invalid_client", 700024)
        self.assertAad(self.post(nbf=now + 3600, exp=now + 4000), 401, "invalid_client",
                       700024)
        self.assertAad(self.post(exp=now + 7200), 401, "invalid_client", 700024)
        self.assertAad(self.post(exp=None), 400, "invalid_request", 50027)
        self.assertAad(self.post(nbf=None), 400, "invalid_request", 50027)

    def test_identity_claims(self):
        self.assertAad(self.post(sub=str(uuid.uuid4())), 401, "invalid_client", 700021)
        self.assertAad(self.post(jti=None), 400, "invalid_request", 50027)
        self.assertAad(self.post(alg="HS256"), 401, "invalid_client", 5002738)
        self.assertAad(self.post(typ="JOSE"), 400, "invalid_request", 50027)

    def test_replayed_jti(self):
        header, claims = assertion_parts()
        jwt = sign(header, claims, stack.pki.client_key)
        self.assertEqual(form_post(assertion_form(jwt)).status, 200)
        self.assertAad(form_post(assertion_form(jwt)), 401, "invalid_client", 700027)

    def test_malformed_assertion(self):
        self.assertAad(form_post(assertion_form("not-a-jwt")), 400, "invalid_request", 50027)
        header, claims = assertion_parts()
        padded = sign(header, claims, stack.pki.client_key) + "=="
        self.assertAad(form_post(assertion_form(padded)), 400, "invalid_request", 50027)

    def test_generated_pem_files_hold_certificate_and_key(self):
        for path, password in ((stack.pki.client_pem, None),
                               (stack.pki.client_pem_encrypted, stack.pki.client_password),
                               (stack.pki.client_pem_legacy_encrypted,
                                stack.pki.client_password)):
            text = path.read_text()
            self.assertIn("BEGIN CERTIFICATE", text)
            command = ["openssl", "pkey", "-in", str(path), "-noout"]
            if password:
                self.assertIn("ENCRYPTED", text)
                command += ["-passin", f"pass:{password}"]
            subprocess.run(command, check=True, capture_output=True)


class EntraWorkloadIdentityTest(StandinTestCase):
    def tearDown(self) -> None:
        stack.rotate_federated_token()

    def test_current_token_file_content_is_accepted_and_rotation_retires_it(self):
        old = stack.federated_token_file.read_text()
        answer = form_post(assertion_form(old))
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(stack.directory.grants()[-1].kind, "workload_identity")
        new = stack.rotate_federated_token()
        self.assertAad(form_post(assertion_form(old)), 400, "invalid_request", 70021)
        self.assertEqual(form_post(assertion_form(new)).status, 200)

    def test_expired_federated_token(self):
        token = stack.rotate_federated_token(lifetime=-10)
        self.assertAad(form_post(assertion_form(token)), 401, "invalid_client", 700024)


class ManagedIdentityTest(StandinTestCase):
    def get(self, query: dict, header: str | None = "default") -> Answer:
        headers = {} if header is None else {
            "X-IDENTITY-HEADER": stack.msi.service.identity_header if header == "default"
            else header}
        return call(stack.msi, "GET", "/msi/token?" + urllib.parse.urlencode(query), None,
                    headers)

    def query(self, **changes) -> dict:
        query = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
        query.update(changes)
        return {k: v for k, v in query.items() if v is not None}

    def test_system_and_user_assigned_tokens(self):
        answer = self.get(self.query())
        self.assertEqual(answer.status, 200, answer.body)
        document = answer.json()
        self.assertEqual((document["resource"], document["token_type"], document["client_id"]),
                         ("https://management.azure.com", "Bearer",
                          stack.directory.system_identity))
        self.assertIsInstance(document["expires_on"], str)
        self.assertGreater(int(document["expires_on"]), time.time())
        user = self.get(self.query(client_id=stack.user_identity))
        self.assertEqual(user.json()["client_id"], stack.user_identity)
        self.assertEqual(stack.directory.grants()[-1].kind, "managed_identity")
        self.assertIsNone(stack.msi.journal.exchanges()[0].tls_resumed)  # plain HTTP

    def test_expires_on_forms(self):
        service = stack.msi.service
        try:
            service.expires_on_format = "number"
            self.assertIsInstance(self.get(self.query()).json()["expires_on"], int)
            service.expires_on_format = "date"
            text = self.get(self.query()).json()["expires_on"]
            moment = datetime.datetime.strptime(text, "%m/%d/%Y %H:%M:%S %z")
            self.assertGreater(moment.timestamp(), time.time())
        finally:
            service.expires_on_format = "string"

    def test_refusals(self):
        self.assertEqual(self.get(self.query(), header=None).status, 400)
        self.assertEqual(self.get(self.query(), header="wrong").status, 401)
        self.assertEqual(self.get(self.query(**{"api-version": "2017-09-01"})).status, 400)
        self.assertEqual(self.get(self.query(**{"api-version": None})).status, 400)
        self.assertEqual(self.get(self.query(resource=None)).status, 400)
        no_slash = self.query(resource="https://monitor.azure.com")
        self.assertEqual(self.get(no_slash).status, 400)
        stack.msi.service.system_assigned = False
        try:
            self.assertEqual(self.get(self.query()).status, 400)
            self.assertEqual(self.get(self.query(client_id=stack.user_identity)).status, 200)
        finally:
            stack.msi.service.system_assigned = True
        unknown = self.get(self.query(client_id=str(uuid.uuid4())))
        self.assertEqual((unknown.status, unknown.json()["message"]),
                         (400, "Unable to load the proper Managed Identity."))


class ArmTest(StandinTestCase):
    def get(self, path: str | None = None, token: str | None = None,
            version: str | None = "2024-04-01") -> Answer:
        path = path or stack.workspace.resource_id
        if version:
            path += f"?api-version={version}"
        return call(stack.arm, "GET", path, None, bearer(token) if token else {})

    def test_workspace_points_at_the_aml_discovery(self):
        answer = self.get(token=token_for())
        self.assertEqual(answer.status, 200, answer.body)
        document = answer.json()
        self.assertEqual(document["id"], stack.workspace.resource_id)
        self.assertEqual(document["properties"]["discoveryUrl"],
                         f"{stack.aml.base_url}/discovery")
        shouted = stack.workspace.resource_id.upper().replace("PROVIDERS", "providers")
        self.assertEqual(self.get(shouted, token_for()).status, 200)

    def test_authentication_refusals(self):
        missing = self.get()
        self.assertEqual((missing.status, missing.json()["error"]["code"]),
                         (401, "AuthenticationFailed"))
        self.assertIn("Bearer authorization_uri=", missing.headers["WWW-Authenticate"])
        wrong_audience = self.get(token=token_for(MONITOR_SCOPE))
        self.assertEqual(wrong_audience.json()["error"]["code"],
                         "InvalidAuthenticationTokenAudience")
        self.assertEqual(self.get(token="forged").json()["error"]["code"],
                         "InvalidAuthenticationToken")
        expired = stack.directory.issue("https://management.azure.com/", stack.app.client_id,
                                        "client_secret", lifetime=-1)
        self.assertEqual(self.get(token=expired.token).json()["error"]["code"],
                         "ExpiredAuthenticationToken")
        basic = call(stack.arm, "GET", stack.workspace.resource_id + "?api-version=2024-04-01",
                     None, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
        self.assertEqual(basic.status, 401)

    def test_api_version_and_not_found(self):
        token = token_for()
        self.assertEqual(self.get(token=token, version=None).json()["error"]["code"],
                         "MissingApiVersionParameter")
        self.assertEqual(self.get(token=token, version="2019-01-01").json()["error"]["code"],
                         "NoRegisteredProviderFound")
        w = stack.workspace
        for path, code in (
                (w.resource_id.replace(w.name, "other-ws"), "ResourceNotFound"),
                (w.resource_id.replace(w.resource_group, "other-rg"), "ResourceGroupNotFound"),
                (w.resource_id.replace(w.subscription_id, str(uuid.uuid4())),
                 "SubscriptionNotFound")):
            answer = self.get(path, token)
            self.assertEqual((answer.status, answer.json()["error"]["code"]), (404, code))

    def test_missing_role(self):
        app = stack.directory.register(AppRegistration(str(uuid.uuid4()), client_secret="s"))
        stack.directory.revoke(app.client_id, ROLE_WORKSPACE)
        token = form_post({"grant_type": "client_credentials", "client_id": app.client_id,
                           "client_secret": "s", "scope": ARM_SCOPE}).json()["access_token"]
        answer = self.get(token=token)
        self.assertEqual((answer.status, answer.json()["error"]["code"]),
                         (403, "AuthorizationFailed"))
        compute = self.get(stack.workspace.resource_id + "/computes/cpu-cluster", token)
        self.assertEqual((compute.status, compute.json()["error"]["code"]),
                         (403, "AuthorizationFailed"))

    def test_compute_is_a_compute_resource(self):
        token = token_for()
        answer = self.get(stack.workspace.resource_id + "/computes/CPU-Cluster", token)
        self.assertEqual(answer.status, 200, answer.body)
        document = answer.json()
        self.assertEqual(document["id"], stack.workspace.resource_id + "/computes/cpu-cluster")
        self.assertEqual(document["location"], "eastus")
        self.assertEqual(document["properties"]["computeType"], "AmlCompute")
        self.assertEqual(document["properties"]["properties"]["vmSize"], "STANDARD_DS3_V2")
        self.assertEqual(document["properties"]["properties"]["vmPriority"], "Dedicated")
        missing = self.get(stack.workspace.resource_id + "/computes/nope", token)
        self.assertEqual((missing.status, missing.json()["error"]["code"]),
                         (404, "ResourceNotFound"))
        self.assertEqual(self.get(stack.workspace.resource_id + "/computes/cpu-cluster",
                                  token, version=None).status, 400)
        self.assertEqual(self.get(stack.workspace.resource_id + "/computes/cpu-cluster")
                         .status, 401)


class PricesTest(StandinTestCase):
    FILTER = ("serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and "
              "armSkuName eq '{}' and priceType eq 'Consumption'")

    def get(self, query: dict) -> Answer:
        return call(stack.prices, "GET", "/api/retail/prices?" + urllib.parse.urlencode(
            query, quote_via=urllib.parse.quote))

    def pages(self, sku: str) -> list[dict]:
        pages, answer = [], self.get({"$filter": self.FILTER.format(sku)})
        while True:
            self.assertEqual(answer.status, 200, answer.body)
            pages.append(answer.json())
            link = pages[-1]["NextPageLink"]
            if not link:
                return pages
            self.assertTrue(link.startswith(stack.prices.base_url + "/api/retail/prices?"))
            answer = call(stack.prices, "GET", link[len(stack.prices.base_url):])

    def test_pages_hold_the_meters_a_client_must_not_pick(self):
        pages = self.pages("STANDARD_DS3_V2")  # values compare case-insensitively
        self.assertGreater(len(pages), 1)
        items = [i for p in pages for i in p["Items"]]
        self.assertEqual([p["Count"] for p in pages], [len(p["Items"]) for p in pages])
        self.assertTrue(all(i["type"] == "Consumption" for i in items))
        names = {(i["productName"].endswith("Windows"), i["skuName"]) for i in items}
        self.assertIn((True, "DS3 v2"), names)
        self.assertIn((False, "DS3 v2 Spot"), names)
        self.assertIn((False, "DS3 v2 Low Priority"), names)
        linux = [i for i in items if i["skuName"] == "DS3 v2" and
                 not i["productName"].endswith("Windows") and i["isPrimaryMeterRegion"]
                 and i["effectiveStartDate"].startswith("2024")]
        self.assertEqual([i["retailPrice"] for i in linux],
                         [stack.prices.service.linux_price("eastus", "Standard_DS3_v2")])
        self.assertNotIn(linux[0], pages[0]["Items"])  # not on the first page

    def test_reservations_and_dev_test_are_other_price_types(self):
        answer = self.get({"$filter": self.FILTER.format("Standard_D4s_v3")
                          .replace("'Consumption'", "'Reservation'")})
        types = {i["type"] for i in answer.json()["Items"]}
        self.assertEqual(types, {"Reservation"})

    def test_refusals(self):
        self.assertEqual(self.get({}).status, 400)
        self.assertEqual(self.get({"$filter": "armSkuName ne 'x'"}).status, 400)
        exact = self.get({"$filter": self.FILTER.format("STANDARD_DS3_V2"),
                          "api-version": "2023-01-01-preview"})
        self.assertEqual(exact.json()["Items"], [])  # that version compares exactly

    def test_faults(self):
        stack.prices.faults.add("prices", Fault.error(503))
        self.assertEqual(self.get({"$filter": self.FILTER.format("x")}).status, 503)
        self.assertEqual(self.get({"$filter": self.FILTER.format("x")}).status, 200)


class AmlTest(StandinTestCase):
    prefix = ("/history/v1.0/subscriptions/6f3a1b2c-0000-4000-8000-000000000001/"
              "resourceGroups/ml-rg/providers/Microsoft.MachineLearningServices/"
              "workspaces/ml-ws")

    @classmethod
    def setUpClass(cls) -> None:
        cls.token = token_for()

    def get(self, path: str, token: str | None = None) -> Answer:
        return call(stack.aml, "GET", self.prefix + path, None, bearer(token or self.token))

    def metrics(self, run: str, verb: str, body: bytes | str | None,
                content_type: str = "application/json") -> Answer:
        path = self.prefix.replace("/history/v1.0", "/metric/v2.0") + f"/runs/{run}/{verb}"
        return call(stack.aml, "POST", path, body,
                    dict(bearer(self.token), **{"Content-Type": content_type}))

    def test_discovery_names_the_api_base(self):
        document = call(stack.aml, "GET", "/discovery").json()
        self.assertEqual(document["api"], stack.aml.base_url)

    def test_run_and_details_shapes(self):
        run = self.get(f"/runs/{EVALUATE}")
        self.assertEqual(run.status, 200, run.body)
        self.assertEqual(tuple(run.json()), RUN_KEYS)
        details = self.get(f"/runs/{EVALUATE}/details").json()
        self.assertEqual(tuple(details), DETAILS_KEYS)
        self.assertEqual((details["status"], details["parentRunId"], details["rootRunId"]),
                         ("Failed", PIPELINE, PIPELINE))
        self.assertEqual(details["error"]["error"]["code"], "UserError")
        self.assertEqual(details["createdTimeUtc"], run.json()["createdUtc"])
        self.assertTrue(details["runDefinition"]["environment"]["docker"]["baseImage"])
        self.assertEqual(run.json()["compute"]["vmSize"], "STANDARD_DS3_V2")
        scoped = self.get(f"/experimentids/{EXPERIMENT}/runs/{EVALUATE}/details")
        self.assertEqual(scoped.json(), details)

    def test_unknown_run_and_wrong_experiment(self):
        for path in (f"/runs/{uuid.uuid4()}", f"/experimentids/{uuid.uuid4()}/runs/{PREP}"):
            answer = self.get(path)
            self.assertEqual(answer.status, 404)
            document = answer.json()
            self.assertEqual(document["error"]["code"], "UserError")
            self.assertIn("not found", document["error"]["message"])
            self.assertIn("operation", document["correlation"])

    def test_authentication_and_authorization(self):
        self.assertEqual(call(stack.aml, "GET", self.prefix + f"/runs/{PREP}").status, 401)
        self.assertEqual(self.get(f"/runs/{PREP}", token_for(MONITOR_SCOPE)).status, 401)
        app = stack.directory.register(AppRegistration(str(uuid.uuid4()), client_secret="s"))
        stack.directory.revoke(app.client_id, ROLE_WORKSPACE)
        token = form_post({"grant_type": "client_credentials", "client_id": app.client_id,
                           "client_secret": "s", "scope": ARM_SCOPE}).json()["access_token"]
        self.assertEqual(self.get(f"/runs/{PREP}", token).status, 403)
        ml_token = token_for("https://ml.azure.com/.default")
        self.assertEqual(self.get(f"/runs/{PREP}", ml_token).status, 200)

    def test_children_are_paged(self):
        first = self.get(f"/runs/{PIPELINE}/children?$top=2").json()
        self.assertEqual(len(first["value"]), 2)
        self.assertIsNotNone(first["continuationToken"])
        rest = self.get(f"/runs/{PIPELINE}/children?$top=2&$continuationtoken="
                        f"{first['continuationToken']}").json()
        ids = {r["runId"] for r in first["value"] + rest["value"]}
        self.assertEqual(ids, {PREP, TRAIN, EVALUATE})
        self.assertIsNone(rest["nextLink"])

    def test_metrics(self):
        listing = self.metrics(TRAIN, "list", "{}")
        self.assertEqual(listing.status, 200, listing.body)
        first = listing.json()
        self.assertIsNotNone(first["continuationToken"])
        self.assertTrue(first["nextLink"])
        rest = self.metrics(TRAIN, "list", json.dumps(
            {"continuationToken": first["continuationToken"]})).json()
        self.assertIsNone(rest["continuationToken"])
        names = {m["metricKey"]["name"] for m in first["value"] + rest["value"]}
        self.assertEqual(names, {"accuracy", "loss"})
        self.assertEqual(self.metrics(TRAIN, "list", json.dumps(
            {"continuationToken": "forged"})).status, 400)
        # The points of one metric come in pages too; the last page has the last step.
        body = {"metricName": "loss"}
        steps = []
        while True:
            page = self.metrics(TRAIN, "full", json.dumps(body)).json()
            steps += [p["step"] for p in page["value"]]
            if page["continuationToken"] is None:
                break
            body["continuationToken"] = page["continuationToken"]
        self.assertEqual(len(steps), 5)
        self.assertEqual(steps, sorted(steps))
        self.assertEqual(self.metrics(TRAIN, "list", None).status, 200)  # the SDK sends none
        full = self.metrics(TRAIN, "full", json.dumps({"metricName": "accuracy"})).json()
        self.assertEqual(full["value"][0]["data"], {"accuracy": 0.93})
        self.assertEqual(self.metrics(TRAIN, "full", "{}").status, 400)
        self.assertEqual(self.metrics(TRAIN, "full", json.dumps({"metricName": "f1"})).status,
                         404)
        self.assertEqual(self.metrics(TRAIN, "list", "a=b",
                                      "application/x-www-form-urlencoded").status, 415)
        self.assertEqual(self.metrics(str(uuid.uuid4()), "list", "{}").status, 404)


def now_text(delta: datetime.timedelta = datetime.timedelta()) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + delta
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def envelope(base_type: str, name: str, base_data: dict, **fields) -> dict:
    document = {"name": f"Microsoft.ApplicationInsights.{name}", "time": now_text(),
                "iKey": stack.instrumentation_key,
                "tags": {"ai.cloud.role": "aml-handler", "ai.operation.id": "0" * 32},
                "data": {"baseType": base_type, "baseData": dict({"ver": 2}, **base_data)}}
    document.update(fields)
    return document


def event_envelope(**base_data) -> dict:
    return envelope("EventData", "Event", dict(
        {"name": "AmlRunCompleted", "properties": {"run_id": PREP},
         "measurements": {"execution_time_ms": 155004.0}}, **base_data))


VALID_ENVELOPES = [
    lambda: event_envelope(),
    lambda: envelope("MessageData", "Message",
                     {"message": "hello", "severityLevel": "Warning"}),
    lambda: envelope("RequestData", "Request", {"id": "abc", "name": "sample-pipeline",
                                                "duration": "00:18:25.0388890",
                                                "responseCode": "Failed", "success": False}),
    lambda: envelope("RemoteDependencyData", "RemoteDependency", {
        "id": "def", "name": "evaluate", "duration": "1.00:02:07.004", "success": False,
        "type": "AML step", "resultCode": "Failed"}),
    lambda: envelope("MetricData", "Metric", {"metrics": [
        {"name": "run_duration_ms", "value": 155004.0, "kind": "Measurement"}],
        "properties": {"status": "Completed"}}),
    lambda: envelope("ExceptionData", "Exception", {"exceptions": [
        {"typeName": "UserError", "message": "boom", "hasFullStack": False}]}),
]


class IngestionTest(StandinTestCase):
    def post(self, items, content_type: str = "application/json", headers: dict | None = None,
             path: str = "/v2.1/track", compress: bool = False) -> Answer:
        if content_type == "application/x-json-stream":
            body = "\n".join(json.dumps(i) for i in items).encode()
        else:
            body = items if isinstance(items, bytes) else json.dumps(items).encode()
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if compress:
            body = gzip.compress(body)
            all_headers["Content-Encoding"] = "gzip"
        return call(stack.ingestion, "POST", path, body, all_headers)

    def refused(self, item) -> str:
        """The per-item message for an item refused alone (asserts a 400)."""
        answer = self.post([item])
        self.assertEqual(answer.status, 400, answer.body)
        document = answer.json()
        self.assertEqual((document["itemsReceived"], document["itemsAccepted"]), (1, 0))
        self.assertEqual(document["errors"][0]["statusCode"], 400)
        return document["errors"][0]["message"]

    def test_every_valid_type_is_accepted_and_recorded(self):
        answer = self.post([make() for make in VALID_ENVELOPES])
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.json(), {"itemsReceived": 6, "itemsAccepted": 6, "errors": []})
        service = stack.ingestion.service
        self.assertEqual(len(service.items()), 6)
        self.assertEqual(service.items(name="AmlRunCompleted")[0].properties["run_id"], PREP)
        self.assertEqual(len(service.items(base_type="MetricData")), 1)
        self.assertEqual(service.items(name="run_duration_ms")[0].base_type, "MetricData")
        self.assertEqual([(p.items_received, p.status) for p in service.posts()], [(6, 200)])

    def test_json_stream_gzip_and_classic_envelope_name(self):
        classic = event_envelope()
        classic["name"] = ("Microsoft.ApplicationInsights."
                           f"{stack.instrumentation_key.replace('-', '')}.Event")
        answer = self.post([event_envelope(), classic], "application/x-json-stream",
                           compress=True)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertTrue(stack.ingestion.service.posts()[0].gzip)

    def test_partial_success(self):
        bad = event_envelope(name="")
        answer = self.post([event_envelope(), bad, event_envelope()])
        self.assertEqual(answer.status, 206)
        document = answer.json()
        self.assertEqual((document["itemsReceived"], document["itemsAccepted"]), (3, 2))
        self.assertEqual([(e["index"], e["statusCode"]) for e in document["errors"]],
                         [(1, 400)])
        self.assertEqual([i.index for i in stack.ingestion.service.items()], [0, 2])

    def test_envelope_refusals(self):
        def without(key):
            item = event_envelope()
            del item[key]
            return item
        cases = {
            "iKey": dict(event_envelope(), iKey=str(uuid.uuid4())),
            "iKey:": without("iKey"),
            "older than the allowed min date": dict(
                event_envelope(), time=now_text(-datetime.timedelta(hours=49))),
            "not ISO": dict(event_envelope(), time=now_text().replace("Z", "")),
            "envelope.time:": without("time"),
            "envelope.name": dict(event_envelope(),
                                  name="Microsoft.ApplicationInsights.Message"),
            "envelope.data": without("data"),
            "baseType": dict(event_envelope(), data={"baseType": "CustomData",
                                                     "baseData": {"ver": 2}}),
            "sampleRate": dict(event_envelope(), sampleRate=0),
            "tags": dict(event_envelope(), tags={"ai.cloud.role": 5}),
        }
        for fragment, item in cases.items():
            with self.subTest(fragment):
                self.assertIn(fragment.rstrip(":"), self.refused(item))

    def test_base_data_refusals(self):
        cases = {
            "name: required": event_envelope(name=""),
            "ver: must be 2": event_envelope(ver=1),
            "properties['long']: longer than 8192": event_envelope(
                properties={"long": "x" * 8193}),
            "not 1-150 characters": event_envelope(properties={"k" * 151: "v"}),
            "measurements['m']: expected number": event_envelope(measurements={"m": "1"}),
            "measurements['flag']: expected number": event_envelope(
                measurements={"flag": True}),
            "properties['n']: expected string": event_envelope(properties={"n": 5}),
            "name: longer than 512": event_envelope(name="é" * 513),
            "severityLevel": envelope("MessageData", "Message",
                                      {"message": "m", "severityLevel": 2}),
            "duration": envelope("RequestData", "Request", {
                "id": "a", "duration": "1000.00:00:00", "responseCode": "0", "success": True}),
            "duration:": envelope("RemoteDependencyData", "RemoteDependency", {
                "name": "a", "duration": "0:00:01"}),
            "success": envelope("RequestData", "Request", {
                "id": "a", "duration": "00:00:01", "responseCode": 200, "success": "yes"}),
            "kind": envelope("MetricData", "Metric", {"metrics": [
                {"name": "m", "value": 1.0, "kind": "Gauge"}]}),
            "only one data point": envelope("MetricData", "Metric", {"metrics": [
                {"name": "m", "value": 1.0}, {"name": "n", "value": 2.0}]}),
            "metrics: required": envelope("MetricData", "Metric", {"metrics": []}),
            "value: required": envelope("MetricData", "Metric", {"metrics": [{"name": "m"}]}),
            "count: outside the int32": envelope("MetricData", "Metric", {"metrics": [
                {"name": "m", "value": 1.0, "count": 2**31}]}),
            "null is not allowed": event_envelope(measurements=None),
            "64 KB": event_envelope(properties={f"p{i}": "x" * 8000 for i in range(9)}),
            "exceptions[0].message": envelope("ExceptionData", "Exception",
                                              {"exceptions": [{"typeName": "E"}]}),
        }
        for fragment, item in cases.items():
            with self.subTest(fragment):
                self.assertIn(fragment.rstrip(":"), self.refused(item))

    def test_items_older_than_48_hours_are_refused_per_item(self):
        # As the service answers (azure-rest-api-specs Monitor.Exporters
        # examples/track.json): the old item fails alone with a 400 of its own.
        old = dict(event_envelope(), time=now_text(-datetime.timedelta(hours=48, minutes=1)))
        answer = self.post([event_envelope(), old])
        self.assertEqual(answer.status, 206, answer.body)
        [error] = answer.json()["errors"]
        self.assertEqual((error["index"], error["statusCode"]), (1, 400))
        self.assertTrue(error["message"].startswith(
            "103: Field 'time' on type 'Envelope' is older than the allowed min date. "
            "Expected: now - 172800000ms, Actual: now - "), error["message"])
        recent = dict(event_envelope(), time=now_text(-datetime.timedelta(hours=47)))
        self.assertEqual(self.post([recent]).status, 200)

    def test_nullable_fields_take_null(self):
        item = envelope("MetricData", "Metric", {"metrics": [
            {"name": "m", "value": 1.0, "count": None, "min": None}]})
        self.assertEqual(self.post([item]).status, 200)

    def test_body_refusals(self):
        self.assertEqual(self.post(b"[{").status, 400)
        self.assertEqual(self.post(json.dumps(event_envelope()).encode()).status, 400)
        self.assertEqual(self.post([]).status, 400)
        self.assertEqual(self.post(b'[{"m": NaN}]').status, 400)
        self.assertEqual(self.post([event_envelope()], "text/plain").status, 415)
        broken_gzip = call(stack.ingestion, "POST", "/v2.1/track", b"not gzip",
                           {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        self.assertEqual(broken_gzip.status, 400)
        stream = call(stack.ingestion, "POST", "/v2.1/track",
                      json.dumps(event_envelope()) + "\n{broken\n",
                      {"Content-Type": "application/x-json-stream"})
        self.assertEqual(stream.status, 206)
        self.assertEqual(stream.json()["errors"][0]["index"], 1)

    def test_injected_item_failures_are_retryable_per_item(self):
        stack.ingestion.service.fail_items([1], 503)
        items = [event_envelope(), event_envelope(name="AmlRunStatusChanged")]
        first = self.post(items)
        self.assertEqual(first.status, 206)
        self.assertEqual(first.json()["errors"], [{"index": 1, "statusCode": 503,
                                                   "message": "Injected item failure"}])
        self.assertEqual(self.post([items[1]]).status, 200)
        self.assertEqual([i.name for i in stack.ingestion.service.items()],
                         ["AmlRunCompleted", "AmlRunStatusChanged"])
        stack.ingestion.service.fail_items(None, 429)
        self.assertEqual(self.post(items).json()["itemsAccepted"], 0)

    def test_legacy_path_accepted_with_key_auth(self):
        self.assertEqual(self.post([event_envelope()], path="/v2/track").status, 200)

    def test_entra_only_resource(self):
        service = stack.ingestion.service
        service.entra_only = True
        try:
            self.assertEqual(self.post([event_envelope()]).status, 401)
            self.assertEqual(self.post([event_envelope()], headers=bearer(token_for())).status,
                             401)
            monitor = token_for(MONITOR_SCOPE)
            answer = self.post([event_envelope()], headers=bearer(monitor))
            self.assertEqual(answer.status, 200, answer.body)
            self.assertEqual(service.posts()[-1].authorized_by, stack.app.client_id)
            self.assertEqual(self.post([event_envelope()], headers=bearer(monitor),
                                       path="/v2/track").status, 401)
            app = stack.directory.register(AppRegistration(str(uuid.uuid4()),
                                                           client_secret="s"))
            stack.directory.revoke(app.client_id, ROLE_PUBLISHER)
            token = form_post({"grant_type": "client_credentials", "client_id": app.client_id,
                               "client_secret": "s", "scope": MONITOR_SCOPE}
                              ).json()["access_token"]
            self.assertEqual(self.post([event_envelope()], headers=bearer(token)).status, 403)
        finally:
            service.entra_only = False

    def test_sovereign_audience_refuses_a_public_cloud_token(self):
        # A resource in Azure Government takes tokens for https://monitor.azure.us/
        # only; one for the public cloud's audience is an invalid token (401).
        service = stack.ingestion.service
        service.entra_only, service.audiences = True, (MONITOR_US,)
        try:
            answer = self.post([event_envelope()], headers=bearer(token_for(MONITOR_SCOPE)))
            self.assertEqual(answer.status, 401, answer.body)
            self.assertIn("audience", answer.json()["errors"][0]["message"])
            us = token_for("https://monitor.azure.us//.default")
            self.assertEqual(self.post([event_envelope()], headers=bearer(us)).status, 200)
        finally:
            service.entra_only, service.audiences = False, (MONITOR,)


class StackTest(StandinTestCase):
    def test_env_names_every_endpoint(self):
        env = stack.env("secret")
        self.assertEqual(env["AZURE_AUTHORITY_HOST"], stack.entra.base_url + "/")
        self.assertEqual(env["AZURE_CLIENT_SECRET"], stack.app.client_secret)
        self.assertEqual(env["APPLICATIONINSIGHTS_CONNECTION_STRING"],
                         f"InstrumentationKey={stack.instrumentation_key};"
                         f"IngestionEndpoint={stack.ingestion.base_url}/")
        self.assertEqual(stack.env(None).keys() & {"AZURE_CLIENT_ID", "IDENTITY_ENDPOINT"},
                         set())
        aad = stack.env("user_managed_identity", ingestion_aad=True)
        self.assertEqual(aad["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"],
                         f"Authorization=AAD;ClientId={stack.user_identity}")
        self.assertTrue(aad["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:"))

    def test_dump_masks_authorization(self):
        call(stack.arm, "GET", stack.workspace.resource_id, None, bearer("secret-token"))
        dumped = json.dumps(stack.dump())
        self.assertNotIn("secret-token", dumped)
        self.assertIn("<redacted>", dumped)

    def test_cli_writes_state_serves_and_dumps_on_sigterm(self):
        with tempfile.TemporaryDirectory() as tmp:
            state, dump = pathlib.Path(tmp, "state.json"), pathlib.Path(tmp, "dump.json")
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.standins", "--state", str(state),
                 "--dump", str(dump)], cwd=REPO_DIR, stdout=subprocess.PIPE,
                env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
            try:
                self.assertIn(b"stand-ins ready", process.stdout.readline())
                described = json.loads(state.read_text())
                url = urllib.parse.urlsplit(described["urls"]["aml"])
                context = ssl.create_default_context(cafile=described["env"]["SSL_CERT_FILE"])
                connection = http.client.HTTPSConnection(url.hostname, url.port,
                                                         context=context, timeout=10)
                connection.request("GET", "/discovery")
                self.assertEqual(connection.getresponse().status, 200)
                connection.close()
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=10)
                process.stdout.close()
            self.assertEqual(process.returncode, 0)
            journal = json.loads(dump.read_text())
            self.assertEqual(journal["servers"]["aml"]["stats"]["requests"], 1)
            self.assertFalse(pathlib.Path(described["ca"]).exists())  # temp dir removed


if __name__ == "__main__":
    unittest.main()
