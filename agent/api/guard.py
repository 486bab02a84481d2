"""GuardMiddleware: port routing and bearer-token auth, as plain ASGI (cheap per request).

- The OTLP port serves only ``/v1/*``; the API port serves everything else, so a scraper of
  the API port never reaches the receiver by accident and vice versa.
- With a token configured, every route but ``/healthz`` and the console's static files
  (``/ui``) needs ``Authorization: Bearer``;
  the comparison is constant-time (``hmac.compare_digest``). A second, read-scope token
  (``read_token``) may only use GET/HEAD/OPTIONS: any state-changing request with it is 403
  (RELIABILITY S5, authorisation is not authentication).
- DNS rebinding (RELIABILITY S6): on a loopback socket the ``Host`` header must name a
  loopback host (``localhost``, ``127.0.0.1``, ``[::1]``), else 421; a browser page on
  another origin that resolves its name to 127.0.0.1 gets nothing.
- CSRF: a state-changing request (not GET/HEAD/OPTIONS) outside ``/v1/`` is refused when it
  has a body type an HTML form can send (form-urlencoded, multipart, text/plain: 415) or an
  ``Origin`` that is not loopback on a loopback socket (403). No CORS headers are ever sent,
  so other origins cannot make the preflighted JSON requests either.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({b"application/x-www-form-urlencoded", b"multipart/form-data",
                        b"text/plain"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str:
    """``[::1]:8321`` -> ``::1``; ``localhost:8321`` -> ``localhost``."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


def is_open(path: str) -> bool:
    """Paths served without a token: liveness, and the console's static files (no data; the
    page has to load before it can ask for the token)."""
    return path in OPEN_PATHS or path == "/ui" or path.startswith("/ui/")


class GuardMiddleware:
    def __init__(
        self, app: ASGIApp, *, token: str | None, otlp_ports: set[int], api_ports: set[int],
        read_token: str | None = None,
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._read_token = read_token.encode() if token and read_token else None
        self.otlp_ports = otlp_ports  # filled in by the server once sockets are bound
        self.api_ports = api_ports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        port = (scope.get("server") or (None, None))[1]
        is_otlp_path = path.startswith("/v1/")
        if (port in self.otlp_ports and not is_otlp_path) or (
            port in self.api_ports and is_otlp_path and port not in self.otlp_ports
        ):
            await _reply(send, 404, {"detail": "Not Found"})
            return
        refusal = _request_refusal(scope, is_otlp_path)
        if refusal is not None:
            await _reply(send, refusal[0], {"detail": refusal[1]})
            return
        if self._token is not None and not is_open(path) and not _authorized(
            scope, self._token
        ):
            if self._read_token is not None and _authorized(scope, self._read_token):
                if scope["method"] not in SAFE_METHODS:
                    await _reply(send, 403, {"detail": "this token may only read"})
                    return
            else:
                await _reply(send, 401, {"detail": "missing or invalid bearer token"},
                             [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _request_refusal(scope: Scope, is_otlp_path: bool) -> tuple[int, str] | None:
    """(status, reason) for a DNS-rebinding or cross-site request, else None."""
    local = (scope.get("server") or ("", None))[0] or ""
    loopback_socket = _is_loopback(str(local))
    host = _header(scope, b"host")
    if loopback_socket and host is not None and not _is_loopback(
            _hostname(host.decode("latin-1").strip())):
        return 421, "Host must be a loopback name on a loopback-bound agent"
    if scope["method"] in SAFE_METHODS or is_otlp_path:
        return None
    content_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type in FORM_TYPES:
        return 415, "form and text/plain bodies are refused on state-changing routes"
    origin = _header(scope, b"origin")
    if loopback_socket and origin is not None:
        authority = origin.decode("latin-1").partition("://")[2].rstrip("/")
        if not _is_loopback(_hostname(authority)):
            return 403, "cross-origin request refused"
    return None


def bearer_matches(authorization: bytes, token: bytes) -> bool:
    """An ``Authorization`` value (HTTP header or gRPC metadata) presents *token* (constant
    time)."""
    scheme, _, presented = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), token)


def _authorized(scope: Scope, token: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bearer_matches(bytes(value), token)
    return False


async def _reply(
    send: Send, status: int, body: dict[str, str], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": payload})
