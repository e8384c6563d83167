"""HTTP adapters for jobs: order a webhook's recovery, read a job's progress."""

from __future__ import annotations

from aiohttp import web

from services.registry.auth import Authorizer
from services.registry.errors import NotFound
from services.registry.http import ApiError, ok, read_json
from services.registry.jobs.models import JobData, RecoverInput, TooManyJobs
from services.registry.jobs.service import JobService
from services.registry.route_table import ACCOUNT_ERRORS, Answer, Route, register

ACCOUNT = "/v1/accounts/{account_id}"
RECOVER = ACCOUNT + "/webhooks/{webhook_id}/recover"
JOB = ACCOUNT + "/jobs/{job_id}"


class JobRoutes:
    def __init__(self, auth: Authorizer, jobs: JobService) -> None:
        self._auth = auth
        self._jobs = jobs

    def register(self, app: web.Application) -> None:
        register(app, ROUTES, self)

    async def recover(self, request: web.Request) -> web.Response:
        actor = await self._auth.actor(request, write=True)
        body = RecoverInput.model_validate(await read_json(request))
        try:
            job = await self._jobs.recover(
                actor.account_id, request.match_info["webhook_id"], body, actor=actor
            )
        except TooManyJobs as exc:
            raise ApiError(409, "too_many_jobs", str(exc)) from exc
        return ok("Recovery queued", {"job": job.model_dump(mode="json")}, status=202)

    async def get(self, request: web.Request) -> web.Response:
        caller = await self._auth.access(request, write=False)
        job_id = request.match_info["job_id"]
        job = await self._jobs.get(caller.account_id, job_id)
        if not caller.reaches(job.webhook_id):  # a portal session's: its webhooks' jobs only
            raise NotFound(job_id)
        return ok("Job", {"job": job.model_dump(mode="json")})


ROUTES = (
    Route(
        "POST",
        RECOVER,
        JobRoutes.recover,
        "Send again every failed delivery of the webhook created in the window, as a "
        "background job (new attempts, the same delivery ids and `webhook-id`).",
        Answer(202, JobData),
        body=RecoverInput,
        errors=(*ACCOUNT_ERRORS, 409),
        portal=True,
    ),
    Route(
        "GET",
        JOB,
        JobRoutes.get,
        "A job and how far it has come.",
        Answer(200, JobData),
        portal=True,
    ),
)
