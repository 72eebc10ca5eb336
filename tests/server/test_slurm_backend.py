"""Tests of the ``slurm`` job backend: its parsers on canned Slurm 22.05 output, and the backend on the real Slurm."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.pytest_plugin import require_slurm
from aiida_firecrest.server import ServerSettings
from aiida_firecrest.server.errors import ApiError
from aiida_firecrest.server.jobs import JobSpec, SlurmBackend, create_backend
from aiida_firecrest.server.jobs.slurm import (
    SACCT_DELIMITER,
    SACCT_FIELDS,
    merge_jobs,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
)
from tests.server.conftest import async_wait_until

USER = pwd.getpwuid(os.getuid()).pw_name


def sacct_line(**fields: str) -> str:
    """Return one line of ``sacct --parsable2`` output with :data:`SACCT_FIELDS`, empty where not given."""
    return SACCT_DELIMITER.join(fields.get(name, '') for name in SACCT_FIELDS)


def sacct_job(job_id: str, name: str, state: str, exit_code: str, **fields: str) -> str:
    """Return the ``sacct`` line of a job as Slurm 22.05 prints it (times as epoch seconds)."""
    values = {
        'Reason': 'None',
        'Start': '1795465284',
        'End': '1795465288',
        'ElapsedRaw': '4',
        'Suspended': '00:00:00',
        'TimelimitRaw': 'UNLIMITED',
        'Account': 'aiida',
        'AllocNodes': '1',
        'Cluster': 'localcluster',
        'Group': 'root',
        'NodeList': 'vm',
        'Partition': 'normal',
        'Priority': '4294901749',
        'User': 'root',
        'WorkDir': '/tmp/work dir',
        **fields,
    }
    return sacct_line(JobID=job_id, JobName=name, State=state, ExitCode=exit_code, **values)


def sacct_step(job_id: str, state: str, exit_code: str, **fields: str) -> str:
    """Return the ``sacct`` line of a job's batch step."""
    values = {'Start': '1795465284', 'End': '1795465288', 'ElapsedRaw': '4', 'Suspended': '00:00:00', **fields}
    return sacct_line(JobID=f'{job_id}.batch', JobName='batch', State=state, ExitCode=exit_code, **values)


SACCT_OUTPUT = '\n'.join(
    [
        sacct_job('11', 'fail', 'FAILED', '3:0', ElapsedRaw='0', End='1795465284'),
        sacct_step('11', 'FAILED', '3:0', ElapsedRaw='0', End='1795465284'),
        sacct_job('12', 'cancel', 'CANCELLED by 0', '0:0'),
        sacct_step('12', 'CANCELLED', '0:15'),
        sacct_job(
            '13',
            'held',
            'PENDING',
            '0:0',
            Reason='JobHeldUser',
            Start='Unknown',
            End='Unknown',
            ElapsedRaw='0',
            NodeList='None assigned',
            AllocNodes='0',
        ),
        sacct_job('14', 'timeout', 'TIMEOUT', '0:0', TimelimitRaw='1', ElapsedRaw='80', End='1795465364'),
        sacct_step('14', 'CANCELLED', '0:15', ElapsedRaw='82', End='1795465366'),
        sacct_job('15', 'allocation', 'RUNNING', '0:0', End='Unknown', Partition='', WorkDir='', Priority='0'),
        '',
    ]
)


def squeue_job(job_id: int, name: str, state: str, reason: str, exit_code: int, user: str = 'root') -> dict[str, Any]:
    """Return a job of ``squeue --json`` (Slurm 22.05), with the keys the backend reads."""
    pending = state == 'PENDING'
    return {
        'job_id': job_id,
        'name': name,
        'job_state': state,
        'state_reason': reason,
        'exit_code': exit_code,
        'start_time': 0 if pending else 1795465284,
        'end_time': 0 if pending else 1795465344,
        'time_limit': None,
        'account': 'aiida',
        'node_count': 1,
        'cluster': 'localcluster',
        'group_name': 'root',
        'nodes': '' if pending else 'vm',
        'partition': 'normal',
        'priority': 0 if pending else 4294901748,
        'user_name': user,
        'current_working_directory': '/tmp/work dir',
    }


SQUEUE_OUTPUT = json.dumps(
    {
        'meta': {},
        'errors': [],
        'jobs': [
            squeue_job(11, 'fail', 'FAILED', 'NonZeroExitCode', 768),
            squeue_job(13, 'held', 'PENDING', 'JobHeldUser', 0),
            squeue_job(15, 'sbatch', 'RUNNING', 'None', 0),
            squeue_job(16, 'new', 'PENDING', 'Priority', 0),
            squeue_job(17, 'theirs', 'RUNNING', 'None', 0, user='someone-else'),
            squeue_job(18, 'ended', 'COMPLETED', 'None', 0),
        ],
    }
)


def test_parse_sacct() -> None:
    jobs = parse_sacct(SACCT_OUTPUT)
    assert list(jobs) == ['11', '12', '13', '14', '15']
    failed = jobs['11']
    assert failed['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 3, 'interruptSignal': 0}
    assert failed['tasks'] == [
        {
            'id': '11.batch',
            'name': 'batch',
            'status': {'state': 'FAILED', 'stateReason': None, 'exitCode': 3, 'interruptSignal': 0},
            'time': {'elapsed': 0, 'start': 1795465284, 'end': 1795465284, 'suspended': 0, 'limit': None},
        }
    ]
    assert jobs['12']['status']['state'] == 'CANCELLED by 0'
    assert jobs['12']['tasks'][0]['status']['interruptSignal'] == 15
    held = jobs['13']
    assert held['status']['stateReason'] == 'JobHeldUser'
    assert held['time'] == {'elapsed': 0, 'start': None, 'end': None, 'suspended': 0, 'limit': None}
    assert (held['tasks'], held['nodes'], held['allocationNodes']) == ([], 'None assigned', 0)
    assert jobs['14']['time']['limit'] == 60
    assert jobs['14']['workingDirectory'] == '/tmp/work dir'


def test_parse_squeue_filters_the_user_and_decodes_exit_status() -> None:
    jobs = parse_squeue(SQUEUE_OUTPUT, 'root')
    assert list(jobs) == ['11', '13', '15', '16', '18']
    assert jobs['11']['status'] == {
        'state': 'FAILED',
        'stateReason': 'NonZeroExitCode',
        'exitCode': 3,
        'interruptSignal': 0,
    }
    assert jobs['13']['time']['start'] is None
    assert (jobs['13']['nodes'], jobs['13']['allocationNodes']) == ('None assigned', 0)
    assert jobs['15']['time']['end'] is None


def test_merge_jobs() -> None:
    merged = {job['jobId']: job for job in merge_jobs(parse_squeue(SQUEUE_OUTPUT, 'root'), parse_sacct(SACCT_OUTPUT))}
    assert list(merged) == ['11', '12', '13', '14', '15', '16', '18']
    assert merged['11']['status']['stateReason'] == 'None', 'a final state comes from the accounting'
    assert merged['13']['status']['stateReason'] == 'JobHeldUser'
    assert merged['16']['status']['state'] == 'PENDING', 'a job not yet accounted comes from the controller'
    assert merged['15']['name'] == 'sbatch', "the controller's description wins over slurmdbd's placeholder"
    assert merged['15']['workingDirectory'] == '/tmp/work dir'
    assert merged['14']['status']['state'] == 'TIMEOUT'
    assert merged['18']['status']['state'] == 'COMPLETING', 'ended, but not yet accounted'
    assert merged['18']['time']['end'] is None


def test_merge_jobs_without_accounting() -> None:
    merged = {job['jobId']: job for job in merge_jobs(parse_squeue(SQUEUE_OUTPUT, 'root'), None)}
    assert merged['18']['status']['state'] == 'COMPLETED'
    assert merged['11']['status']['exitCode'] == 3


def test_parse_scontrol() -> None:
    line = 'JobId=13 JobName=held UserId=root(0) JobState=PENDING Reason=JobHeldUser Power= StdIn=/dev/null StdOut=/w/o'
    fields = parse_scontrol(line)
    assert (fields['UserId'], fields['StdIn'], fields['StdOut'], fields['Power']) == (
        'root(0)',
        '/dev/null',
        '/w/o',
        '',
    )


# The tests below need a real Slurm.


@pytest.fixture
async def backend(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SlurmBackend]:
    require_slurm()
    root = tmp_path_factory.mktemp('slurm-backend')
    root.chmod(0o755)
    backend = create_backend(ServerSettings(roots=[root], scheduler='slurm'))
    assert isinstance(backend, SlurmBackend)
    yield backend
    await backend.close()


@pytest.mark.slurm
async def test_scheduler_description(backend: SlurmBackend) -> None:
    assert backend.version[:2].isdigit()
    partitions = await backend.partitions()
    assert partitions
    assert all(partition['partition'] for partition in partitions)
    nodes = await backend.nodes()
    assert nodes
    assert all(node['cpus'] > 0 and node['state'] for node in nodes)
    assert isinstance(await backend.reservations(), list)


@pytest.mark.slurm
async def test_held_job_metadata_and_cancel(backend: SlurmBackend, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp('held')
    workdir.chmod(0o755)
    script = '#!/bin/bash\n#SBATCH --hold\ntrue\n'
    job_id = await backend.submit(
        JobSpec(script=script, working_directory=str(workdir), name='held', standard_output='held.out')
    )
    (job,) = await backend.jobs(job_id)
    assert job['status']['state'] == 'PENDING'
    assert job['status']['stateReason'] == 'JobHeldUser'
    assert (job['name'], job['user'], job['workingDirectory']) == ('held', USER, str(workdir))
    (metadata,) = await backend.metadata(job_id)
    assert metadata == {
        'jobId': job_id,
        'script': script,
        'standardInput': '/dev/null',
        'standardOutput': str(workdir / 'held.out'),
        'standardError': str(workdir / 'held.out'),
    }
    assert job_id in [job['jobId'] for job in await backend.jobs()]
    await backend.cancel(job_id)

    async def cancelled() -> dict[str, Any] | None:
        (job,) = await backend.jobs(job_id)
        return job if job['status']['state'].startswith('CANCELLED') else None

    await async_wait_until(cancelled, what='the held job to be cancelled')


@pytest.mark.slurm
async def test_refused_submission_and_unknown_job(backend: SlurmBackend, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as info:
        await backend.submit(JobSpec(script='echo no interpreter\n', working_directory=str(tmp_path)))
    assert info.value.status == 500  # as the real server answers sbatch's refusal
    assert 'This does not look like a batch script' in info.value.message
    for call in (backend.jobs, backend.metadata):
        with pytest.raises(ApiError) as info:
            await call('999999999')
        assert (info.value.status, info.value.message) == (404, 'Job not found.')
    with pytest.raises(ApiError, match='Invalid job id specified') as info:
        await backend.cancel('999999999')
    assert info.value.status == 500
