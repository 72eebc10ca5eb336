"""The interface of a job backend: what the compute and transfer routes need of a scheduler."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A batch job to submit, as the ``POST /compute/{system_name}/jobs`` body describes it."""

    script: str
    """The batch script (its ``#SBATCH`` lines are honoured)."""
    working_directory: str
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)


class JobBackend(abc.ABC):
    """A scheduler that runs the jobs of the server's user and reports them in the FirecREST v2 shapes.

    Job dicts follow the ``JobModel`` schema of the API (``jobId``, ``name``, ``status{state, stateReason, exitCode,
    interruptSignal}``, ``tasks``, ``time{elapsed, start, end, suspended, limit}``, ``account``, ``allocationNodes``,
    ``cluster``, ``group``, ``nodes``, ``partition``, ``priority``, ``killRequestUser``, ``user``, ``workingDirectory``).
    Unknown jobs raise :class:`~aiida_firecrest.server.errors.ApiError` 404 ``Job not found.``.
    """

    version: str
    """The scheduler's version, reported in ``/status/systems``."""

    @abc.abstractmethod
    async def submit(self, job: JobSpec) -> str:
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
