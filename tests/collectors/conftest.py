"""A real HTTP server on 127.0.0.1 serving the shared fixtures and misbehaving targets.

Routes:
    /fixtures/<file>          the file, text/plain; version=0.0.4
    /gzip/<file>              the file, gzip-encoded
    /dynamic/<key>            whatever the test stored in ``server.bodies[key]``
    /api/ps                   fixtures/ollama_ps.json (Ollama's running models)
    /telemetry                fixtures/qdrant_telemetry_sample.json (Qdrant, any query)
    /slow?delay=S             headers only after S seconds
    /trickle?every=S          headers at once, then one body byte every S seconds
    /garbage                  random bytes (seeded)
    /html                     an HTML page with status 200
    /truncated                an exposition cut in the middle of a label set
    /invalid-utf8             an exposition with a non-UTF-8 byte in a label value
    /octet-stream             a valid exposition with Content-Type application/octet-stream
    /big?mib=N                N MiB of valid exposition lines
    /bomb                     gzip body inflating to 1 GiB of zeros (about 1 MiB on the wire)
    /br                       a body with Content-Encoding: br
    /status/<code>            an empty reply with that status
"""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # copies of shared/fixtures
TEXT = "text/plain; version=0.0.4; charset=utf-8"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@cache
def bomb_body() -> bytes:
    """1 GiB of zeros as 64 concatenated gzip members of 16 MiB each (about 1 MiB)."""
    return gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9) * 64


@dataclass
class FixtureServer:
    base_url: str
    stopping: threading.Event
    bodies: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # one per request

    def url(self, path: str) -> str:
        return self.base_url + path


def _handler(server: FixtureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, body: bytes, ctype: str = TEXT, status: int = 200, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            path = parts.path
            server.requests.append(path)
            server.headers.append(dict(self.headers.items()))
            # The client may give up (timeouts, body caps): expected in these tests.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._route(path, query)

        def _route(self, path: str, query: dict[str, str]) -> None:
            if path.startswith("/fixtures/"):
                self._send((FIXTURES / path.removeprefix("/fixtures/")).read_bytes())
            elif path.startswith("/gzip/"):
                raw = (FIXTURES / path.removeprefix("/gzip/")).read_bytes()
                self._send(gzip.compress(raw), Content_Encoding="gzip")
            elif path in ("/api/ps", "/telemetry"):
                name = "ollama_ps.json" if path == "/api/ps" else "qdrant_telemetry_sample.json"
                self._send((FIXTURES / name).read_bytes(), "application/json")
            elif path.startswith("/dynamic/"):
                self._send(server.bodies[path.removeprefix("/dynamic/")])
            elif path == "/slow":
                server.stopping.wait(float(query.get("delay", "1")))
                self._send(b"up 1\n")
            elif path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Type", TEXT)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if server.stopping.wait(float(query.get("every", "0.1"))):
                        return
                    self.wfile.write(b"#")
                    self.wfile.flush()
            elif path == "/garbage":
                self._send(random.Random(7).randbytes(4096))
            elif path == "/html":
                self._send(b"<html><body>It works!</body></html>\n", "text/html")
            elif path == "/truncated":
                self._send(b'# TYPE up gauge\nup 1\nhttp_requests_total{method="GET",code="2')
            elif path == "/invalid-utf8":
                self._send(b'# TYPE up gauge\nup{job="\xff\xfe"} 1\n')
            elif path == "/octet-stream":
                self._send(b"# TYPE up gauge\nup 1\n", "application/octet-stream")
            elif path == "/big":
                line = b'big_metric{series="%d"} 1\n'
                body = b"".join(line % i for i in range(int(query["mib"]) * 40_000))
                self._send(body)
            elif path == "/bomb":
                self._send(bomb_body(), Content_Encoding="gzip")
            elif path == "/br":
                self._send(b"\x00\x01garbage", Content_Encoding="br")
            elif path.startswith("/status/"):
                self._send(b"", status=int(path.removeprefix("/status/")))
            else:
                self._send(b"not found\n", "text/plain", 404)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A scraper hanging up on a slow or oversized target is what those tests do."""


@pytest.fixture(name="fixture_server", scope="module")
def fixture_server_fixture() -> Iterator[FixtureServer]:
    """A threaded HTTP server on 127.0.0.1:<free port>, stopped after the module."""
    stopping = threading.Event()
    holder = FixtureServer("", stopping)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(holder))
    holder.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield holder
    stopping.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(name="dead_url")
def dead_url_fixture() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/metrics"
