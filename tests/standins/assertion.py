"""JSON Web Tokens as Entra ID reads client assertions, and federated tokens
for workload-identity tests.

`parse()` splits a compact JWS strictly (three base64url segments without
padding, JSON objects for header and claims; RFC 7515). `verify_signature()`
checks RS256 (RSASSA-PKCS1-v1_5 SHA-256) or PS256 (RSASSA-PSS SHA-256, salt =
digest length, RFC 7518) against a certificate with the `openssl` CLI, so the
verifier shares no code with any signer under test. `federated_token()` makes
a token shaped like a Kubernetes service-account token (iss/sub/aud
api://AzureADTokenExchange/exp); the stand-in accepts it by comparing it with
the token file, so its signature is random bytes.
"""

import base64
import binascii
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import uuid
from typing import Any

from .directory import b64url

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclasses.dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes  # "<header>.<claims>" as sent
    signature: bytes


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; ValueError otherwise."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def parse(token: str) -> Jwt:
    """A compact JWS; ValueError when malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError("a JWT has three non-empty parts")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    return Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2]))


def public_key_pem(certificate_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a certificate (openssl x509 -pubkey)."""
    return subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=certificate_pem,
                          capture_output=True, check=True).stdout


def verify_signature(jwt: Jwt, public_key: bytes) -> bool:
    """True when the RS256/PS256 signature verifies with `public_key` (PEM)."""
    options = {"RS256": [],
               "PS256": ["-sigopt", "rsa_padding_mode:pss",
                         "-sigopt", "rsa_pss_saltlen:digest"]}.get(jwt.header.get("alg"))
    if options is None:
        return False
    with tempfile.TemporaryDirectory(prefix="standin-jwt-") as tmp:
        d = pathlib.Path(tmp)
        (d / "key.pem").write_bytes(public_key)
        (d / "data").write_bytes(jwt.signing_input)
        (d / "sig").write_bytes(jwt.signature)
        result = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "key.pem",
                                 *options, "-signature", "sig", "data"],
                                cwd=d, capture_output=True)
    return result.returncode == 0


def federated_token(subject: str = "system:serviceaccount:aml:handler",
                    issuer: str = "https://oidc.standin.invalid/cluster",
                    lifetime: float = 3600.0) -> str:
    """A Kubernetes-like service-account token (unsigned in substance)."""
    now = int(time.time())
    header = {"alg": "RS256", "kid": "standin-oidc", "typ": "JWT"}
    claims = {"aud": ["api://AzureADTokenExchange"], "iss": issuer, "sub": subject,
              "iat": now, "nbf": now, "exp": now + int(lifetime), "jti": str(uuid.uuid4())}
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                     b64url(os.urandom(256))])
