"""RecordingUpstream: a real HTTP server on 127.0.0.1 that records requests, for exporter tests.

Replies come from a ``responder`` callable (status, headers, body) that tests swap at will;
``stop()`` closes the socket (the upstream is down: connection refused) and ``start()`` binds
the same port again.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes  # gunzipped
    monotonic: float


def ok(_request: Received) -> Reply:
    return 200, {"Content-Type": "application/x-protobuf"}, b""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (response size limit) is expected


class RecordingUpstream:
    def __init__(self, responder: Callable[[Received], Reply] = ok) -> None:
        self.responder = responder
        self.requests: list[Received] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = Received(self.path, dict(self.headers.items()), body, time.monotonic())
                with upstream._lock:
                    upstream.requests.append(request)
                status, headers, reply = upstream.responder(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self) -> list[Received]:
        """The requests so far (a copy: handler threads keep appending)."""
        with self._lock:
            return list(self.requests)
