"""Waiting for transfer jobs: the delays between polls, and what the wait does with each answer."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from firecrest.FirecrestException import FirecrestException, JobTimeoutException

from aiida_firecrest.client import transfer_wait
from aiida_firecrest.client.transfer_wait import job_state, poll_delays, wait_for_job


def job(state: str) -> list[dict[str, Any]]:
    return [{'jobId': '7', 'status': {'state': state}}]


def not_found() -> FirecrestException:
    return FirecrestException([httpx.Response(404, json={'message': 'Job not found.'})])


class FakeJobs:
    """A client whose ``job_info`` gives the answers in turn (an exception is raised); cancellations recorded."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.cancelled: list[str] = []

    async def job_info(self, system_name: str, jobid: str) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def cancel_job(self, system_name: str, jobid: str) -> None:
        self.cancelled.append(jobid)


@pytest.fixture
def no_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls without delays (``asyncio.sleep`` itself stays untouched: other event loops of the session use it)."""
    monkeypatch.setattr(transfer_wait, 'poll_delays', lambda: itertools.repeat(0.0))


def test_delays_grow_by_a_quarter_up_to_the_longest() -> None:
    delays = list(itertools.islice(poll_delays(), 20))
    assert delays[:3] == pytest.approx([0.2, 0.25, 0.3125])
    assert max(delays) == transfer_wait.LONGEST_DELAY


def test_a_job_is_seen_late_by_a_bounded_part_of_its_duration() -> None:
    """A job ending just after the poll at ``elapsed`` is seen ``delay`` later: from 2 s on, at most 35 % of
    ``elapsed`` (pyfirecrest's doubling: up to 100 %)."""
    elapsed = 0.0
    for delay in itertools.islice(poll_delays(), 60):
        if elapsed >= 2.0:
            assert delay <= 0.35 * elapsed
        elapsed += delay


@pytest.mark.parametrize(('duration', 'polls'), [(2.0, 7), (10.0, 13), (60.0, 24)])
def test_polls_of_a_job_of_some_duration(duration: float, polls: int) -> None:
    """What the docstring of the module promises: a few more polls than pyfirecrest's 5, 7 and 9."""
    elapsed, count = 0.0, 1
    for delay in poll_delays():
        if elapsed >= duration:
            break
        elapsed, count = elapsed + delay, count + 1
    assert count == polls


@pytest.mark.parametrize('end', ['COMPLETED', 'FAILED', 'CANCELLED'])
@pytest.mark.usefixtures('no_delays')
async def test_polls_until_the_job_has_ended(end: str) -> None:
    client = FakeJobs(job('PENDING'), job('RUNNING'), job(end), job('COMPLETED'))
    assert await wait_for_job(client, 'cluster', '7') == job(end)
    assert client.answers == [job('COMPLETED')]


@pytest.mark.usefixtures('no_delays')
async def test_a_job_not_known_yet_is_asked_for_again() -> None:
    client = FakeJobs(not_found(), job('COMPLETED'))
    assert await wait_for_job(client, 'cluster', '7') == job('COMPLETED')


@pytest.mark.usefixtures('no_delays')
async def test_a_job_still_unknown_after_the_not_found_timeout_is_an_error() -> None:
    with pytest.raises(FirecrestException):
        await wait_for_job(FakeJobs(not_found()), 'cluster', '7', not_found_timeout=-1)


@pytest.mark.usefixtures('no_delays')
async def test_other_errors_are_raised_at_once() -> None:
    error = FirecrestException([httpx.Response(500, json={'message': 'boom'})])
    client = FakeJobs(error, job('COMPLETED'))
    with pytest.raises(FirecrestException) as raised:
        await wait_for_job(client, 'cluster', '7')
    assert raised.value is error
    assert client.answers == [job('COMPLETED')]


@pytest.mark.usefixtures('no_delays')
async def test_timeout_cancels_the_job() -> None:
    client = FakeJobs(job('RUNNING'))
    with pytest.raises(JobTimeoutException):
        await wait_for_job(client, 'cluster', '7', timeout=-1.0)
    assert client.cancelled == ['7']


@pytest.mark.parametrize('state', ['COMPLETED', ['COMPLETED'], ['FAILED', 'REQUEUED']], ids=['text', 'list', 'several'])
def test_job_state_reads_a_text_or_a_list(state: Any) -> None:
    expected = ','.join(state) if isinstance(state, list) else state
    assert job_state([{'jobId': '7', 'status': {'state': state}}]) == expected
