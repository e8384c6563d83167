"""HTTP adapters for workflows and their execution log."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.http import ok, read_json
from services.registry.query import DEFAULT_PAGE_SIZE, page_limit, status_filter
from services.registry.route_table import ACCOUNT_ERRORS, Answer, Route, register
from services.registry.workflows.models import (
    EXECUTION_STATUSES,
    ExecutionData,
    ExecutionListData,
    WorkflowData,
    WorkflowInput,
    WorkflowListData,
    WorkflowPatch,
)
from services.registry.workflows.service import WorkflowService

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
)
