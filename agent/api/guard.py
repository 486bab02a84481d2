"""GuardMiddleware: port routing and bearer-token auth, as plain ASGI (cheap per request).

- The OTLP port serves only ``/v1/*``; the API port serves everything else, so a scraper of
  the API port never reaches the receiver by accident and vice versa.
- With a token configured, every route but ``/healthz`` and the console's static files
  (``/ui``) needs ``Authorization: Bearer``;
  the comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz"})


def is_open(path: str) -> bool:
    """Paths served without a token: liveness, and the console's static files (no data; the
    page has to load before it can ask for the token)."""
    return path in OPEN_PATHS or path == "/ui" or path.startswith("/ui/")


class GuardMiddleware:
    def __init__(
        self, app: ASGIApp, *, token: str | None, otlp_ports: set[int], api_ports: set[int]
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
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
        if self._token is not None and not is_open(path) and not _authorized(
            scope, self._token
        ):
            await _reply(send, 401, {"detail": "missing or invalid bearer token"},
                         [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


def _authorized(scope: Scope, token: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, presented = bytes(value).partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), token)
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
