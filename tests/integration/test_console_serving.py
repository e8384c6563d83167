"""The registry serves the built console over real HTTP: files, deep links, caching, the
security headers, and nothing outside the console's directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError
from yarl import URL

from services.registry.settings import RegistrySettings

pytestmark = pytest.mark.integration

INDEX = (
    b"<!doctype html><title>roomhooks</title>"
    b"<script type=module src=/console/assets/index-4f2a9c.js></script>"
)
SCRIPT = b"console.log('the console');\n"
STYLE = b"body{margin:0}\n"
SECRET = b"the file beside the console's directory"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
)


@pytest.fixture
def console_dir(tmp_path: Path) -> Path:
    """A built console: index.html, hashed assets, a root file; beside it a secret, and
    symlinks from inside out to it."""
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-4f2a9c.js").write_bytes(SCRIPT)
    (dist / "assets" / "index-8b1e07.css").write_bytes(STYLE)
    (dist / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (dist / ".hidden").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (dist / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (dist / "assets" / "outside").symlink_to(tmp_path)
    return dist


@pytest.fixture
def portal_frame_ancestors() -> str:
    return ""


@pytest.fixture
def registry_settings(
    postgres_settings, kafka_settings, console_dir: Path, portal_frame_ancestors: str
) -> RegistrySettings:
    return RegistrySettings(
        postgres=postgres_settings,
        kafka=kafka_settings,
        console_dir=console_dir,
        portal_frame_ancestors=portal_frame_ancestors,
    )


async def get(registry, path: str, method: str = "GET"):
    """One request, redirects not followed; (status, headers, body)."""
    async with registry.http.request(
        method, registry.url + path, allow_redirects=False
    ) as response:
        return response.status, response.headers, await response.read()


async def raw_get(registry, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET with the path sent byte for byte (a client library would normalize `..` away)."""
    url = URL(registry.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_console_headers(headers, *, frame_ancestors: str = "'none'", framable: bool = False):
    assert headers["Content-Security-Policy"] == POLICY + f"frame-ancestors {frame_ancestors}"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    if framable:
        assert "X-Frame-Options" not in headers
    else:
        assert headers["X-Frame-Options"] == "DENY"


async def test_the_console_its_root_and_docs_redirect_to_the_app(registry):
    for path, status, location in [
        ("/console", 308, "/console/"),
        ("/console?from=bookmark", 308, "/console/?from=bookmark"),
        ("/", 302, "/console/"),
        ("/docs", 302, "/console/docs"),
    ]:
        got, headers, _ = await get(registry, path)
        assert (got, headers["Location"]) == (status, location), path
        assert_console_headers(headers)


async def test_files_are_served_with_their_content_type_and_cache_policy(registry):
    for path, body, content_type, cache in [
        ("/console/", INDEX, "text/html; charset=utf-8", "no-cache"),
        ("/console/index.html", INDEX, "text/html; charset=utf-8", "no-cache"),
        ("/console/favicon.svg", None, "image/svg+xml", "no-cache"),
        (
            "/console/assets/index-4f2a9c.js",
            SCRIPT,
            "text/javascript; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            "/console/assets/index-8b1e07.css",
            STYLE,
            "text/css; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
    ]:
        status, headers, got = await get(registry, path)
        assert status == 200, path
        assert (headers["Content-Type"], headers["Cache-Control"]) == (content_type, cache), path
        assert body is None or got == body, path
        assert_console_headers(headers)


async def test_a_deep_link_answers_the_index_so_a_reload_finds_the_page(registry):
    for path in ["/console/webhooks", "/console/webhooks/5f0c/deliveries/0b6c", "/console/docs"]:
        status, headers, body = await get(registry, path)
        assert (status, body) == (200, INDEX), path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        assert_console_headers(headers)


async def test_a_missing_asset_is_a_404_rather_than_the_index(registry):
    status, headers, body = await get(registry, "/console/assets/index-000000.js")
    assert status == 404 and body != INDEX
    assert headers["Content-Type"].startswith("text/plain")
    assert_console_headers(headers)


async def test_head_answers_the_headers_of_get_without_a_body(registry):
    for path in ["/console/assets/index-4f2a9c.js", "/console/webhooks", "/console", "/"]:
        got = await get(registry, path, "HEAD")
        want = await get(registry, path)
        assert got[0] == want[0], path
        assert got[2] == b"", path
        for name in ("Content-Type", "Cache-Control", "Location", "Content-Security-Policy"):
            assert got[1].get(name) == want[1].get(name), (path, name)
        if want[2]:  # a redirect's empty body has no length to announce
            assert got[1]["Content-Length"] == str(len(want[2])), path


@pytest.mark.parametrize(
    "path",
    [
        "/console/../secret.txt",
        "/console/assets/../../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/console/%2E%2E/%2e%2e/etc/passwd",
        "/console/..%2fsecret.txt",
        "/console/assets%2F..%2F..%2Fsecret.txt",
        "/console/..%5csecret.txt",
        "/console/index.html%00.js",
        "/console/./index.html",
    ],
)
async def test_a_path_that_climbs_out_is_a_400_naming_the_path(registry, path):
    status, headers, body = await raw_get(registry, path)
    assert status == 400
    assert body.startswith(b"path: ") and SECRET not in body
    assert headers["content-type"].startswith("text/plain")
    assert headers["x-content-type-options"] == "nosniff"


async def test_a_symlink_out_of_the_directory_is_not_followed(registry):
    for path in ["/console/leak.txt", "/console/assets/outside/secret.txt"]:
        status, headers, body = await get(registry, path)
        assert status == 404 and SECRET not in body, path
        assert_console_headers(headers)


async def test_a_dotfile_is_never_served(registry):
    status, _, body = await get(registry, "/console/.hidden")
    assert (status, body) == (200, INDEX)


async def test_an_unbuilt_console_is_a_503_saying_how_to_build_it_and_the_api_works_on(
    registry, console_dir: Path
):
    (console_dir / "index.html").unlink()
    for path in ["/console/", "/console/webhooks", "/console/assets/index-4f2a9c.js"]:
        status, headers, body = await get(registry, path)
        assert status == 503, path
        assert body.decode() == "the console is not built: run `make console`\n"
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert_console_headers(headers)
    assert (await get(registry, "/healthz"))[0] == 200
    assert (await get(registry, "/v1/event-types"))[0] == 200


async def test_api_answers_carry_none_of_the_console_headers(registry):
    for path in ["/v1/event-types", "/healthz", "/openapi.json", "/v1/nothing-here"]:
        _, headers, _ = await get(registry, path)
        assert "Content-Security-Policy" not in headers, path
        assert "X-Frame-Options" not in headers, path
    status, headers, _ = await get(registry, "/v1/nothing-here")
    assert status == 404 and headers["Content-Type"].startswith("application/json")


async def test_the_portal_may_be_framed_by_no_one_unless_the_settings_say(registry):
    for path in ["/console/portal", "/console/portal/webhooks/5f0c"]:
        status, headers, _ = await get(registry, path)
        assert status == 200
        assert_console_headers(headers, frame_ancestors="'none'", framable=True)


class TestWithPortalFrameAncestors:
    @pytest.fixture
    def portal_frame_ancestors(self) -> str:
        return "https://app.example.com, http://localhost:3000 'self'"

    async def test_the_portal_pages_may_be_framed_by_those_origins(self, registry):
        for path in ["/console/portal", "/console/portal/", "/console/portal/webhooks/5f0c"]:
            status, headers, _ = await get(registry, path)
            assert status == 200, path
            assert_console_headers(
                headers,
                frame_ancestors="https://app.example.com http://localhost:3000 'self'",
                framable=True,
            )

    async def test_every_other_page_may_be_framed_by_no_one(self, registry):
        for path in ["/console/", "/console/webhooks", "/console/portals", "/console/api-keys"]:
            _, headers, _ = await get(registry, path)
            assert_console_headers(headers)


def test_portal_frame_ancestors_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "ROOMHOOKS_REGISTRY_PORTAL_FRAME_ANCESTORS",
        "https://App.Example.com,https://[::1]:8443  'self'",
    )
    assert RegistrySettings().portal_frame_ancestors == [
        "https://app.example.com",
        "https://[::1]:8443",
        "'self'",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/embed",
        "https://*.example.com",
        "javascript://app.example.com",
        "https://app.example.com; script-src *",
        "https://app.example.com:0",
        "https://app.example.com:70000",
        "'unsafe-inline'",
        "'none'",
        "*",
        "https://user@app.example.com",
    ],
)
def test_a_frame_ancestor_that_is_not_an_origin_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("ROOMHOOKS_REGISTRY_PORTAL_FRAME_ANCESTORS", value)
    with pytest.raises(ValidationError) as refused:
        RegistrySettings()
    assert "portal_frame_ancestors" in str(refused.value)
    assert "is not an origin" in str(refused.value)
