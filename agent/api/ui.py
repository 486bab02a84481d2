"""GET /ui: the web console, static files served from the agent's API port (issue 9).

The console is plain HTML, CSS and ES modules plus a vendored uPlot; it talks to the agent
only through the public ``/api/v1`` routes, so it holds no data of its own. Assets are
served from the package (``agent/ui/static``) with explicit content types: the vendored
library carries its version in its path and may be cached for a day, the console's own
files are revalidated on every load (``no-cache``) so an upgraded agent is never shown
with stale scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

if TYPE_CHECKING:
    from strata.agent.api.host import ApiHost

STATIC_DIR = Path(__file__).resolve().parents[1] / "ui" / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
}
# The console's own files change with the agent; vendored files are named by version.
REVALIDATE = "no-cache"
VENDOR_CACHE = "public, max-age=86400"
# The console loads nothing from elsewhere (works offline, no CDN); say so to the browser.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def static_file(relative: str, *, root: Path = STATIC_DIR) -> Path:
    """The asset at *relative* under *root*; 404 for anything else (no traversal, no dirs).

    Raises:
        HTTPException: 404 when the path escapes *root*, is not a file, or has an
            extension the console does not serve.
    """
    candidate = (root / relative).resolve()
    if (
        not candidate.is_relative_to(root)
        or candidate.suffix not in CONTENT_TYPES
        or not candidate.is_file()
    ):
        raise HTTPException(404, "Not Found")
    return candidate


def file_response(path: Path, *, cache_control: str) -> FileResponse:
    headers = {"cache-control": cache_control, **SECURITY_HEADERS}
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=headers)


def build_router(agent: ApiHost) -> APIRouter:
    """The console's routes. *agent* is unused: the console reads only the public API."""
    del agent
    router = APIRouter(tags=["ui"], include_in_schema=False)

    @router.api_route("/ui", methods=["GET", "HEAD"])
    def ui_root() -> RedirectResponse:
        # Relative asset URLs in index.html resolve against /ui/, not /.
        return RedirectResponse("/ui/", status_code=308)

    @router.api_route("/ui/", methods=["GET", "HEAD"])
    def ui_index() -> FileResponse:
        return file_response(static_file("index.html"), cache_control=REVALIDATE)

    @router.api_route("/ui/static/{relative:path}", methods=["GET", "HEAD"])
    def ui_static(relative: str) -> FileResponse:
        path = static_file(relative)
        vendored = relative.startswith("vendor/")
        return file_response(path, cache_control=VENDOR_CACHE if vendored else REVALIDATE)

    return router
