"""The web console: the built single-page app (console/dist) served at /console/.

A file under the directory is served as it is (hashed assets under assets/ cached for a year);
any other path answers index.html, so a deep link works after a reload. A path that climbs out
(`..`, an encoded slash, NUL) is a 400 and a symlink that leads out a 404: nothing outside the
directory is ever read. Every answer carries a strict Content-Security-Policy; only the
customer portal's pages (/console/portal...) may be framed, by the origins the settings name.

The console's routes are plain handlers beside the API's: no middleware, nothing on the path
of /v1. They are named `console.*` (`is_console_route`), so the checks that every API route
is documented can leave them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

ROUTE_PREFIX = "console."
MOUNT = "/console"
INDEX = "index.html"
ASSETS = "assets/"
PORTAL = "portal"

# Vite names every file under assets/ by its content hash: a new build is a new name.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NOT_BUILT = "the console is not built: run `make console`\n"

POLICY = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
)

# What Vite emits, typed the same on every machine (mimetypes reads /etc/mime.types, which a
# slim image lacks); anything else is left to FileResponse's guess.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}

# Percent-encoded `/` and `\`: aiohttp decodes them into the tail, where they would be
# separators the client never sent as such.
ENCODED_SEPARATORS = ("%2f", "%5c")


class PathRefused(ValueError):
    """A console path that tries to leave the directory."""


def is_console_route(route: web.AbstractRoute) -> bool:
    """True for the console's routes (not part of the API, not in /openapi.json)."""
    return (route.name or "").startswith(ROUTE_PREFIX)


def security_headers(*, portal: bool, portal_frame_ancestors: Sequence[str]) -> dict[str, str]:
    """The headers of every console answer. The portal's pages may be framed by the given
    origins (none: by no one); every other page by no one."""
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    if portal:
        ancestors = " ".join(portal_frame_ancestors) or "'none'"
    else:
        ancestors = "'none'"
        headers["X-Frame-Options"] = "DENY"
    headers["Content-Security-Policy"] = "; ".join((*POLICY, f"frame-ancestors {ancestors}"))
    return headers


def relative_parts(tail: str, raw_path: str) -> list[str]:
    """The segments of a console path (`tail`, decoded; `raw_path`, as sent), or PathRefused."""
    if "\x00" in tail or "\\" in tail:
        raise PathRefused("path: must not contain NUL or a backslash")
    lowered = raw_path.lower()
    if any(sep in lowered for sep in ENCODED_SEPARATORS):
        raise PathRefused("path: must not contain an encoded slash")
    parts = [part for part in tail.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise PathRefused("path: must not contain '.' or '..' segments")
    return parts


def is_portal(parts: Sequence[str]) -> bool:
    return bool(parts) and parts[0] == PORTAL


class Console:
    """Serves the build in `directory` (see the module's docstring)."""

    def __init__(self, directory: Path, *, portal_frame_ancestors: Sequence[str] = ()) -> None:
        self._root = directory.resolve()
        self._ancestors = tuple(portal_frame_ancestors)

    def register(self, app: web.Application) -> None:
        add = app.router.add_get  # and HEAD, as aiohttp does by default
        add("/", self.home, name=ROUTE_PREFIX + "home")
        add("/docs", self.docs, name=ROUTE_PREFIX + "docs")
        add(MOUNT, self.mount, name=ROUTE_PREFIX + "mount")
        add(MOUNT + "/{tail:.*}", self.page, name=ROUTE_PREFIX + "page")

    async def home(self, _request: web.Request) -> web.Response:
        return self._redirect(302, MOUNT + "/")

    async def docs(self, _request: web.Request) -> web.Response:
        return self._redirect(302, MOUNT + "/docs")

    async def mount(self, request: web.Request) -> web.Response:
        query = f"?{request.query_string}" if request.query_string else ""
        return self._redirect(308, f"{MOUNT}/{query}")

    async def page(self, request: web.Request) -> web.StreamResponse:
        try:
            parts = relative_parts(request.match_info["tail"], request.raw_path)
        except PathRefused as exc:
            return self._text(400, f"{exc}\n", portal=False)
        portal = is_portal(parts)
        index = self._root / INDEX
        if not index.is_file():
            return self._text(503, NOT_BUILT, portal=portal)
        if any(part.startswith(".") for part in parts):  # never a dotfile: the app's page
            return self._file(index, REVALIDATE, portal=portal)
        found = self._root.joinpath(*parts).resolve()
        if not found.is_relative_to(self._root):  # a symlink out of the directory
            return self._text(404, "not found\n", portal=portal)
        relative = "/".join(parts)
        if found.is_file():
            cache = IMMUTABLE if relative.startswith(ASSETS) else REVALIDATE
            return self._file(found, cache, portal=portal)
        if relative.startswith(ASSETS):  # a missing chunk is not a page: say so
            return self._text(404, "not found\n", portal=portal)
        return self._file(index, REVALIDATE, portal=portal)

    def _headers(self, *, portal: bool) -> dict[str, str]:
        return security_headers(portal=portal, portal_frame_ancestors=self._ancestors)

    def _file(self, path: Path, cache: str, *, portal: bool) -> web.FileResponse:
        headers = {**self._headers(portal=portal), "Cache-Control": cache}
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        if content_type is not None:
            headers["Content-Type"] = content_type
        return web.FileResponse(path, headers=headers)

    def _text(self, status: int, text: str, *, portal: bool) -> web.Response:
        headers = {**self._headers(portal=portal), "Cache-Control": "no-store"}
        return web.Response(status=status, text=text, headers=headers)

    def _redirect(self, status: int, location: str) -> web.Response:
        headers = {**self._headers(portal=False), "Location": location}
        return web.Response(status=status, headers=headers)
