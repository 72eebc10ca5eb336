"""A job submission is never doubled and never lost: after an uncertain answer the job is looked for by its working
directory before it is submitted again.

:func:`submit_once` is tested on a scripted client (one behaviour per test); the scheduler on the local server, whose
fault switch loses the answers of submissions after the job was created (seeded).
"""

from __future__ import annotations

import collections
import posixpath
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from firecrest.FirecrestException import UnexpectedStatusException

from aiida_firecrest.client import firecrest_client
from aiida_firecrest.client.retry_policy import Backoff
from aiida_firecrest.scheduler import FirecrestScheduler
from aiida_firecrest.scheduler.job_submission import SETTLE_DELAYS, SUBMIT_ATTEMPTS, UNSETTLED, submit_once
from aiida_firecrest.server import LocalFirecrest
from aiida_firecrest.server.middleware import DROPPED
from tests.conftest import make_sync_client
from tests.remote_files import RemotePath
from tests.scheduler.test_scheduler_server import upload_script

SUBMIT = 'POST /compute/{system_name}/jobs'
WORKDIR = '/scratch/calc/ab/cd'
SCRIPT = f'{WORKDIR}/_aiidasubmit.sh'


def refusal(status: int, message: str) -> UnexpectedStatusException:
    response = httpx.Response(status, json={'message': message}, request=httpx.Request('POST', 'https://f/jobs'))
    return UnexpectedStatusException([response], 201)


class ScriptedClient:
    """A FirecREST client whose submissions do what ``outcomes`` say, in turn: ``'ok'``, ``'lost'`` (the job is
    created, the answer lost), ``'dropped'`` (nothing created) or an exception to raise; ``hidden_looks`` is how many
    looks at the jobs list miss a new job; ``list_fails`` makes every look fail."""

    def __init__(self, *outcomes: Any, hidden_looks: int = 0, list_fails: bool = False) -> None:
        self.outcomes = list(outcomes)
        self.hidden_looks = hidden_looks
        self.list_fails = list_fails
        self.jobs: list[dict[str, Any]] = [{'jobId': '7', 'workingDirectory': '/scratch/other'}]
        self.submits = 0
        self.looks = 0

    async def submit(self, system: str, working_dir: str, script_remote_path: str) -> dict[str, Any]:
        self.submits += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome in ('ok', 'lost'):
            self.jobs.append({'jobId': str(100 + self.submits), 'workingDirectory': working_dir + '/'})
        if outcome == 'ok':
            return {'jobId': str(100 + self.submits)}
        raise httpx.RemoteProtocolError('Server disconnected without sending a response.')

    async def job_info(self, system: str) -> list[dict[str, Any]]:
        self.looks += 1
        if self.list_fails:
            raise httpx.ConnectError('refused')
        return self.jobs[:1] if self.looks <= self.hidden_looks else self.jobs


async def no_wait(seconds: float) -> None:
    pass


@pytest.fixture(autouse=True)
def forget_unsettled() -> Iterator[None]:
    yield
    UNSETTLED.settle(KEY)


KEY = ('https://f', 'cluster', WORKDIR)


async def submit(client: ScriptedClient) -> str:
    return await submit_once(client, 'cluster', WORKDIR, SCRIPT, key=KEY, sleep=no_wait)


async def test_answered_submission_is_not_looked_for() -> None:
    client = ScriptedClient('ok')
    assert await submit(client) == '101'
    assert (client.submits, client.looks) == (1, 0)


async def test_lost_answer_finds_the_job_without_submitting_again() -> None:
    client = ScriptedClient('lost', 'ok')
    assert await submit(client) == '101'
    assert (client.submits, client.looks) == (1, 1)


async def test_job_missing_from_the_list_for_a_while_is_found() -> None:
    client = ScriptedClient('lost', 'ok', hidden_looks=2)
    assert await submit(client) == '101'
    assert (client.submits, client.looks) == (1, 3)


async def test_submission_that_created_nothing_is_made_again() -> None:
    client = ScriptedClient('dropped', 'ok')
    assert await submit(client) == '102'
    assert (client.submits, client.looks) == (2, len(SETTLE_DELAYS))


@pytest.mark.parametrize(
    'failure',
    [
        refusal(500, 'Unexpected Slurm command response. exit_status:1 std_err:sbatch: error: Invalid account'),
        refusal(400, 'validation error'),
        httpx.ConnectError('refused'),
    ],
)
async def test_certain_failure_is_raised_without_looking(failure: Exception) -> None:
    client = ScriptedClient(failure)
    with pytest.raises(type(failure)):
        await submit(client)
    assert (client.submits, client.looks) == (1, 0)


@pytest.mark.parametrize('failure', [refusal(500, "('Channel not open for sending',)"), refusal(503, 'unavailable')])
async def test_uncertain_answers_are_looked_for(failure: Exception) -> None:
    client = ScriptedClient(failure, 'ok')
    await submit(client)
    assert client.looks == len(SETTLE_DELAYS)


async def test_attempts_are_bounded() -> None:
    client = ScriptedClient(*['dropped'] * SUBMIT_ATTEMPTS)
    with pytest.raises(httpx.RemoteProtocolError):
        await submit(client)
    assert client.submits == SUBMIT_ATTEMPTS


async def test_unsettled_submission_is_looked_for_first_on_the_next_call() -> None:
    client = ScriptedClient('lost', list_fails=True)
    with pytest.raises(httpx.ConnectError):
        await submit(client)
    client.list_fails = False
    client.outcomes = ['ok']
    assert await submit(client) == '101'
    assert client.submits == 1


# --- the scheduler on the local server -----------------------------------------------------------------------------

JOBS = 6


@pytest.fixture
def lost_submissions(scheduler_server: LocalFirecrest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server loses half of the answers after acting (seeded); the client's repeats wait a moment only."""
    monkeypatch.setattr(firecrest_client, 'DEFAULT_BACKOFF', Backoff(attempts=6, base=0.001, cap=0.001))
    scheduler_server.faults.seed = 3
    scheduler_server.faults.drop_after_acting_fraction = 0.5
    yield
    scheduler_server.faults.drop_after_acting_fraction = 0.0
    scheduler_server.faults.seed = None


def test_lost_answers_neither_double_nor_lose_a_job(
    firecrest_scheduler: FirecrestScheduler,
    scheduler_server: LocalFirecrest,
    scheduler_workdir: RemotePath,
    server_config: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    directories = [scheduler_workdir / f'calc{index}' for index in range(JOBS)]
    scripts = []
    for directory in directories:
        firecrest_scheduler.transport.makedirs(str(directory))
        scripts.append(upload_script(firecrest_scheduler, directory, 'sleep 30'))  # listed while the test runs
    mark = scheduler_server.request_log.mark()
    request.getfixturevalue('lost_submissions')
    job_ids = [firecrest_scheduler.submit_job(str(d), script) for d, script in zip(directories, scripts, strict=True)]
    scheduler_server.faults.drop_after_acting_fraction = 0.0

    listed = make_sync_client(server_config).job_info(server_config['compute_resource'])
    for job_id in job_ids:
        firecrest_scheduler.kill_job(str(job_id))
    per_directory = collections.Counter(posixpath.normpath(job['workingDirectory']) for job in listed)
    assert [per_directory[str(d)] for d in directories] == [1] * JOBS
    id_of = {posixpath.normpath(job['workingDirectory']): str(job['jobId']) for job in listed}
    assert job_ids == [id_of[str(d)] for d in directories]
    submissions = [r.status for r in scheduler_server.request_log.since(mark) if r.endpoint == SUBMIT]
    assert DROPPED in submissions  # some answers were lost: the test is not vacuous
    assert submissions.count(201) + submissions.count(DROPPED) == JOBS  # never submitted again
