"""The ``/compute`` routes: submit, list, describe and cancel the user's batch jobs through the job backend."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .auth import User
from .errors import ApiError
from .jobs import JobBackend, JobSpec
from .jobs.slurm import LIVE_STATES
from .paths import confine
from .settings import RealismSettings, ServerSettings
from .status import known_system

router = APIRouter(prefix='/compute', tags=['compute'], dependencies=[Depends(known_system)])

JobId = Annotated[str, PathParameter(description='Job id', pattern=r'^[a-zA-Z0-9]+$')]
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


class JobDescription(BaseModel):
    """The ``job`` of a submission; fields are accepted in camelCase (the spec) and snake_case (pyfirecrest)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    working_directory: str
    script: str | None = None
    script_path: str | None = None
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    """The job's environment variables; also accepted as a list of ``NAME=value`` strings."""

    @model_validator(mode='after')
    def _one_script(self) -> JobDescription:
        if (self.script is None) == (self.script_path is None):
            raise ValueError('exactly one of `script` and `scriptPath` must be given')
        return self

    @field_validator('env', mode='before')
    @classmethod
    def _environment_dict(cls, env: Any) -> Any:
        if env is None:
            return {}
        if isinstance(env, list):
            return {name: value for name, _, value in (str(item).partition('=') for item in env)}
        return env

    @field_validator('env')
    @classmethod
    def _environment_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f'invalid environment variable name: {name!r}')
        return env


class JobSubmission(BaseModel):
    """The body of ``POST /compute/{system_name}/jobs``."""

    job: JobDescription


def _backend(request: Request) -> JobBackend:
    backend: JobBackend = request.app.state.jobs
    return backend


def _visible(request: Request, job_id: str) -> bool:
    """Whether the job is past the ``job_invisible_seconds`` fault that hides new jobs (pyfirecrest#199)."""
    settings: ServerSettings = request.app.state.settings
    age = _backend(request).age(job_id)
    return age is None or age >= settings.faults.job_invisible_seconds


def listed_by_the_real_server(job: dict[str, Any], realism: RealismSettings, now: float) -> bool:
    """Whether the real server lists ``job`` at time ``now``.

    Not when it ended less than ``realism.jobs_list_gap`` seconds ago (job times are whole seconds), nor, with
    ``realism.unlisted_unstarted_jobs``, when it ended without ever starting: without a batch step (Slurm reports
    such a job with a start time equal to its end).
    """
    end: float | None = job['time']['end']
    if end is None or job['status']['state'] in LIVE_STATES:
        return True
    if realism.unlisted_unstarted_jobs and not job['tasks']:
        return False
    return now - end >= realism.jobs_list_gap


@router.post('/{system_name}/jobs', status_code=201)
async def submit(system_name: str, body: JobSubmission, request: Request, user: User) -> dict[str, Any]:
    """Submit a batch job; its working directory need not exist (the job then fails, as with Slurm)."""
    settings: ServerSettings = request.app.state.settings
    job = body.job
    spec = JobSpec(
        script=job.script,
        script_path=None if job.script_path is None else confine(job.script_path, settings),
        working_directory=confine(job.working_directory, settings),
        name=job.name,
        account=job.account,
        partition=job.partition,
        reservation=job.reservation,
        standard_input=job.standard_input,
        standard_output=job.standard_output,
        standard_error=job.standard_error,
        env=job.env,
    )
    return {'jobId': await _backend(request).submit(spec)}


@router.get('/{system_name}/jobs')
async def jobs(system_name: str, request: Request, user: User, account: str | None = None) -> dict[str, Any]:
    """List the user's jobs (transfer jobs and finished ones included), optionally only those of an account."""
    settings: ServerSettings = request.app.state.settings
    now = time.time()
    listed = [
        job
        for job in await _backend(request).jobs()
        if _visible(request, job['jobId'])
        and listed_by_the_real_server(job, settings.realism, now)
        and (not account or job['account'] == account)
    ]
    return {'jobs': listed}


@router.get('/{system_name}/jobs/{job_id}')
async def job(system_name: str, job_id: JobId, request: Request, user: User) -> dict[str, Any]:
    """Describe one job."""
    if not _visible(request, job_id):
        raise ApiError.job_not_found()
    return {'jobs': await _backend(request).jobs(job_id)}


@router.get('/{system_name}/jobs/{job_id}/metadata')
async def metadata(system_name: str, job_id: JobId, request: Request, user: User) -> dict[str, Any]:
    """Return a job's script and standard input, output and error files."""
    if not _visible(request, job_id):
        raise ApiError.job_not_found()
    return {'jobs': await _backend(request).metadata(job_id)}


@router.delete('/{system_name}/jobs/{job_id}', status_code=204)
async def cancel(system_name: str, job_id: JobId, request: Request, user: User) -> Response:
    """Cancel a job."""
    await _backend(request).cancel(job_id)
    return Response(status_code=204)
