"""The interface of a job backend: what the compute and transfer routes need of a scheduler."""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Any


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A batch job to submit, as the ``POST /compute/{system_name}/jobs`` body describes it.

    The optional fields override the script's ``#SBATCH`` directives, as options on the ``sbatch`` command line do.
    """

    script: str | None
    """The batch script (its ``#SBATCH`` lines are honoured), or None to submit the file ``script_path``."""
    working_directory: str
    script_path: str | None = None
    """A script file to submit instead of ``script``: ``sbatch`` reads it, and names the job after it by default."""
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.script is None) == (self.script_path is None):
            raise ValueError('a job needs exactly one of `script` and `script_path`')


def job_status(state: str, state_reason: str | None, exit_code: int | None, signal: int | None) -> dict[str, Any]:
    """Return a ``JobStatus`` dict."""
    return {'state': state, 'stateReason': state_reason, 'exitCode': exit_code, 'interruptSignal': signal}


def job_time(
    start: int | None, end: int | None, elapsed: int | None, limit: int | None, suspended: int = 0
) -> dict[str, Any]:
    """Return a ``JobTime`` dict; times are epoch seconds, ``elapsed``, ``suspended`` and ``limit`` seconds."""
    return {'elapsed': elapsed, 'start': start, 'end': end, 'suspended': suspended, 'limit': limit}


class JobBackend(abc.ABC):
    """A scheduler that runs the jobs of the server's user and reports them in the FirecREST v2 shapes.

    Job dicts follow the ``JobModel`` schema of the API (``jobId``, ``name``, ``status{state, stateReason, exitCode,
    interruptSignal}``, ``tasks``, ``time{elapsed, start, end, suspended, limit}``, ``account``, ``allocationNodes``,
    ``cluster``, ``group``, ``nodes``, ``partition``, ``priority``, ``killRequestUser``, ``user``,
    ``workingDirectory``).
    Unknown jobs raise :class:`~aiida_firecrest.server.errors.ApiError` 404 ``Job not found.``.

    Subclasses implement :meth:`_submit`; :meth:`submit` records when each job was submitted (see :meth:`age`).
    """

    version: str
    """The scheduler's version, reported in ``/status/systems``."""

    def __init__(self) -> None:
        self._submitted: dict[str, float] = {}

    async def submit(self, job: JobSpec) -> str:
        """Submit ``job`` and return its id.

        :raises ApiError: if the scheduler refuses the job.
        """
        job_id = await self._submit(job)
        self._submitted[job_id] = time.monotonic()
        return job_id

    def age(self, job_id: str) -> float | None:
        """Return the seconds since this backend submitted job ``job_id``, or None if it did not submit it."""
        submitted = self._submitted.get(job_id)
        return None if submitted is None else time.monotonic() - submitted

    @abc.abstractmethod
    async def _submit(self, job: JobSpec) -> str:
        """Submit ``job`` and return its id."""

    @abc.abstractmethod
    async def jobs(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Return the user's jobs, or the one job ``job_id``."""

    @abc.abstractmethod
    async def metadata(self, job_id: str) -> list[dict[str, Any]]:
        """Return the ``JobMetadataModel`` dicts of job ``job_id`` (script, standard input, output and error)."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Cancel job ``job_id``."""

    @abc.abstractmethod
    async def partitions(self) -> list[dict[str, Any]]:
        """Return the scheduler's partitions."""

    @abc.abstractmethod
    async def nodes(self) -> list[dict[str, Any]]:
        """Return the scheduler's nodes."""

    @abc.abstractmethod
    async def reservations(self) -> list[dict[str, Any]]:
        """Return the scheduler's reservations."""

    async def close(self) -> None:  # noqa: B027
        """Release what the backend holds (e.g. stop local job processes)."""
