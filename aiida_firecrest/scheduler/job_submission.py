"""A job submission that is never doubled and never lost.

A submission whose answer is lost (a dropped connection, a 5xx that is not Slurm's refusal, a timeout) may have
created the job. The client does not repeat it (:mod:`~aiida_firecrest.client.retry_policy`); :func:`submit_once` looks
for the job before submitting again. The marker is the working directory: AiiDA gives every CalcJob its own, and
FirecREST lists each job with it (``workingDirectory``, from ``squeue``/``sacct``). A job just submitted may be missing
from the list for a few seconds (pyfirecrest#199), so the list is asked a few times (:data:`SETTLE_DELAYS`) before the
job is taken as never created.

If even that fails (the server cannot be reached), the working directory is remembered in :data:`UNSETTLED` for the
rest of the process: the engine's next try of the submission looks for the job first.
"""

from __future__ import annotations

import asyncio
import posixpath
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiida.common.log import AIIDA_LOGGER

from ..client.exceptions import FirecrestApiError
from ..client.retry_policy import operation_of, outcome_unknown

__all__ = ('SETTLE_DELAYS', 'SUBMIT_ATTEMPTS', 'UNSETTLED', 'UnsettledSubmissions', 'submit_once')

LOGGER = AIIDA_LOGGER.getChild('scheduler.firecrest')

SETTLE_DELAYS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
"""The waits, in seconds, before each look at the jobs list for a job whose submission is uncertain (15 s in all: the
real server may leave out a job for a few seconds after its submission, and for about 4 s after its end)."""

SUBMIT_ATTEMPTS = 3
"""How often a job is submitted at most in one call, each after finding that the last one created no job."""


class UnsettledSubmissions:
    """The working directories (per FirecREST URL and system) whose last submission may or may not have created a
    job, as far as this process knows."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str, str]) -> None:
        """Remember that the submission in ``key``'s working directory is uncertain."""
        with self._lock:
            self._keys.add(key)

    def settle(self, key: tuple[str, str, str]) -> bool:
        """Forget ``key``; return whether it was uncertain."""
        with self._lock:
            if key in self._keys:
                self._keys.discard(key)
                return True
            return False


UNSETTLED = UnsettledSubmissions()
"""The process-wide uncertain submissions."""


async def submit_once(
    client: Any,
    system: str,
    working_directory: str,
    script: str,
    *,
    key: tuple[str, str, str],
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> str:
    """Submit ``script`` from ``working_directory`` unless a job of it exists already; return the job id.

    :param client: the FirecREST client.
    :param system: the system.
    :param working_directory: the job's working directory (the marker of its job).
    :param script: the absolute path of the batch script.
    :param key: (FirecREST URL, system, working directory), for :data:`UNSETTLED`.
    :param sleep: the coroutine that waits (tests pass one that does not).
    :raises Exception: what the client raised, if the submission failed for certain, or if whether it created a job
        could not be found out (then ``key`` is remembered as unsettled).
    """
    if UNSETTLED.settle(key) and (job_id := await find_job(client, system, working_directory, sleep)) is not None:
        return job_id
    operation = operation_of('POST', f'/compute/{system}/jobs')
    attempt = 0
    while True:
        attempt += 1
        try:
            answer = await client.submit(system, working_dir=working_directory, script_remote_path=script)
        except Exception as exc:
            if not outcome_unknown(exc, operation):
                raise
            LOGGER.warning('the submission of %s may have created a job (%r): looking for it', script, exc)
            UNSETTLED.add(key)
            job_id = await find_job(client, system, working_directory, sleep)
            UNSETTLED.settle(key)
            if job_id is not None:
                return job_id
            if attempt >= SUBMIT_ATTEMPTS:
                raise
        else:
            return _job_id(answer, script)


async def find_job(
    client: Any, system: str, working_directory: str, sleep: Callable[[float], Awaitable[Any]]
) -> str | None:
    """Return the id of the job listed in ``working_directory`` (the lowest, if several), looking the
    :data:`SETTLE_DELAYS` times; None if none is listed."""
    wanted = posixpath.normpath(working_directory)
    for delay in SETTLE_DELAYS:
        await sleep(delay)
        jobs = await client.job_info(system)
        ids = sorted((str(job['jobId']) for job in jobs or [] if _directory(job) == wanted), key=_job_order)
        if ids:
            if len(ids) > 1:
                LOGGER.warning('several jobs in %s: %s; taking the first', working_directory, ids)
            return ids[0]
    return None


def _job_id(answer: Any, script: str) -> str:
    try:
        return str(answer['jobId'])
    except (KeyError, TypeError) as exc:
        raise FirecrestApiError(f'FirecREST answered the submission of {script} without a job id: {answer!r}') from exc


def _directory(job: dict[str, Any]) -> str | None:
    directory = job.get('workingDirectory')
    return posixpath.normpath(directory) if directory else None


def _job_order(job_id: str) -> tuple[int, str]:
    """Slurm's order of job ids: by number (shorter ids first), then as text."""
    return len(job_id), job_id
