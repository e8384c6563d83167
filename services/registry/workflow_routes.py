"""HTTP adapters for workflows and their execution log."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer, page_limit
from services.registry.delivery_routes import status_filter
from services.registry.http import ok, read_json
from services.registry.models import WorkflowInput, WorkflowPatch
from services.registry.workflows import EXECUTION_STATUSES, WorkflowService

DEFAULT_PAGE_SIZE = 50


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
        base = "/v1/accounts/{account_id}/workflows"
        one = base + "/{workflow_id}"
        app.router.add_post(base, self.create)
        app.router.add_get(base, self.list)
        app.router.add_get(one, self.get)
        app.router.add_patch(one, self.patch)
        app.router.add_delete(one, self.delete)
        app.router.add_get(one + "/executions", self.executions)
        app.router.add_get(one + "/executions/{execution_id}", self.execution)

    def _limit(self, request: web.Request) -> int:
        return page_limit(request, default=DEFAULT_PAGE_SIZE, maximum=self._page_size_max)

    async def create(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        body = WorkflowInput.model_validate(await read_json(request), context=self._context)
        workflow = await self._workflows.create(account_id, body)
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
        account_id = await self._auth.account(request, write=True)
        body = WorkflowPatch.model_validate(await read_json(request), context=self._context)
        workflow = await self._workflows.patch(account_id, request.match_info["workflow_id"], body)
        return ok("Workflow updated", {"workflow": workflow.model_dump(mode="json")})

    async def delete(self, request: web.Request) -> web.Response:
        account_id = await self._auth.account(request, write=True)
        workflow = await self._workflows.delete(account_id, request.match_info["workflow_id"])
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
