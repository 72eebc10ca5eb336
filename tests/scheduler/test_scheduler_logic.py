"""The scheduler's requests and caches, against a fake FirecREST client (the server tests use the real one)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiida.engine import CalcJob
from aiida.schedulers import SchedulerError
from aiida.schedulers.datastructures import JobState
from firecrest.FirecrestException import UnexpectedStatusException

from aiida_firecrest.scheduler import FirecrestScheduler, job_records
from aiida_firecrest.scheduler.job_parsing import parse_job

OBSERVED = json.loads((Path(__file__).parent / 'data' / 'observed_jobs.json').read_text())


def error_answer(status: int, message: str) -> UnexpectedStatusException:
    request = httpx.Request('GET', 'http://firecrest.test/compute/cluster/jobs')
    response = httpx.Response(status, json={'errorType': 'error', 'message': message}, request=request)
    return UnexpectedStatusException([response], 200)


class FakeClient:
    """Answers like the real server (recorded answers), and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.jobs: list[dict[str, Any]] = copy.deepcopy(OBSERVED['jobs_list']['body']['jobs'])
        self.fail: Exception | None = None
        self.next_id = 100

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        if self.fail is not None:
            raise self.fail

    async def submit(self, system_name: str, **kwargs: Any) -> dict[str, Any]:
        self._record('submit', system_name, **kwargs)
        self.next_id += 1
        return {'jobId': str(self.next_id)}

    async def job_info(self, system_name: str, jobid: str | None = None) -> list[dict[str, Any]]:
        self._record('job_info', system_name, jobid=jobid)
        if jobid is None:
            return copy.deepcopy(self.jobs)
        matching = [job for job in self.jobs if job['jobId'] == jobid]
        if not matching:
            raise error_answer(404, 'Job not found.')
        return copy.deepcopy(matching)

    async def cancel_job(self, system_name: str, jobid: str) -> dict[str, Any]:
        self._record('cancel_job', system_name, jobid)
        return {}

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


class FakeTransport:
    """The interface of an open FirecrestTransport that the scheduler uses."""

    def __init__(self, url: str = 'http://firecrest.test') -> None:
        self.client = FakeClient()
        self.url = url
        self.compute_resource = 'cluster'
        self.billing_account: str | None = 'fireacct'

    def run_command_blocking(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(func(*args, **kwargs))
        finally:
            loop.close()


@pytest.fixture(autouse=True)
def fresh_records() -> Iterator[None]:
    job_records.RECORDS.clear()
    yield
    job_records.RECORDS.clear()


def make_scheduler(transport: FakeTransport) -> FirecrestScheduler:
    scheduler = FirecrestScheduler()
    scheduler._transport = transport  # type: ignore[assignment]  # set_transport accepts FirecrestTransport only
    return scheduler


def submit(transport: FakeTransport) -> str:
    job_id = make_scheduler(transport).submit_job('/w', 's.sh')
    assert isinstance(job_id, str)
    return job_id


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


def test_refuses_other_transports() -> None:
    from aiida.transports.plugins.local import LocalTransport

    with pytest.raises(SchedulerError, match='only with the `firecrest` transport'):
        FirecrestScheduler().set_transport(LocalTransport(machine='localhost'))


@pytest.mark.parametrize('billing_account', ['fireacct', '', None])
def test_submit(transport: FakeTransport, billing_account: str | None) -> None:
    """The submission names no account, whatever the billing account: FirecREST would pass it to ``sbatch --account``,
    over the script's own ``#SBATCH --account``."""
    transport.billing_account = billing_account
    job_id = make_scheduler(transport).submit_job('/scratch/ab/cd/ef', '_aiidasubmit.sh')
    assert job_id == '101'
    assert transport.client.calls == [
        (
            'submit',
            ('cluster',),
            {'working_dir': '/scratch/ab/cd/ef', 'script_remote_path': '/scratch/ab/cd/ef/_aiidasubmit.sh'},
        )
    ]


def test_submit_invalid_account(transport: FakeTransport) -> None:
    transport.client.fail = error_answer(
        400, 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified'
    )
    assert make_scheduler(transport).submit_job('/w', 's.sh') == CalcJob.exit_codes.ERROR_SCHEDULER_INVALID_ACCOUNT


@pytest.mark.parametrize(
    'error',
    [error_answer(400, 'sbatch: error: invalid partition'), httpx.ConnectError('refused'), error_answer(500, 'x')],
    ids=['refused', 'unreachable', 'server-error'],
)
def test_submit_errors(transport: FakeTransport, error: Exception) -> None:
    transport.client.fail = error
    with pytest.raises(SchedulerError, match=r'could not submit /w/s\.sh') as info:
        make_scheduler(transport).submit_job('/w', 's.sh')
    assert info.value.__cause__ is not None


def test_get_jobs_one_request(transport: FakeTransport) -> None:
    wanted = ['22', '23', '24', '5']
    jobs = make_scheduler(transport).get_jobs(jobs=wanted, as_dict=True)
    assert transport.client.names() == ['job_info']
    assert transport.client.calls[0][2] == {'jobid': None}
    assert sorted(jobs) == sorted(wanted)
    assert jobs['23'].exit_status == 3


def test_get_jobs_list_and_all(transport: FakeTransport) -> None:
    scheduler = make_scheduler(transport)
    assert [info.job_id for info in scheduler.get_jobs(jobs=['2', '1'])] == ['1', '2']
    assert len(scheduler.get_jobs()) == 24
    assert len(scheduler.get_jobs(user='$USER')) == 24
    assert len(scheduler.get_jobs(user='fireuser')) == 24
    assert scheduler.get_jobs(user='someone-else') == []
    assert transport.client.names() == ['job_info'] * 5


def test_get_jobs_missing_job_is_left_out(transport: FakeTransport) -> None:
    """A job the answer lacks counts as done for AiiDA: it is not reported."""
    assert make_scheduler(transport).get_jobs(jobs=['22', '999'], as_dict=True).keys() == {'22'}


def test_get_jobs_skips_malformed_jobs(transport: FakeTransport) -> None:
    transport.client.jobs.append({'name': 'no id'})
    transport.client.jobs.append('not a dict')  # type: ignore[arg-type]
    assert len(make_scheduler(transport).get_jobs()) == 24


@pytest.mark.parametrize(
    ('jobs', 'message'), [(['1'], 'could not get job 1'), (['1', '2'], 'could not list the jobs')], ids=['one', 'two']
)
def test_get_jobs_error(transport: FakeTransport, jobs: list[str], message: str) -> None:
    transport.client.fail = httpx.ReadTimeout('slow')
    with pytest.raises(SchedulerError, match=message):
        make_scheduler(transport).get_jobs(jobs=jobs)


def test_one_job_is_asked_by_id(transport: FakeTransport) -> None:
    """The engine's poll of one CalcJob asks FirecREST about that job: one request, which reports the job as soon as
    it ends (the jobs list leaves it out for a few seconds)."""
    job_id = str(transport.client.jobs[0]['jobId'])
    info = make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True)[job_id]
    assert info.job_id == job_id
    assert [(name, kwargs) for name, _, kwargs in transport.client.calls] == [('job_info', {'jobid': job_id})]


def test_several_jobs_are_asked_in_one_list(transport: FakeTransport) -> None:
    ids = [str(job['jobId']) for job in transport.client.jobs[:3]]
    assert set(make_scheduler(transport).get_jobs(jobs=ids, as_dict=True)) == set(ids)
    assert [(name, kwargs) for name, _, kwargs in transport.client.calls] == [('job_info', {'jobid': None})]


def test_just_submitted_job_not_listed_yet(transport: FakeTransport) -> None:
    """pyfirecrest#199: FirecREST may not list a job it just submitted; that is not the job being done."""
    job_id = submit(transport)
    jobs = make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True)  # a new scheduler, as the engine makes
    assert jobs[job_id].job_state is JobState.QUEUED


def test_job_missing_after_running_is_reported_as_last_listed(transport: FakeTransport) -> None:
    """The jobs list leaves out a job that has just ended (for about 4 s): the job is reported as last listed until
    the list reports it finished, whose record then serves the detailed job info without a request."""
    job_id = submit(transport)
    transport.client.jobs.append({'jobId': job_id, 'status': {'state': 'RUNNING'}, 'nodes': 'nid01'})
    assert make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True)[job_id].job_state is JobState.RUNNING

    transport.client.jobs.pop()
    missing = make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True)[job_id]
    assert missing.job_state is JobState.RUNNING
    assert missing.allocated_machines_raw == 'nid01'
    assert 'missing from the FirecREST jobs list' in missing.annotation

    transport.client.jobs.append({'jobId': job_id, 'status': {'state': 'COMPLETED', 'exitCode': 0}})
    assert make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True)[job_id].job_state is JobState.DONE
    assert make_scheduler(transport).get_detailed_job_info(job_id)['retval'] == 0
    assert transport.client.names() == ['submit', 'job_info', 'job_info', 'job_info']


@pytest.mark.parametrize('listed', [None, 'RUNNING'], ids=['never-listed', 'listed-running'])
def test_grace_expires(transport: FakeTransport, monkeypatch: pytest.MonkeyPatch, listed: str | None) -> None:
    """A known unfinished job missing from the list for longer than the grace is done: polling cannot hang."""
    job_id = submit(transport)
    if listed is not None:
        transport.client.jobs.append({'jobId': job_id, 'status': {'state': listed}})
        make_scheduler(transport).get_jobs(jobs=[job_id])
        transport.client.jobs.pop()
    monkeypatch.setattr(job_records, 'MISSING_GRACE_SECONDS', -1.0)
    assert make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True) == {}


def test_finished_job_missing_is_done(transport: FakeTransport) -> None:
    job_id = submit(transport)
    transport.client.jobs.append({'jobId': job_id, 'status': {'state': 'COMPLETED'}})
    make_scheduler(transport).get_jobs(jobs=[job_id])
    transport.client.jobs.pop()
    assert make_scheduler(transport).get_jobs(jobs=[job_id], as_dict=True) == {}


def test_grace_is_per_server(transport: FakeTransport) -> None:
    job_id = submit(transport)
    other = FakeTransport(url='http://other.test')
    assert make_scheduler(other).get_jobs(jobs=[job_id], as_dict=True) == {}


def test_detailed_job_info_from_poll_needs_no_request(transport: FakeTransport) -> None:
    """The engine polls, then retrieves with new scheduler instances: what the poll learnt is reused."""
    make_scheduler(transport).get_jobs(jobs=['23'], as_dict=True)
    scheduler = make_scheduler(transport)
    detailed = scheduler.get_detailed_job_info('23')
    assert transport.client.names() == ['job_info']
    assert detailed['retval'] == 0
    assert detailed['job']['status']['exitCode'] == 3
    assert scheduler.parse_output(detailed, '', '') is None


def _submitted_again(transport: FakeTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    transport.client.next_id = 22
    assert submit(transport) == '23'


def _listed_unfinished(transport: FakeTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    job = next(job for job in transport.client.jobs if job['jobId'] == '23')
    job['status'] = {**job['status'], 'state': 'RUNNING'}
    make_scheduler(transport).get_jobs(jobs=['23'])


def _expired(transport: FakeTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_records, 'FINISHED_MAX_AGE_SECONDS', -1.0)


@pytest.mark.parametrize('reuse', [_submitted_again, _listed_unfinished, _expired], ids=lambda reuse: reuse.__name__)
def test_detailed_job_info_of_a_reused_job_id(
    transport: FakeTransport, monkeypatch: pytest.MonkeyPatch, reuse: Any
) -> None:
    """A server may give a job id again: an earlier job's record is not the detailed job info of the new one."""
    make_scheduler(transport).get_jobs(jobs=['23'])  # job 23 finished, exit code 3
    reuse(transport, monkeypatch)
    job = next(job for job in transport.client.jobs if job['jobId'] == '23')
    job['status'] = {**job['status'], 'state': 'COMPLETED', 'exitCode': 0}
    calls = len(transport.client.calls)
    detailed = make_scheduler(transport).get_detailed_job_info('23')
    assert transport.client.calls[calls:] == [('job_info', ('cluster',), {'jobid': '23'})]
    assert detailed['job']['status']['exitCode'] == 0


def test_detailed_job_info_of_unpolled_job_one_request(transport: FakeTransport) -> None:
    detailed = make_scheduler(transport).get_detailed_job_info('22')
    assert transport.client.calls == [('job_info', ('cluster',), {'jobid': '22'})]
    assert detailed['retval'] == 0
    # now remembered: no second request
    make_scheduler(transport).get_detailed_job_info('22')
    assert len(transport.client.calls) == 1


def test_detailed_job_info_running_job_not_cached(transport: FakeTransport) -> None:
    transport.client.jobs.append({'jobId': '77', 'status': {'state': 'RUNNING'}})
    make_scheduler(transport).get_jobs(jobs=['77'])
    make_scheduler(transport).get_detailed_job_info('77')
    make_scheduler(transport).get_detailed_job_info('77')
    assert transport.client.names() == ['job_info'] * 3


def test_detailed_job_info_unknown_job(transport: FakeTransport) -> None:
    detailed = make_scheduler(transport).get_detailed_job_info('999')
    assert detailed['retval'] == 1
    assert 'Job not found' in detailed['stderr']


def test_detailed_job_info_error(transport: FakeTransport) -> None:
    transport.client.fail = httpx.ConnectError('down')
    with pytest.raises(SchedulerError, match='could not get job 5'):
        make_scheduler(transport).get_detailed_job_info('5')


def test_parse_output_walltime_from_poll(transport: FakeTransport) -> None:
    transport.client.jobs[21]['status']['state'] = 'TIMEOUT'  # job 22
    make_scheduler(transport).get_jobs(jobs=['22'])
    scheduler = make_scheduler(transport)
    exit_code = scheduler.parse_output(scheduler.get_detailed_job_info('22'), '', '')
    assert exit_code == CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME
    assert transport.client.names() == ['job_info']


def test_kill(transport: FakeTransport) -> None:
    assert make_scheduler(transport).kill_job('24') is True
    assert transport.client.calls == [('cancel_job', ('cluster', '24'), {})]


@pytest.mark.parametrize('error', [error_answer(404, 'Job not found.'), httpx.ConnectError('down')])
def test_kill_failure_is_reported(transport: FakeTransport, error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    transport.client.fail = error
    assert make_scheduler(transport).kill_job('24') is False
    assert 'could not cancel job 24' in caplog.text


def test_records_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_records, 'RECORDS_SIZE', 3)
    records = job_records.JobRecords()
    for n in range(5):
        done = parse_job({'jobId': str(n), 'status': {'state': 'COMPLETED'}})
        records.reported(('u', 's', str(n)), done, {'jobId': str(n)})
        records.submitted(('u', 's', f'new{n}'))
    assert [records.finished(('u', 's', str(n))) is not None for n in range(5)] == [False, False, True, True, True]
    assert [records.missing(('u', 's', f'new{n}')) is not None for n in range(5)] == [False, False, True, True, True]
