"""The answers of a real FirecREST v2 server (``data/observed_jobs.json``) to ``JobInfo``, detailed job info and exit
codes: pure functions, no server."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from aiida.engine import CalcJob
from aiida.schedulers.datastructures import JobInfo, JobState
from aiida.schedulers.plugins.slurm import SlurmScheduler

from aiida_firecrest.scheduler import FirecrestScheduler
from aiida_firecrest.scheduler.job_parsing import build_detailed_job_info, parse_job

OBSERVED = json.loads((Path(__file__).parent / 'data' / 'observed_jobs.json').read_text())
UTC = datetime.timezone.utc


def observed_job(name: str) -> dict[str, Any]:
    """A deep copy of the one job of a recorded ``GET /compute/{system}/jobs/{jobid}`` answer."""
    (job,) = OBSERVED[name]['body']['jobs']
    return copy.deepcopy(job)


def with_state(name: str, state: str, reason: str = 'None') -> dict[str, Any]:
    job = observed_job(name)
    job['status']['state'] = state
    job['status']['stateReason'] = reason
    return job


def test_running_job() -> None:
    info = parse_job(observed_job('job_running'))
    assert info.job_id == '24'
    assert info.job_state is JobState.RUNNING
    assert info.job_substate == 'RUNNING'
    assert info.title == 'shape-cancel'
    assert info.job_owner == 'fireuser'
    assert info.queue_name == 'normal'
    assert info.account == 'fireacct'
    assert info.num_machines == 1
    assert info.allocated_machines_raw == 'vm'
    assert info.wallclock_time_seconds == 1
    assert info.requested_wallclock_time_seconds is None  # no limit reported
    assert info.dispatch_time == datetime.datetime.fromtimestamp(1795462735, tz=UTC)
    assert info.dispatch_time.tzinfo is not None
    assert info.annotation is None  # the server writes the string 'None'
    for unset in ('finish_time', 'exit_status', 'terminating_signal', 'submission_time', 'num_mpiprocs'):
        assert info[unset] is None, unset


def test_completed_job() -> None:
    info = parse_job(observed_job('job_completed'))
    assert info.job_id == '22'
    assert info.job_state is JobState.DONE
    assert info.exit_status == 0
    assert info.terminating_signal == 0
    assert info.wallclock_time_seconds == 0
    assert info.dispatch_time == info.finish_time == datetime.datetime.fromtimestamp(1795462732, tz=UTC)


def test_failed_job() -> None:
    info = parse_job(observed_job('job_failed'))
    assert info.job_state is JobState.DONE
    assert info.job_substate == 'FAILED'
    assert info.exit_status == 3
    assert info.finish_time == datetime.datetime.fromtimestamp(1795462733, tz=UTC)


def test_cancelled_job() -> None:
    """The real server reports a job cancelled by its user as 'CANCELLED by <uid>'."""
    info = parse_job(observed_job('job_cancelled'))
    assert info.job_state is JobState.DONE
    assert info.job_substate == 'CANCELLED by 1002'


def test_jobs_list() -> None:
    jobs = OBSERVED['jobs_list']['body']['jobs']
    infos = [parse_job(job) for job in jobs]
    assert [info.job_id for info in infos] == [str(n) for n in range(1, 25)]
    assert {info.job_state for info in infos} == {JobState.DONE}
    by_id = {info.job_id: info for info in infos}
    assert by_id['1'].requested_wallclock_time_seconds == 900  # a transfer job's '#SBATCH --time=0-00:15:00'
    assert by_id['5'].requested_wallclock_time_seconds == 31536000
    assert by_id['8'].terminating_signal == 53
    assert by_id['17'].wallclock_time_seconds == 60


def test_pending_held_job() -> None:
    job = with_state('job_running', 'PENDING', 'JobHeldUser')
    job['nodes'] = 'None assigned'
    job['allocationNodes'] = 0
    job['time'].update(start=0, elapsed=0, limit=300)
    info = parse_job(job)
    assert info.job_state is JobState.QUEUED_HELD
    assert info.annotation == 'JobHeldUser'
    assert info.requested_wallclock_time_seconds == 300
    for unset in ('allocated_machines_raw', 'num_machines', 'dispatch_time', 'exit_status'):
        assert info.get(unset) is None, unset


def test_pending_job_with_expected_start() -> None:
    """Slurm may report the expected start of a pending job: that is no dispatch time."""
    job = with_state('job_running', 'PENDING', 'Priority')
    job['time']['start'] = 1895462735
    info = parse_job(job)
    assert info.job_state is JobState.QUEUED
    assert info.annotation == 'Priority'
    assert info.get('dispatch_time') is None


def test_minimal_job() -> None:
    """A job with little more than an id and a state is still parsed."""
    info = parse_job({'jobId': 7, 'status': {'state': 'R'}})
    assert info.job_id == '7'
    assert info.job_state is JobState.RUNNING


@pytest.mark.parametrize('job', [{}, {'jobId': None}, {'jobId': ''}])
def test_job_without_id(job: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match='jobId'):
        parse_job(job)


@pytest.mark.parametrize('name', ['job_running', 'job_completed', 'job_failed', 'job_cancelled'])
def test_job_info_serializes(name: str) -> None:
    """AiiDA stores the job info on the node as JSON: dates are timezone-aware and round-trip."""
    info = parse_job(observed_job(name))
    data = json.loads(info.serialize())
    assert data['dispatch_time']['timezone'] == 'UTC'
    restored = JobInfo.load_from_dict(data)
    assert restored.job_state is info.job_state
    assert restored.dispatch_time == info.dispatch_time


def sacct_rows(detailed: dict[str, Any]) -> list[dict[str, str]]:
    header, *rows = detailed['stdout'].splitlines()
    fields = header.split('|')
    return [dict(zip(fields, row.split('|'), strict=True)) for row in rows]


def test_detailed_job_info_shape() -> None:
    detailed = build_detailed_job_info(observed_job('job_failed'))
    assert detailed['retval'] == 0
    assert detailed['stderr'] == ''
    assert detailed['job']['jobId'] == '23'
    json.dumps(detailed)  # stored on the node as an attribute
    job, batch = sacct_rows(detailed)
    assert job['JobID'] == '23'
    assert job['JobName'] == 'shape-fail'
    assert job['State'] == 'FAILED'
    assert job['ExitCode'] == '3:0'
    assert job['Elapsed'] == '00:00:01'
    assert job['ElapsedRaw'] == '1'
    assert job['NodeList'] == 'vm'
    assert job['User'] == 'fireuser'
    assert job['Account'] == 'fireacct'
    assert job['Start'] == '2026-11-23T19:38:52+00:00'
    assert job['Reason'] == ''
    assert batch['JobID'] == '23.batch'
    assert batch['State'] == 'FAILED'
    assert batch['Partition'] == 'normal'


def test_detailed_job_info_keeps_cancelling_user() -> None:
    (job, batch) = sacct_rows(build_detailed_job_info(observed_job('job_cancelled')))
    assert job['State'] == 'CANCELLED by 1002'
    assert batch['ExitCode'] == '0:15'


def test_detailed_job_info_long_durations() -> None:
    job = observed_job('job_completed')
    job['time'].update(elapsed=2 * 86400 + 3661, limit=86400)
    (row, _) = sacct_rows(build_detailed_job_info(job))
    assert row['Elapsed'] == '2-01:01:01'
    assert row['Timelimit'] == '1-00:00:00'


def test_detailed_job_info_escapes_separator() -> None:
    job = observed_job('job_completed')
    job['name'] = 'a|b'
    (row, _) = sacct_rows(build_detailed_job_info(job))
    assert row['JobName'] == 'a b'


@pytest.mark.parametrize(
    ('state', 'exit_code'),
    [
        ('TIMEOUT', 'ERROR_SCHEDULER_OUT_OF_WALLTIME'),
        ('TO', 'ERROR_SCHEDULER_OUT_OF_WALLTIME'),
        ('OUT_OF_MEMORY', 'ERROR_SCHEDULER_OUT_OF_MEMORY'),
        ('OOM', 'ERROR_SCHEDULER_OUT_OF_MEMORY'),
        ('NODE_FAIL', 'ERROR_SCHEDULER_NODE_FAILURE'),
        ('COMPLETED', None),
        ('FAILED', None),
        ('CANCELLED by 1002', None),
        ('PREEMPTED', None),
    ],
)
def test_parse_output_from_end_state(state: str, exit_code: str | None) -> None:
    """The end state of the job gives the exit codes of aiida-core's Slurm plugin, with no request."""
    detailed = build_detailed_job_info(with_state('job_completed', state))
    expected = None if exit_code is None else getattr(CalcJob.exit_codes, exit_code)
    assert FirecrestScheduler().parse_output(detailed, '', '') == expected
    assert SlurmScheduler().parse_output(detailed, '', '') == expected


@pytest.mark.parametrize(
    ('stderr', 'exit_code'),
    [
        (
            'slurmstepd: error: *** JOB 5 ON vm CANCELLED AT 2026-11-23T19:38:52 DUE TO TIME LIMIT ***',
            'ERROR_SCHEDULER_OUT_OF_WALLTIME',
        ),
        ('slurmstepd: error: Detected 1 oom-kill event(s): Exceeded job memory limit', 'ERROR_SCHEDULER_OUT_OF_MEMORY'),
        ('', None),
    ],
)
def test_parse_output_from_stderr(stderr: str, exit_code: str | None) -> None:
    expected = None if exit_code is None else getattr(CalcJob.exit_codes, exit_code)
    assert FirecrestScheduler().parse_output(None, '', stderr) == expected


def test_parse_output_rejects_foreign_detailed_info() -> None:
    with pytest.raises(ValueError):
        FirecrestScheduler().parse_output({'retval': 0, 'stdout': 'nothing', 'stderr': ''}, '', '')
