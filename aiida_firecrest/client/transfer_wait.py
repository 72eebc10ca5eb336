"""Waiting for a transfer job (a staged upload or download, ``cp``, ``mv``...) to end: when to ask again.

pyfirecrest's ``wait_for_job`` sleeps 0.2, 0.5, 1, 2, 4 ... 64 s between polls: few requests, but a job that ends just
after a poll is seen up to its whole duration later (a job of 1.8 s at 3.7 s, one of 8 s at 15.7 s). Here the delays
grow by a quarter each time from :data:`FIRST_DELAY` up to :data:`LONGEST_DELAY`: a job of 2 s or more is seen at most
35 % of its duration late (tending to a quarter), and never more than :data:`LONGEST_DELAY` late, for a few more polls
(a job of 2 s: 7 polls instead of 5, one of 10 s: 13 instead of 7, one of a minute: 24 instead of 9), which the request
budget paces like any other request. Delays growing by half (the choice before) saw a job up to 60 % of its duration
late, which made the 256 MB upload of ``benchmarks/side_by_side.py`` lag the raw API path (polling every 0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from firecrest.FirecrestException import FirecrestException, JobTimeoutException
from firecrest.utilities import sched_state_completed

__all__ = ('FIRST_DELAY', 'GROWTH', 'LONGEST_DELAY', 'NOT_FOUND_TIMEOUT', 'job_state', 'poll_delays', 'wait_for_job')

FIRST_DELAY = 0.2
"""Seconds before the second poll (the first is at once)."""

GROWTH = 1.25
"""Each delay is this many times the one before."""

LONGEST_DELAY = 5.0
"""The longest delay between two polls, in seconds."""

_ended: Callable[[str], bool] = sched_state_completed
_timed_out: Callable[[str], Exception] = JobTimeoutException
"""Typed views of pyfirecrest's unannotated helpers."""

NOT_FOUND_TIMEOUT = 20.0
"""Seconds during which a job the scheduler does not know yet (404 ``Job not found``) is asked for again."""


class JobClient(Protocol):
    """What the wait needs of pyfirecrest's client."""

    async def job_info(self, system_name: str, jobid: str) -> Any: ...

    async def cancel_job(self, system_name: str, jobid: str) -> Any: ...


def poll_delays() -> Iterator[float]:
    """The delays between successive polls: :data:`FIRST_DELAY`, growing by :data:`GROWTH`, at most
    :data:`LONGEST_DELAY`."""
    for step in itertools.count():
        yield min(LONGEST_DELAY, FIRST_DELAY * GROWTH**step)


async def wait_for_job(
    client: JobClient,
    system_name: str,
    job_id: str,
    timeout: float | None = None,
    not_found_timeout: float = NOT_FOUND_TIMEOUT,
) -> list[Any]:
    """Poll the job until it has ended and return its last description, as pyfirecrest's ``wait_for_job`` does.

    :param client: the pyfirecrest client.
    :param system_name: the system of the job.
    :param job_id: the job.
    :param timeout: seconds after which the job is cancelled and :class:`JobTimeoutException` raised (None: never).
    :param not_found_timeout: seconds during which an unknown job is asked for again.
    :raises JobTimeoutException: after ``timeout``.
    :raises FirecrestException: any other error answer, or ``Job not found`` after ``not_found_timeout``.
    :calls: GET ``/compute/{system_name}/jobs/{job_id}``, once per poll
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    for delay in poll_delays():
        try:
            job = await client.job_info(system_name, job_id)
        except FirecrestException as exc:
            if not _job_not_found(exc) or loop.time() - start > not_found_timeout:
                raise
        else:
            if _ended(job_state(job)):
                return list(job)
        if timeout is not None and loop.time() + delay - start > timeout:
            with contextlib.suppress(FirecrestException):  # the timeout is the error to report
                await client.cancel_job(system_name, job_id)
            raise _timed_out(job_id)
        await asyncio.sleep(delay)
    raise AssertionError('poll_delays() never ends')  # pragma: no cover


def job_state(job: Any) -> str:
    """The scheduler state of a job description (a list of one job, as ``job_info`` answers), e.g. ``COMPLETED``."""
    state = job[0]['status']['state']
    return ','.join(state) if isinstance(state, list) else str(state)


def _job_not_found(exc: FirecrestException) -> bool:
    """Whether the error is the scheduler not knowing the job yet (it may take a few seconds to list a new one)."""
    response = exc.responses[-1] if exc.responses else None
    return response is not None and response.status_code == 404
