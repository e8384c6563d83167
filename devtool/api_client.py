"""The registry's HTTP API for the `roomhooks` CLI: where it is, which key, one call at a time.

The URL is ROOMHOOKS_API_URL and the key ROOMHOOKS_API_KEY, else ROOMHOOKS_OWNER_TOKEN (the
OWNER key `roomhooks dev` made), each from the environment first, then run.env. The account
is `--account`, else ROOMHOOKS_ACCOUNT_ID, else the key's own (GET /v1/me). Every refusal
of the API, and an unreachable registry, ends the command with one line and exit 1; the key
is never part of a message.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import UUID

from devtool.cli_support import EXIT_UNAVAILABLE, CliError, load_run_env, one_line
from devtool.dev_settings import DevSettings, api_url, redact_url
from devtool.output import cell
from devtool.runenv import ACCOUNT_SETTING, saved_account

if TYPE_CHECKING:
    import aiohttp

URL_SETTING = "ROOMHOOKS_API_URL"
# In order of preference; the first present, in the environment then run.env, is used.
KEY_SETTINGS = ("ROOMHOOKS_API_KEY", "ROOMHOOKS_OWNER_TOKEN")
REQUEST_TIMEOUT_S = 30.0
# A refusal's line is cut here: a description may quote a long input.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ApiTarget:
    """The registry to call, the key to call it with, and the account (None: the key's)."""

    url: str
    key: str
    account: UUID | None

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return f"ApiTarget(url={self.url!r}, account={self.account!r})"


def resolve_target(
    *,
    account: UUID | None,
    environ: Mapping[str, str],
    saved: Mapping[str, str],
    default_url: Callable[[], str],
) -> ApiTarget:
    """The target from `--account`, the environment and run.env's `saved` values, and
    `default_url()` when neither names the registry (pure but for that)."""
    url = environ.get(URL_SETTING) or saved.get(URL_SETTING) or default_url()
    key = next(
        (found for name in KEY_SETTINGS if (found := environ.get(name) or saved.get(name))),
        None,
    )
    if key is None:
        raise CliError(
            f"no API key: set {KEY_SETTINGS[0]} (or run `roomhooks dev`, which saves"
            f" {KEY_SETTINGS[1]} in run.env)"
        )
    if account is None and (text := saved_account(environ, saved)) is not None:
        try:
            account = UUID(text)
        except ValueError:
            raise CliError(f"{ACCOUNT_SETTING}: {text!r} is not a UUID") from None
    return ApiTarget(url.rstrip("/"), key, account)


def registry_default_url() -> str:
    """Where the registry's settings say it listens. Imported only when asked: the registry
    takes a tenth of a second to import, and run.env names the URL anyway."""
    from services.registry import admin as registry_admin

    return api_url(*registry_admin.api_address())


def api_target(account: UUID | None, environ: Mapping[str, str]) -> ApiTarget:
    saved = load_run_env(DevSettings().run_env_path)
    return resolve_target(
        account=account, environ=environ, saved=saved, default_url=registry_default_url
    )


def error_line(status: int, body: Any) -> str:
    """One line for a refusal: the status, the API's code and description, and each field
    detail the description does not already say (pure)."""
    envelope = body if isinstance(body, dict) else {}
    error = envelope.get("error") if isinstance(envelope.get("error"), dict) else {}
    description = str(envelope.get("description") or error.get("message") or "no description")
    code = error.get("code")
    parts = [description]
    for detail in error.get("details") or []:
        if isinstance(detail, dict):
            said = f"{detail.get('field')}: {detail.get('message')}"
            if said not in description:
                parts.append(said)
    line = " ".join(((f"{status} {code}: " if code else f"{status}: ") + "; ".join(parts)).split())
    return cell(line, width=MAX_ERROR_CHARS)  # the tenant's input, quoted: printable, bounded


class RegistryApi:
    """Calls on one session; `call` returns the envelope's `data` or raises CliError (exit 1)."""

    def __init__(self, target: ApiTarget, session: aiohttp.ClientSession) -> None:
        self._target = target
        self._session = session
        self._account = target.account

    async def account_path(self, *parts: str) -> str:
        """`/v1/accounts/<account>/<parts...>`, asking the API for the key's account if needed."""
        if self._account is None:
            caller = await self.call("GET", "/v1/me")
            self._account = UUID(str(caller["account_id"]))
        return "/".join([f"/v1/accounts/{self._account}", *(quote(p, safe="") for p in parts)])

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        import aiohttp  # loaded by open_api already

        where = redact_url(self._target.url)
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        headers = {"Authorization": f"Bearer {self._target.key}"}
        try:
            async with self._session.request(
                method,
                self._target.url + path,
                params=params,
                json=body,
                headers=headers,
                allow_redirects=False,  # the key goes to the registry named, nowhere else
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise CliError(
                f"cannot reach the registry at {where} ({one_line(exc)})", EXIT_UNAVAILABLE
            ) from None
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            answer = None
        if status >= 400:
            raise CliError(f"{method} {path}: {error_line(status, answer)}", EXIT_UNAVAILABLE)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise CliError(
                f"{method} {path}: the registry at {where} answered {status} without its"
                " JSON envelope",
                EXIT_UNAVAILABLE,
            )
        return answer["data"]


@contextlib.asynccontextmanager
async def open_api(account: UUID | None, environ: Mapping[str, str]) -> AsyncIterator[RegistryApi]:
    import aiohttp  # here, as every client library (cli_support.postgres_pool)

    target = api_target(account, environ)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield RegistryApi(target, session)


async def call_account(
    account: UUID | None,
    method: str,
    *parts: str,
    query: Mapping[str, Any] | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """One call on `/v1/accounts/<account>/<parts...>`; the answer's `data`."""
    async with open_api(account, os.environ) as api:
        return await api.call(method, await api.account_path(*parts), query=query, body=body)
