"""A local stand-in for Azure's identity plumbing, for keyless end-to-end tests.

- `make_certificate` writes a throwaway self-signed certificate for 127.0.0.1 (Azurite's OAuth
  mode needs HTTPS; clients trust it through REQUESTS_CA_BUNDLE).
- `IdentityEndpoint` serves the App Service managed-identity protocol that azure-identity
  speaks when IDENTITY_ENDPOINT and IDENTITY_HEADER are set: GET
  `?api-version=2019-08-01&resource=...[&client_id=...]` with header X-IDENTITY-HEADER,
  answered with JSON access_token, expires_on, resource and token_type. The token is a
  well-formed JWT with the claims Azurite's basic OAuth checks (aud, iss, nbf, iat, exp); its
  signature is not checked there, so it carries none worth the name.

The production credential classes run unchanged against it: nothing here stands in for them.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STORAGE_AUDIENCE = "https://storage.azure.com"
TENANT = str(uuid.UUID(int=0x11))


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """Write a one-day self-signed certificate and key for 127.0.0.1; return their paths."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def mint_token(audience: str, *, lifetime: int = 3600) -> tuple[str, int]:
    """An unsigned-but-well-formed JWT for `audience` from an Entra-like issuer, and its expiry."""
    now = int(time.time())
    expires = now + lifetime
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now,
              "nbf": now - 60, "exp": expires, "oid": str(uuid.uuid4()), "tid": TENANT}
    header = {"alg": "RS256", "typ": "JWT"}
    parts = [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
             _b64(b"not-a-signature")]
    return ".".join(parts), expires


@dataclass
class IdentityEndpoint:
    """The App Service managed-identity endpoint on a free loopback port, in a thread."""

    #: The audience minted into tokens; None mints the resource asked for, as Azure does.
    audience: str | None = None
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    #: Each token request: its query parameters, one value each.
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def environment(self) -> dict[str, str]:
        """The two settings App Service gives an app with a managed identity."""
        assert self._server is not None
        port = self._server.server_address[1]
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{port}/msi/token",
                "IDENTITY_HEADER": self.secret}

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        self.requests.append(query)
        if request.headers.get("X-IDENTITY-HEADER") != self.secret or "resource" not in query:
            self._send(request, 400, {"error": "invalid_request"})
            return
        resource = query["resource"]
        token, expires = mint_token(self.audience or resource)
        self._send(request, 200, {"access_token": token, "expires_on": str(expires),
                                  "resource": resource, "token_type": "Bearer"})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
