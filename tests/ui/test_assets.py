"""The console's files as the agent serves them: types, caching, containment, offline."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from strata.agent.api import ui


@pytest.fixture(name="client")
def client_fixture() -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(ui.build_router(None))  # type: ignore[arg-type]  # the router reads no agent state
    with TestClient(app, follow_redirects=False) as client:
        yield client


def test_ui_redirects_to_the_directory(client: TestClient) -> None:
    """/ui redirects to /ui/ so the page's relative asset URLs resolve under /ui/."""
    reply = client.get("/ui")
    assert reply.status_code == 308
    assert reply.headers["location"] == "/ui/"


def test_index_is_html_and_revalidated(client: TestClient) -> None:
    """The page is HTML, never cached stale, and locked to its own origin by CSP."""
    reply = client.get("/ui/")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert '<script type="module" src="static/app.js">' in reply.text


@pytest.mark.parametrize(("path", "content_type", "cache"), [
    ("app.js", "text/javascript; charset=utf-8", "no-cache"),
    ("views/incidents.js", "text/javascript; charset=utf-8", "no-cache"),
    ("style.css", "text/css; charset=utf-8", "no-cache"),
    ("vendor/uplot-1.6.32/uPlot.iife.min.js", "text/javascript; charset=utf-8",
     "public, max-age=86400"),
    ("vendor/uplot-1.6.32/uPlot.min.css", "text/css; charset=utf-8", "public, max-age=86400"),
    ("vendor/uplot-1.6.32/LICENSE.txt", "text/plain; charset=utf-8", "public, max-age=86400"),
])
def test_assets_have_types_and_cache_headers(
    client: TestClient, path: str, content_type: str, cache: str
) -> None:
    """Scripts and styles carry exact types; the versioned vendor files may be cached."""
    reply = client.get(f"/ui/static/{path}")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == content_type
    assert reply.headers["cache-control"] == cache
    assert reply.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "../api/ui.py", "..%2f..%2fapi%2fui.py", "%2e%2e/%2e%2e/store.py", "vendor", "missing.js",
    "../__init__.py",
])
def test_nothing_outside_the_static_files_is_served(client: TestClient, path: str) -> None:
    """Traversal, directories, unknown files and unlisted extensions are all 404."""
    assert client.get(f"/ui/static/{path}").status_code == 404


def test_static_file_refuses_escapes() -> None:
    """static_file resolves inside the static root only."""
    assert ui.static_file("index.html") == ui.STATIC_DIR / "index.html"
    for bad in ("../../api/ui.py", "/etc/passwd", "vendor/uplot-1.6.32"):
        with pytest.raises(HTTPException):
            ui.static_file(bad)


def test_console_loads_nothing_from_other_origins() -> None:
    """Works offline: the console's own files reference no CDN or other origin."""
    own = [p for p in ui.STATIC_DIR.rglob("*") if p.is_file() and "vendor" not in p.parts]
    assert own
    for path in own:
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text())
        assert urls == [], f"{path.name} refers to {urls}"


def test_vendored_chart_library_keeps_its_license() -> None:
    """uPlot is MIT licensed; the notice travels with the file."""
    license_text = (ui.STATIC_DIR / "vendor" / "uplot-1.6.32" / "LICENSE.txt").read_text()
    assert "MIT License" in license_text
    assert "Leon Sorokin" in license_text
