"""Throwaway certificates for the stand-ins, made with the `openssl` CLI.

`create_pki(directory)` writes, in a fresh temporary directory:

- a CA (`ca.pem`) that clients trust through `SSL_CERT_FILE=<ca.pem>`;
- a server certificate signed by it for 127.0.0.1 and localhost (SAN IP + DNS,
  serverAuth), used by every HTTPS stand-in;
- a self-signed client certificate for the service-principal certificate
  credential, as Entra ID accepts one uploaded to an app registration, in three
  PEM files holding certificate + RSA private key: key unencrypted (PKCS#8),
  key encrypted as PKCS#8/PBES2 AES-256-CBC (OpenSSL 3's default), and key
  encrypted in the legacy "Proc-Type: 4,ENCRYPTED" form (AES-256-CBC); both
  encrypted files use `client_password`.

Everything lives two days; nothing is ever written outside `directory`.
"""

import dataclasses
import pathlib
import ssl
import subprocess

CLIENT_PASSWORD = "stand-in-password"


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths of the generated files (all PEM)."""

    directory: pathlib.Path
    ca: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    client_cert: pathlib.Path  # certificate alone (what is uploaded to Entra ID)
    client_key: pathlib.Path  # unencrypted PKCS#8 private key alone
    client_pem: pathlib.Path  # certificate + unencrypted key
    client_pem_encrypted: pathlib.Path  # certificate + PKCS#8 encrypted key
    client_pem_legacy_encrypted: pathlib.Path  # certificate + traditional encrypted key
    client_password: str

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context trusting only the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def create_pki(directory: pathlib.Path) -> Pki:
    """Generates the CA, server and client material into `directory`."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=AML handler stand-in CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    # 127.0.0.1 also as a DNS name: mbedTLS 2.28 (the handler's TLS library)
    # matches the host of a URL only against dNSName entries, not iPAddress ones.
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "server.ext",
             "-out", "server.pem", cwd=d)

    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key",
             "-out", "client.crt", "-days", "2", "-subj", "/CN=aml-handler-test-sp", cwd=d)
    password = f"pass:{CLIENT_PASSWORD}"
    _openssl("pkey", "-in", "client.key", "-aes-256-cbc", "-passout", password,
             "-out", "client.pkcs8-encrypted.key", cwd=d)
    _openssl("rsa", "-in", "client.key", "-aes256", "-traditional", "-passout", password,
             "-out", "client.legacy-encrypted.key", cwd=d)
    cert = (d / "client.crt").read_text()
    for name, key in (("client.pem", "client.key"),
                      ("client-encrypted.pem", "client.pkcs8-encrypted.key"),
                      ("client-legacy-encrypted.pem", "client.legacy-encrypted.key")):
        (d / name).write_text(cert + (d / key).read_text())

    return Pki(directory=d, ca=d / "ca.pem", server_cert=d / "server.pem",
               server_key=d / "server.key", client_cert=d / "client.crt",
               client_key=d / "client.key", client_pem=d / "client.pem",
               client_pem_encrypted=d / "client-encrypted.pem",
               client_pem_legacy_encrypted=d / "client-legacy-encrypted.pem",
               client_password=CLIENT_PASSWORD)
