"""The scheduler against the local FirecREST server, with each job backend (local processes, and real Slurm where a
controller answers): submit, poll, kill, failures, walltime, holds, and the number of requests each costs.

Against a deployment of ``--firecrest-config`` the same tests run once; there is no request log, so the request pins
of a test about a behaviour are not checked (``log_server`` is None), and the tests about request counts skip.
"""

from __future__ import annotations

import collections
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiida.common.datastructures import CodeRunMode
from aiida.engine import CalcJob
from aiida.schedulers.datastructures import JobInfo, JobState, JobTemplate, JobTemplateCodeInfo
from aiida.schedulers.plugins.slurm import SlurmJobResource
from firecrest.v2 import Firecrest

from aiida_firecrest.scheduler import FirecrestScheduler
from aiida_firecrest.scheduler.job_parsing import parse_job
from aiida_firecrest.scheduler.job_records import RECORDS
from aiida_firecrest.server import LocalFirecrest
from tests.conftest import make_sync_client
from tests.remote_files import RemoteFiles, RemotePath

LIST_JOBS = 'GET /compute/{system_name}/jobs'
SUBMIT = 'POST /compute/{system_name}/jobs'
POLL_INTERVAL = 0.5


def settle() -> None:
    """Let the server log the requests already answered.

    The server logs a request once its answer is sent, which may be just after the client has read it.
    """
    time.sleep(0.2)


def mark_now(server: LocalFirecrest | None) -> int:
    """A mark in the server's request log after the requests answered so far (0 without a request log)."""
    if server is None:
        return 0
    settle()
    return server.request_log.mark()


def counts(server: LocalFirecrest | None, mark: int) -> collections.Counter[str] | None:
    """The requests per endpoint that the server answered since ``mark``; None without a request log (a deployment of
    ``--firecrest-config``), where the caller's request pins do not apply."""
    if server is None:
        return None
    settle()
    return server.request_log.counts(mark)


REQUEST_PINS = "pins the requests in the local server's request log"
"""Why the tests about request counts skip against ``--firecrest-config``."""


def is_slurm(server: LocalFirecrest) -> bool:
    return server.settings.scheduler == 'slurm'


def upload_script(
    scheduler: FirecrestScheduler, workdir: RemotePath, body: str, name: str = 'job', **fields: Any
) -> str:
    """Write the batch script of a job running ``body`` with aiida's template fields, upload it through the transport
    into ``workdir``, and return its file name."""
    values: dict[str, Any] = {
        'job_name': name,
        'sched_output_path': f'{name}.out',
        'sched_error_path': f'{name}.err',
        'job_resource': SlurmJobResource(num_machines=1, num_mpiprocs_per_machine=1),
        'prepend_text': body,
        **fields,
    }
    template = JobTemplate()
    for key, value in values.items():
        setattr(template, key, value)
    template.codes_info = [JobTemplateCodeInfo(cmdline_params=['echo', 'code ran'])]
    template.codes_run_mode = CodeRunMode.SERIAL
    filename = f'{name}.sh'
    with tempfile.TemporaryDirectory() as local:
        path = Path(local) / filename
        path.write_text(scheduler.get_submit_script(template))
        scheduler.transport.putfile(str(path), str(workdir / filename))
    return filename


def submit(scheduler: FirecrestScheduler, workdir: RemotePath, body: str, name: str = 'job', **fields: Any) -> str:
    job_id = scheduler.submit_job(str(workdir), upload_script(scheduler, workdir, body, name, **fields))
    assert isinstance(job_id, str), job_id
    return job_id


UNKNOWN_JOB_ID = '999999999'
"""A job id FirecREST does not know: polled beside a job, it makes the poll one of several jobs."""


def poll(scheduler: FirecrestScheduler, job_id: str) -> JobInfo | None:
    return scheduler.get_jobs(jobs=[job_id], as_dict=True).get(job_id)


def wait_for(scheduler: FirecrestScheduler, job_id: str, states: set[JobState], timeout: float) -> JobInfo | None:
    """Poll until the job reaches one of ``states`` (a job missing from the answer is done); return its last info."""
    deadline = time.monotonic() + timeout
    while True:
        info = poll(scheduler, job_id)
        state = JobState.DONE if info is None else info.job_state
        if state in states:
            return info
        if time.monotonic() > deadline:
            pytest.fail(f'job {job_id} still {state} after {timeout} s (wanted {states}): {info}')
        time.sleep(POLL_INTERVAL)


def done(scheduler: FirecrestScheduler, job_id: str, timeout: float = 120) -> JobInfo:
    info = wait_for(scheduler, job_id, {JobState.DONE}, timeout)
    assert info is not None, f'job {job_id} vanished from the answer instead of being reported done'
    return info


def ended(scheduler: FirecrestScheduler, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Ask FirecREST about the job itself (which knows a job that its jobs list leaves out) until it has ended; return
    its answer."""
    deadline = time.monotonic() + timeout
    while True:
        detailed = scheduler.get_detailed_job_info(job_id)
        if detailed['retval'] == 0 and parse_job(detailed['job']).job_state is JobState.DONE:
            return dict(detailed['job'])
        if time.monotonic() > deadline:
            pytest.fail(f'job {job_id} has not ended after {timeout} s: {detailed}')
        time.sleep(POLL_INTERVAL)


def test_submit_and_poll_until_done(
    firecrest_scheduler: FirecrestScheduler,
    log_server: LocalFirecrest | None,
    scheduler_workdir: RemotePath,
    remote_files: RemoteFiles,
) -> None:
    mark = mark_now(log_server)
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'echo hello from the job', name='ok')
    if (answered := counts(log_server, mark)) is not None:
        assert answered[SUBMIT] == 1

    info = done(firecrest_scheduler, job_id)
    assert info.job_id == job_id
    assert info.job_substate == 'COMPLETED'
    assert info.exit_status == 0
    assert info.title == 'ok'
    assert info.job_owner
    assert info.dispatch_time is not None
    assert info.dispatch_time.tzinfo is not None
    assert info.finish_time >= info.dispatch_time
    assert remote_files.read_text(scheduler_workdir / 'ok.out') == 'hello from the job\ncode ran\n'

    # What the poll saw is all the retrieval needs: no request, even from a new scheduler (as the engine makes).
    mark = mark_now(log_server)
    scheduler = FirecrestScheduler()
    scheduler.set_transport(firecrest_scheduler.transport)
    detailed = scheduler.get_detailed_job_info(job_id)
    assert scheduler.parse_output(detailed, '', '') is None
    assert counts(log_server, mark) in (None, collections.Counter())
    assert detailed['retval'] == 0
    assert detailed['job']['jobId'] == job_id


def test_failed_job(
    firecrest_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath, remote_files: RemoteFiles
) -> None:
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'echo failing >&2\nexit 3', name='fail')
    info = done(firecrest_scheduler, job_id)
    assert info.job_substate == 'FAILED'
    assert info.exit_status == 3
    detailed = firecrest_scheduler.get_detailed_job_info(job_id)
    header, job_line = detailed['stdout'].splitlines()[:2]
    fields = dict(zip(header.split('|'), job_line.split('|'), strict=True))
    assert fields['State'] == 'FAILED'
    assert fields['ExitCode'] == '3:0'
    assert firecrest_scheduler.parse_output(detailed, '', 'failing\n') is None
    assert remote_files.read_text(scheduler_workdir / 'fail.err') == 'failing\n'


def test_kill(
    firecrest_scheduler: FirecrestScheduler, log_server: LocalFirecrest | None, scheduler_workdir: RemotePath
) -> None:
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'sleep 300', name='killme')
    wait_for(firecrest_scheduler, job_id, {JobState.RUNNING}, timeout=60)
    mark = mark_now(log_server)
    assert firecrest_scheduler.kill_job(job_id) is True
    if (answered := counts(log_server, mark)) is not None:
        assert sum(answered.values()) == 1
    info = done(firecrest_scheduler, job_id, timeout=60)
    assert info.job_substate.startswith('CANCELLED')


def test_walltime_exceeded(
    firecrest_scheduler: FirecrestScheduler, log_server: LocalFirecrest | None, scheduler_workdir: RemotePath
) -> None:
    """A job past its ``#SBATCH --time`` ends TIMEOUT, and ``parse_output`` gives the walltime exit code."""
    # Slurm counts whole minutes; so may a deployment's scheduler, which the tests cannot tell (it reports 'slurm').
    walltime = 2 if log_server is not None and not is_slurm(log_server) else 60
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'sleep 600', name='slow', max_wallclock_seconds=walltime)
    info = done(firecrest_scheduler, job_id, timeout=walltime + 150)
    assert info.job_substate == 'TIMEOUT'
    assert info.requested_wallclock_time_seconds == walltime

    mark = mark_now(log_server)
    scheduler = FirecrestScheduler()
    scheduler.set_transport(firecrest_scheduler.transport)
    detailed = scheduler.get_detailed_job_info(job_id)
    exit_code = scheduler.parse_output(detailed, '', '')
    assert exit_code == CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME
    assert counts(log_server, mark) in (None, collections.Counter())


@pytest.mark.parametrize('hold', ['custom', 'submit_as_hold'])
def test_held_job(
    firecrest_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath, remote_files: RemoteFiles, hold: str
) -> None:
    fields = {'custom_scheduler_commands': '#SBATCH --hold'} if hold == 'custom' else {'submit_as_hold': True}
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'echo should not run', name='held', **fields)
    try:
        info = wait_for(firecrest_scheduler, job_id, {JobState.QUEUED_HELD, JobState.RUNNING, JobState.DONE}, 60)
        assert info is not None
        assert info.job_state is JobState.QUEUED_HELD
        assert info.annotation == 'JobHeldUser'
        time.sleep(1)
        info = poll(firecrest_scheduler, job_id)
        assert info is not None
        assert info.job_state is JobState.QUEUED_HELD
    finally:
        assert firecrest_scheduler.kill_job(job_id) is True
    # FirecREST never lists a job cancelled before it started; the job itself tells
    assert ended(firecrest_scheduler, job_id)['status']['state'].startswith('CANCELLED')
    assert not remote_files.exists(scheduler_workdir / 'held.out') or 'should not run' not in remote_files.read_text(
        scheduler_workdir / 'held.out'
    )


@pytest.mark.local_server(reason=REQUEST_PINS)
def test_many_jobs_one_request_per_poll(
    firecrest_scheduler: FirecrestScheduler, scheduler_server: LocalFirecrest, scheduler_workdir: RemotePath
) -> None:
    """AiiDA asks about all the jobs of a computer at once: that is ONE request, however many jobs."""
    filename = upload_script(firecrest_scheduler, scheduler_workdir, 'true', name='many')
    mark = mark_now(scheduler_server)
    job_ids = []
    for _ in range(50):
        job_id = firecrest_scheduler.submit_job(str(scheduler_workdir), filename)
        assert isinstance(job_id, str)
        job_ids.append(job_id)
    assert counts(scheduler_server, mark) == collections.Counter({SUBMIT: 50})
    assert len(set(job_ids)) == 50

    polls = 0
    mark = mark_now(scheduler_server)
    deadline = time.monotonic() + 180
    while True:
        jobs = firecrest_scheduler.get_jobs(jobs=job_ids, as_dict=True)
        polls += 1
        assert counts(scheduler_server, mark) == collections.Counter({LIST_JOBS: polls})
        if all(jobs.get(job_id) is None or jobs[job_id].job_state is JobState.DONE for job_id in job_ids):
            break
        assert time.monotonic() < deadline, 'the 50 jobs did not finish in time'
        time.sleep(POLL_INTERVAL)

    # Each finished job's detailed info comes from the polls: no request for the 50 of them.
    mark = mark_now(scheduler_server)
    scheduler = FirecrestScheduler()
    scheduler.set_transport(firecrest_scheduler.transport)
    for job_id in job_ids:
        detailed = scheduler.get_detailed_job_info(job_id)
        assert detailed['retval'] == 0
        assert detailed['job']['status']['state'] == 'COMPLETED'
    assert counts(scheduler_server, mark) == collections.Counter()


@pytest.mark.local_server(reason=REQUEST_PINS)
def test_detailed_job_info_of_unpolled_job_is_one_request(
    firecrest_scheduler: FirecrestScheduler, scheduler_server: LocalFirecrest, scheduler_workdir: RemotePath
) -> None:
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'true', name='unpolled')
    done(firecrest_scheduler, job_id)
    RECORDS.clear()  # as in a new daemon worker

    mark = mark_now(scheduler_server)
    scheduler = FirecrestScheduler()
    scheduler.set_transport(firecrest_scheduler.transport)
    detailed = scheduler.get_detailed_job_info(job_id)
    answered = counts(scheduler_server, mark)
    assert answered is not None
    assert sum(answered.values()) == 1, answered
    (endpoint,) = answered
    assert endpoint.startswith('GET /compute/{system_name}/jobs/')
    assert detailed['retval'] == 0
    assert detailed['job']['jobId'] == job_id


def test_detailed_job_info_of_unknown_job(firecrest_scheduler: FirecrestScheduler) -> None:
    detailed = firecrest_scheduler.get_detailed_job_info('987654321')
    assert detailed['retval'] == 1
    assert 'not found' in str(detailed['stderr']).lower()


def test_submit_without_script_fails(firecrest_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath) -> None:
    """A script that is not there: Slurm's sbatch refuses it (SchedulerError), or the job fails at once."""
    from aiida.schedulers import SchedulerError

    try:
        job_id = firecrest_scheduler.submit_job(str(scheduler_workdir), 'missing.sh')
    except SchedulerError as exc:
        assert 'missing.sh' in str(exc)
    else:
        assert isinstance(job_id, str)
        assert done(firecrest_scheduler, job_id).job_state is JobState.DONE


@pytest.fixture
def raw_client(scheduler_server: LocalFirecrest) -> Iterator[Firecrest]:
    """A pyfirecrest client of the server under test, to look at it past the scheduler (and its records)."""
    client = make_sync_client(scheduler_server.client_config())
    yield client
    client.close_session()


@pytest.mark.local_server(reason="sets the local server's jobs-list gap")
@pytest.mark.parametrize('listed', [JobState.QUEUED, JobState.RUNNING], ids=['never-listed', 'listed-running'])
def test_job_in_the_jobs_list_gap(
    firecrest_scheduler: FirecrestScheduler,
    scheduler_server: LocalFirecrest,
    scheduler_workdir: RemotePath,
    raw_client: Firecrest,
    monkeypatch: pytest.MonkeyPatch,
    listed: JobState,
) -> None:
    """FirecREST's jobs list leaves out a job that has just ended, which the job itself reports ended: polled with
    other jobs (through the list), the scheduler reports it as last listed (queued if never listed), not as done, until
    the list reports it ended. Polled alone (by its id), it is reported done at once."""
    realism = scheduler_server.settings.realism
    monkeypatch.setattr(scheduler_server.settings, 'realism', dataclasses.replace(realism, jobs_list_gap=3600.0))
    system = scheduler_server.settings.system_name
    job_id = submit(firecrest_scheduler, scheduler_workdir, 'sleep 1' if listed is JobState.RUNNING else 'true')
    if listed is JobState.RUNNING:
        wait_for(firecrest_scheduler, job_id, {JobState.RUNNING}, timeout=60)
    deadline = time.monotonic() + 60
    while parse_job(raw_client.job_info(system, jobid=job_id)[0]).job_state is not JobState.DONE:
        assert time.monotonic() < deadline, f'job {job_id} has not ended'
        time.sleep(POLL_INTERVAL)
    assert job_id not in {str(job['jobId']) for job in raw_client.job_info(system)}

    with_others = [job_id, UNKNOWN_JOB_ID]
    info = firecrest_scheduler.get_jobs(jobs=with_others, as_dict=True).get(job_id)
    assert info is not None
    assert info.job_state is listed

    info = poll(firecrest_scheduler, job_id)
    assert info is not None
    assert info.job_state is JobState.DONE

    monkeypatch.setattr(scheduler_server.settings, 'realism', dataclasses.replace(realism, jobs_list_gap=0.0))
    info = firecrest_scheduler.get_jobs(jobs=with_others, as_dict=True).get(job_id)
    assert info is not None
    assert info.job_state is JobState.DONE
    assert info.exit_status == 0


@pytest.mark.parametrize('when', ['unknown', 'ended'])
def test_kill_unknown_or_ended_job(
    firecrest_scheduler: FirecrestScheduler,
    scheduler_workdir: RemotePath,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    """Cancelling a job FirecREST does not know, or one that has ended, fails (the real server answers 500): the
    cancellation is reported failed, in one log line, for the engine to look at the job's state."""
    job_id = '987654321'
    if when == 'ended':
        job_id = submit(firecrest_scheduler, scheduler_workdir, 'true', name='ended')
        ended(firecrest_scheduler, job_id)
    caplog.clear()
    assert firecrest_scheduler.kill_job(job_id) is False
    messages = [record.getMessage() for record in caplog.records if record.name.startswith('aiida.scheduler')]
    assert len(messages) == 1, messages
    assert f'could not cancel job {job_id}' in messages[0]
