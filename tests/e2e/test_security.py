"""End-to-end security checks of issue 6 (docs/security.md says what they back).

- Secrets: representative flows (every credential kind; Entra ID ingestion;
  upstream failures; a refused credential) run with HANDLER_LOG_LEVEL=debug, and
  everything the handler wrote (stdout and stderr) is scanned for the client
  secret, the private key's body, the federated token, the managed identity
  header, the full instrumentation key and every token the directory issued
  (Bench.secrets()/leaked()).
- Audiences: every bearer token a stand-in received was issued for that
  service: ARM tokens only at ARM and AML, monitor tokens only at ingestion,
  none at the token endpoints.
- Redirects: with Entra ID ingestion a 307 to another host name (`localhost`
  vs `127.0.0.1`: different domains to the exporter's redirect_refusal) or to
  plain http off loopback is refused and the target never sees a request; the
  same 307 without a bearer token is followed (the check can see a request).
- TLS: with SSL_CERT_FILE naming a CA that did not sign the stand-ins, or with
  no SSL_CERT_FILE at all (the system bundle), every upstream call fails at the
  handshake; http_client.c never turns verification off (source check), and
  no other module talks to libcurl.
- Input: run ids and experiment ids holding `../`, `?`, `#`, `%`, spaces, CR/LF
  and printf conversions reach the AML paths percent-escaped as one segment,
  add no header, and the handler keeps answering.
- Loopback: the handler's listening sockets (/proc/<pid>/net/tcp{,6}) are bound
  to 127.0.0.1 only.
"""

import os
import re
import socket
import tempfile
import threading
import unittest
import urllib.parse
from pathlib import Path

from tests.e2e.host_emulator import succeeded
from tests.e2e.support import (
    FUNCTION,
    NEEDS_HANDLER,
    REPO,
    BenchTestCase,
    fresh_copy,
    leaked,
)
from tests.standins.directory import AML, ARM, MONITOR
from tests.standins.faults import Fault
from tests.standins.stack import CREDENTIALS
from tests.standins.tls import create_pki

PIPELINE = "da7e4950-79aa-4363-9d34-1c71e5fbd95f"
# Which audiences each stand-in may receive a bearer token for.
ALLOWED_AUDIENCES = {"entra": set(), "msi": set(), "arm": {ARM}, "aml": {ARM, AML},
                     "ingestion": {MONITOR}, "ingestion_alt": {MONITOR}}
# Every credential kind this build reads: "certificate_encrypted" (PKCS#8 with
# AES) is refused at start-up by the mbedTLS the handler links (a documented
# limitation with its fix in the message), so it has no flow to scan.
KINDS = [c for c in CREDENTIALS if c != "certificate_encrypted"]
HOSTILE_IDS = ["../../../../subscriptions", "a?api-version=1&x=1", "a#frag", "100%25%",
               "a b", "a\r\nX-Injected: 1", "a\nX-Injected: 2", "%s%n%x%p", "..", "."]


def describe(result):
    if hasattr(result, "status"):
        return f"{result.status} {result.raw[:300]!r}"
    return repr(result)


def servers(stack):
    return {"entra": stack.entra, "msi": stack.msi, "arm": stack.arm, "aml": stack.aml,
            "ingestion": stack.ingestion, "ingestion_alt": stack.ingestion_alt}


class SecurityTestCase(BenchTestCase):
    appinsights = True

    def deliver_sample(self, host):
        events = [fresh_copy(e) for e in self.bench.events]
        return host.deliver_until_accepted(events, concurrency=8, max_attempts=2)

    def assert_nothing_leaked(self, host):
        secrets = self.bench.secrets() + [("certificate password",
                                           self.stack.pki.client_password)]
        self.assertEqual(leaked(host, secrets), [])

    def assert_tokens_went_where_issued(self):
        grants = {g.token: g for g in self.stack.directory.grants()}
        for name, server in servers(self.stack).items():
            for exchange in server.journal.exchanges():
                value = exchange.header("Authorization") or ""
                if not value.lower().startswith("bearer "):
                    continue
                grant = grants.get(value[7:].strip())
                audience = grant.audience if grant else "unknown"
                self.assertIn(audience, ALLOWED_AUDIENCES[name],
                              f"a {audience} token reached {name}: {exchange.method} "
                              f"{exchange.path}")


@NEEDS_HANDLER
class SecretsTest(SecurityTestCase):
    def test_no_secret_in_the_output_of_any_credential_kind(self):
        for credential in KINDS:
            with self.subTest(credential=credential):
                host = self.handler(credential)
                outcomes = self.deliver_sample(host)
                self.assertTrue(all(o.accepted for o in outcomes),
                                [describe(r) for o in outcomes for r in o.results])
                self.assertEqual(host.stop(), 0)
                self.assert_nothing_leaked(host)
        self.assertGreaterEqual(len(self.stack.directory.grants()), len(KINDS))
        self.assert_tokens_went_where_issued()

    def test_no_secret_with_entra_ingestion(self):
        for credential in ("secret", "user_managed_identity"):
            with self.subTest(credential=credential):
                host = self.bench.handler(credential, ingestion_aad=True)
                self.addCleanup(lambda h=host: h.process.poll() is None and h.stop())
                outcomes = self.deliver_sample(host)
                self.assertTrue(all(o.accepted for o in outcomes),
                                [describe(r) for o in outcomes for r in o.results])
                self.assertEqual(host.stop(), 0)
                self.assert_nothing_leaked(host)
        authorized = [p for p in self.stack.ingestion.service.posts() if p.authorized_by]
        self.assertTrue(authorized, "no POST carried a bearer token")
        self.assert_tokens_went_where_issued()

    def test_no_secret_when_upstreams_fail_or_refuse(self):
        host = self.handler(HANDLER_INVOCATION_BUDGET_MS=1500)
        self.stack.aml.faults.add("run", Fault.error(401, message="token rejected"), times=3)
        self.stack.aml.faults.add("*", Fault.error(503), times=50)
        self.stack.ingestion.faults.add("track", Fault.error(401), Fault.error(503), times=3)
        self.deliver_sample(host)
        self.stack.entra.faults.add("token", Fault.error(400, code="invalid_client",
                                                         message="AADSTS7000215"))
        self.assertEqual(host.stop(), 0)
        self.assert_nothing_leaked(host)
        # A refused secret: the error path prints what Entra ID said, not the secret.
        refused = self.handler(AZURE_CLIENT_SECRET="wrong-" + "s3cr3t-value-XYZ")
        self.deliver_sample(refused)
        self.assertEqual(refused.stop(), 0)
        self.assertNotIn("s3cr3t-value-XYZ", "\n".join(l for _, l in refused.output()))
        self.assert_nothing_leaked(refused)
        self.assert_tokens_went_where_issued()


@NEEDS_HANDLER
class RedirectTest(SecurityTestCase):
    def redirect_once(self, location, ingestion_aad):
        host = self.bench.handler("secret", ingestion_aad=ingestion_aad,
                                  HANDLER_INVOCATION_BUDGET_MS=3000)
        self.addCleanup(lambda: host.process.poll() is None and host.stop())
        self.stack.ingestion.faults.add("track", Fault.redirect(location), times=20)
        event = fresh_copy(self.bench.events[0])
        answer = host.invoke(FUNCTION, event)
        return host, answer

    def test_bearer_token_does_not_follow_a_307_to_another_host(self):
        target = self.stack.ingestion_alt.url_for("localhost") + "/v2.1/track"
        host, answer = self.redirect_once(target, ingestion_aad=True)
        self.assertEqual(answer.status, 500, answer.raw)
        self.assertEqual(self.stack.ingestion_alt.journal.stats()["connections"], 0)
        self.assertTrue(any("appinsights_redirect_refused" in line
                            for line in host.stderr_lines()), host.stderr_lines()[-5:])
        self.assertEqual(host.stop(), 0)
        self.assert_nothing_leaked(host)

    def test_bearer_token_does_not_follow_a_307_to_plain_http(self):
        host, answer = self.redirect_once("http://ingestion.example.com/v2.1/track",
                                          ingestion_aad=True)
        self.assertEqual(answer.status, 500, answer.raw)
        self.assertTrue(any("appinsights_redirect_refused" in line
                            for line in host.stderr_lines()), host.stderr_lines()[-5:])

    # An https -> http downgrade within the same host (loopback allows plain
    # http, and 127.0.0.1 is its own domain) must not carry the token either.
    def test_bearer_token_does_not_follow_a_307_to_plain_http_on_loopback(self):
        received = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        self.addCleanup(listener.close)

        def serve():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(2)
                    try:
                        received.append(conn.recv(65536))
                    except OSError:
                        pass

        threading.Thread(target=serve, daemon=True).start()
        port = listener.getsockname()[1]
        host, answer = self.redirect_once(f"http://127.0.0.1:{port}/v2.1/track",
                                          ingestion_aad=True)
        self.assertEqual(answer.status, 500, answer.raw)
        self.assertFalse([r for r in received if b"authorization:" in r.lower()],
                         "a bearer token was sent over plain http")

    def test_same_307_without_a_bearer_token_is_followed(self):
        target = self.stack.ingestion_alt.url_for("localhost") + "/v2.1/track"
        host, answer = self.redirect_once(target, ingestion_aad=False)
        self.assertEqual(answer.status, 200, answer.raw)
        [post] = self.stack.ingestion_alt.journal.exchanges("track")[:1]
        self.assertIsNone(post.header("Authorization"))


@NEEDS_HANDLER
class TlsTest(SecurityTestCase):
    def assert_every_call_fails(self, **settings):
        for server in servers(self.stack).values():
            server.journal.clear()
        host = self.handler(HANDLER_INVOCATION_BUDGET_MS=1500, **settings)
        answer = host.invoke(FUNCTION, fresh_copy(self.bench.events[0]))
        self.assertEqual(answer.status, 500, answer.raw)
        for name in ("entra", "arm", "aml", "ingestion"):
            stats = servers(self.stack)[name].journal.stats()
            self.assertEqual(stats["requests"], 0, f"{name} got a request: {stats}")
        failed = sum(servers(self.stack)[n].journal.stats()["handshake_failures"]
                     for n in ("entra", "ingestion"))
        self.assertGreater(failed, 0, "no handshake was even tried")
        self.assertEqual(host.stop(), 0)

    def test_a_ca_that_did_not_sign_the_standins_fails_everything(self):
        with tempfile.TemporaryDirectory() as other:
            self.assert_every_call_fails(SSL_CERT_FILE=str(create_pki(Path(other)).ca))

    def test_the_system_bundle_does_not_trust_the_standins(self):
        self.assert_every_call_fails(SSL_CERT_FILE=None)

    def test_no_setting_turns_verification_off(self):
        source = (REPO / "handler" / "azure" / "http_client.c").read_text()
        settings = re.findall(r"CURLOPT_SSL_VERIFY(PEER|HOST)\s*,\s*([^)]*)\)", source)
        self.assertEqual(sorted(settings), [("HOST", "2L"), ("PEER", "1L")])
        self.assertNotRegex(source, r"CURLOPT_(PROXY_)?SSL_VERIFY\w*\s*,\s*0")
        self.assertNotIn("CURLSSLOPT_NO_REVOKE", source)
        for path in (REPO / "handler").rglob("*.[ch]"):
            if path.name != "http_client.c":
                self.assertNotRegex(path.read_text(), r"CURLOPT_|curl_easy",
                                    f"{path.name} talks to libcurl")


@NEEDS_HANDLER
class InputTest(SecurityTestCase):
    def test_hostile_ids_are_escaped_in_paths_and_add_no_header(self):
        host = self.handler()
        template = next(e for e in self.bench.events if e["data"]["runId"] == PIPELINE)
        events = [fresh_copy(template, runId=run_id, experimentId=run_id)
                  for run_id in HOSTILE_IDS]
        for event in events:
            answer = host.invoke(FUNCTION, event)
            self.assertIn(answer.status, (200, 500), answer.raw)
        for name, server in servers(self.stack).items():
            for exchange in server.journal.exchanges():
                self.assertIsNone(exchange.header("X-Injected"), f"{name}: {exchange}")
                self.assertNotRegex(exchange.path, r"[\s#%]%|[\s#]|/\.\.?(/|$)",
                                    f"{name}: unescaped path {exchange.path!r}")
        run_paths = [e.path for e in self.stack.aml.journal.exchanges()
                     if e.route in ("run", "children", "metrics_list", "metrics_full")]
        segments = {urllib.parse.unquote(s) for p in run_paths for s in p.split("/")}
        reached = [i for i in HOSTILE_IDS if i in segments]
        self.assertTrue(reached, f"no hostile id reached AML as a segment: {run_paths}")
        for exchange in self.stack.aml.journal.exchanges():
            self.assertFalse(set(exchange.query) - {"api-version", "$top",
                                                    "$continuationtoken"},
                             f"a query parameter came from an id: {exchange.query}")
        self.assertTrue(succeeded(host.invoke(FUNCTION, fresh_copy(template))))
        self.assertEqual(host.stop(), 0)
        print(f"\nsecurity: {len(reached)}/{len(HOSTILE_IDS)} hostile ids reached AML, "
              f"each as one escaped segment", flush=True)


def listening_addresses(pid):
    """(family, address, port) of the TCP sockets the process listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for family in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{family}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            address, port = local.split(":")
            if family == "tcp":
                address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
            found.append((family, address, int(port, 16)))
    return found


@NEEDS_HANDLER
class LoopbackTest(SecurityTestCase):
    def test_listens_on_127_0_0_1_only(self):
        host = self.handler()
        self.assertEqual(listening_addresses(host.process.pid),
                         [("tcp", "127.0.0.1", host.port)])


if __name__ == "__main__":
    unittest.main()
