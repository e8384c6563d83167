"""HTTP adapters for workflows and their execution log."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.deliveries.stats import DEFAULT_WINDOW, WINDOWS
from services.registry.http import ApiError, ok, read_json
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit, status_filter
from services.registry.route_table import ACCOUNT_ERRORS, Answer, QueryParam, Route, register
from services.registry.workflows.models import (
    EXECUTION_STATUSES,
    ExecutionData,
    ExecutionListData,
    WorkflowData,
    WorkflowInput,
    WorkflowListData,
    WorkflowPatch,
    WorkflowVersionData,
    WorkflowVersionListData,
)
from services.registry.workflows.service import WorkflowService
from services.registry.workflows.stats import WorkflowStatsData

WORKFLOWS = "/v1/accounts/{account_id}/workflows"
WORKFLOW = WORKFLOWS + "/{workflow_id}"


class WorkflowRoutes:
    def __init__(
        self,
        auth: Authorizer,
        workflows: WorkflowService,
        *,
        page_size_max: int,
        code_max_bytes: int,
    ):
        self._auth = auth
        self._workflows = workflows
        self._page_size_max = page_size_max
        self._context = {"code_max_bytes": code_max_bytes}

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    def _limit(self, request: web.Request) -> int:
        return page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)

    async def create(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        body = WorkflowInput.model_validate(await read_json(request), context=self._context)
        workflow = await self._workflows.create(actor.account_id, body, actor=actor)
        return ok("Workflow created", {"workflow": workflow.model_dump(mode="json")}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        page = await self._workflows.list(
            account_id, limit=self._limit(request), cursor=request.query.get("cursor") or None
        )
        return ok(
            "Workflows",
            {
                "workflows": [w.model_dump(mode="json") for w in page.workflows],
                "next_cursor": page.next_cursor,
            },
        )

    async def get(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        workflow = await self._workflows.get(account_id, request.match_info["workflow_id"])
        return ok("Workflow", {"workflow": workflow.model_dump(mode="json")})

    async def patch(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        body = WorkflowPatch.model_validate(await read_json(request), context=self._context)
        workflow = await self._workflows.patch(
            actor.account_id, request.match_info["workflow_id"], body, actor=actor
        )
        return ok("Workflow updated", {"workflow": workflow.model_dump(mode="json")})

    async def delete(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        workflow = await self._workflows.delete(
            actor.account_id, request.match_info["workflow_id"], actor=actor
        )
        return ok("Workflow deleted", {"workflow": workflow.model_dump(mode="json")})

    async def executions(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        page = await self._workflows.executions(
            account_id,
            request.match_info["workflow_id"],
            limit=self._limit(request),
            status=status_filter(request, EXECUTION_STATUSES),
            cursor=request.query.get("cursor") or None,
        )
        return ok(
            "Executions",
            {
                "executions": [e.model_dump(mode="json") for e in page.executions],
                "next_cursor": page.next_cursor,
            },
        )

    async def execution(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        execution = await self._workflows.execution(
            account_id, request.match_info["workflow_id"], request.match_info["execution_id"]
        )
        return ok("Execution", {"execution": execution.model_dump(mode="json")})

    async def versions(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        page = await self._workflows.versions(
            account_id,
            request.match_info["workflow_id"],
            limit=self._limit(request),
            cursor=request.query.get("cursor") or None,
        )
        return ok(
            "Workflow versions",
            {
                "versions": [v.model_dump(mode="json") for v in page.versions],
                "next_cursor": page.next_cursor,
            },
        )

    async def version(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        version = await self._workflows.version(
            account_id, request.match_info["workflow_id"], _version_number(request)
        )
        return ok("Workflow version", {"version": version.model_dump(mode="json")})

    async def stats(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=False)
        window = request.query.get("window") or DEFAULT_WINDOW
        if window not in WINDOWS:
            allowed = ", ".join(WINDOWS)
            raise ApiError(
                400,
                "validation_error",
                f"window: must be one of {allowed}",
                [{"field": "window", "message": f"must be one of {allowed}"}],
            )
        stats = await self._workflows.stats(account_id, request.match_info["workflow_id"], window)
        return ok("Workflow stats", {"stats": stats.model_dump(mode="json")})


# A version number is an int4 in Postgres; no workflow gets near a billion saves.
VERSION_MAX = 999_999_999


def _version_number(request: web.Request) -> int:
    """The path's version: a whole number from 1, else a 400 naming `version`."""
    raw = request.match_info["version"]
    # isascii: str.isdigit() also holds for '³' or '٣'; the length before int() reads it.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or int(raw) < 1:
        message = f"must be a whole number from 1 to {VERSION_MAX:,}"
        raise ApiError(
            400,
            "validation_error",
            f"version: {message}",
            [{"field": "version", "message": message}],
        )
    return int(raw)


ROUTES = (
    Route(
        "POST",
        WORKFLOWS,
        WorkflowRoutes.create,
        "Create a workflow; its code is checked on save.",
        Answer(201, WorkflowData),
        body=WorkflowInput,
        errors=(*ACCOUNT_ERRORS, 409),
        checks_code=True,
    ),
    Route(
        "GET",
        WORKFLOWS,
        WorkflowRoutes.list,
        "List the account's workflows, newest first.",
        Answer(200, WorkflowListData),
        paged=True,
    ),
    Route(
        "GET",
        WORKFLOW,
        WorkflowRoutes.get,
        "Get a workflow with its current code.",
        Answer(200, WorkflowData),
    ),
    Route(
        "PATCH",
        WORKFLOW,
        WorkflowRoutes.patch,
        "Change some fields; new code or language is a new version.",
        Answer(200, WorkflowData),
        body=WorkflowPatch,
        checks_code=True,
    ),
    Route(
        "DELETE",
        WORKFLOW,
        WorkflowRoutes.delete,
        "Delete a workflow; the answer is its last state.",
        Answer(200, WorkflowData),
    ),
    Route(
        "GET",
        WORKFLOW + "/executions",
        WorkflowRoutes.executions,
        "The workflow's executions, newest first.",
        Answer(200, ExecutionListData),
        paged=True,
        status_filter=EXECUTION_STATUSES,
    ),
    Route(
        "GET",
        WORKFLOW + "/executions/{execution_id}",
        WorkflowRoutes.execution,
        "One execution: status, result, error and logs.",
        Answer(200, ExecutionData),
    ),
    Route(
        "GET",
        WORKFLOW + "/versions",
        WorkflowRoutes.versions,
        "The workflow's saved versions, newest first: number, language, when and by whom; no code.",
        Answer(200, WorkflowVersionListData),
        paged=True,
    ),
    Route(
        "GET",
        WORKFLOW + "/versions/{version}",
        WorkflowRoutes.version,
        "One saved version with its code.",
        Answer(200, WorkflowVersionData),
    ),
    Route(
        "GET",
        WORKFLOW + "/stats",
        WorkflowRoutes.stats,
        "The workflow's executions over a window: counts per status and the p95 duration,"
        " in total and in buckets for a chart, by the time of the event each ran on.",
        Answer(200, WorkflowStatsData),
        query=(
            QueryParam(
                "window",
                {"enum": list(WINDOWS), "default": DEFAULT_WINDOW},
                "The last hour (minute buckets), day or week (hour buckets).",
            ),
        ),
    ),
)
