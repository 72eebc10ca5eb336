"""Unit tests of the ``local`` job backend and of the ``#SBATCH`` parsing it relies on, without the HTTP layer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.server import ServerSettings
from aiida_firecrest.server.errors import ApiError
from aiida_firecrest.server.jobs import JobSpec, LocalBackend, create_backend
from aiida_firecrest.server.jobs.directives import (
    Directives,
    expand_file_pattern,
    parse_directives,
    parse_time_limit,
)
from tests.server.conftest import async_wait_until

UID = os.getuid()


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(ServerSettings(roots=[tmp_path], account='proj'))
    yield backend
    await backend.close()


async def finished(backend: LocalBackend, job_id: str) -> dict[str, Any]:
    """Wait until the job has an end time and return it."""

    async def ended() -> dict[str, Any] | None:
        job = (await backend.jobs(job_id))[0]
        return job if job['time']['end'] is not None else None

    return await async_wait_until(ended, timeout=20, what=f'job {job_id} to end')


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(')')[2].split()[0] != 'Z'


@pytest.mark.parametrize(
    ('value', 'seconds'),
    [
        ('5', 300),
        ('0:03', 3),
        ('1:02:03', 3723),
        ('2-1', 2 * 86400 + 3600),
        ('2-1:30', 2 * 86400 + 3600 + 1800),
        ('1-00:00:05', 86405),
        ('UNLIMITED', None),
        ('infinite', None),
        ('0', None),
    ],
)
def test_parse_time_limit(value: str, seconds: int | None) -> None:
    assert parse_time_limit(value) == seconds


@pytest.mark.parametrize('value', ['abc', '1:2:3:4', '-5', '1-'])
def test_parse_time_limit_invalid(value: str) -> None:
    with pytest.raises(ValueError, match='Invalid --time specification'):
        parse_time_limit(value)


def test_parse_directives() -> None:
    script = (
        '#!/bin/bash\n'
        '#SBATCH --job-name=first\n'
        '#SBATCH -J second  # the later one wins\n'
        '\n'
        '#SBATCH --output out-%j.txt --error=err.txt\n'
        '#SBATCH -t 0:05 -A proj -pdebug\n'
        '#SBATCH --hold --nodes=1 --ntasks 2\n'
        '# a comment\n'
        'echo hello\n'
        '#SBATCH --time=99\n'
    )
    assert parse_directives(script) == Directives(
        job_name='second',
        output='out-%j.txt',
        error='err.txt',
        time='0:05',
        account='proj',
        partition='debug',
        hold=True,
    )


def test_expand_file_pattern() -> None:
    assert expand_file_pattern('%x-%j-%5j-%u-%N-%%.out', 42, 'name', 'me', 'node') == 'name-42-00042-me-node-%.out'


def test_create_backend(tmp_path: Path) -> None:
    assert isinstance(create_backend(ServerSettings(roots=[tmp_path])), LocalBackend)


async def test_job_completes_with_output_and_environment(backend: LocalBackend, tmp_path: Path) -> None:
    script = '#!/bin/bash\necho "$GREETING $SLURM_JOB_ID $SLURM_JOB_NAME $(pwd)"\necho oops >&2\n'
    first = await backend.submit(JobSpec(script=script, working_directory=str(tmp_path), env={'GREETING': 'hi, x'}))
    second = await backend.submit(JobSpec(script='#!/bin/sh\ntrue\n', working_directory=str(tmp_path)))
    assert (first, second) == ('1', '2')
    job = await finished(backend, first)
    assert job['status'] == {'state': 'COMPLETED', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert [task['id'] for task in job['tasks']] == ['1.batch']
    assert job['name'] == 'sbatch'
    assert job['account'] == 'proj'
    assert job['workingDirectory'] == str(tmp_path)
    assert (tmp_path / 'slurm-1.out').read_text() == f'hi, x 1 sbatch {tmp_path}\noops\n'
    assert [job['jobId'] for job in await backend.jobs()] == ['1', '2']


async def test_directives_and_request_fields(backend: LocalBackend, tmp_path: Path) -> None:
    script = (
        '#!/bin/bash\n#SBATCH --job-name=script-name\n#SBATCH --output=%x-%j.out\n#SBATCH -e %x.err\n'
        'echo out\necho err >&2\n'
    )
    job_id = await backend.submit(
        JobSpec(script=script, working_directory=str(tmp_path), name='request-name', partition='debug', account='acc')
    )
    job = await finished(backend, job_id)
    assert (job['name'], job['partition'], job['account']) == ('request-name', 'debug', 'acc')
    assert (tmp_path / f'request-name-{job_id}.out').read_text() == 'out\n'
    assert (tmp_path / 'request-name.err').read_text() == 'err\n'
    (metadata,) = await backend.metadata(job_id)
    assert metadata == {
        'jobId': job_id,
        'script': script,
        'standardInput': '/dev/null',
        'standardOutput': str(tmp_path / f'request-name-{job_id}.out'),
        'standardError': str(tmp_path / 'request-name.err'),
    }


async def test_failed_job_reports_exit_code(backend: LocalBackend, tmp_path: Path) -> None:
    job_id = await backend.submit(JobSpec(script='#!/bin/bash\nexit 7\n', working_directory=str(tmp_path)))
    job = await finished(backend, job_id)
    assert job['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 7, 'interruptSignal': 0}
    assert job['tasks'][0]['status']['state'] == 'FAILED'


async def test_job_killed_by_signal(backend: LocalBackend, tmp_path: Path) -> None:
    job_id = await backend.submit(JobSpec(script='#!/bin/bash\nkill -9 $$\n', working_directory=str(tmp_path)))
    job = await finished(backend, job_id)
    assert job['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 9}
    assert job['tasks'][0]['status'] == {'state': 'CANCELLED', 'stateReason': None, 'exitCode': 0, 'interruptSignal': 9}


async def test_missing_working_directory_fails_the_job(backend: LocalBackend, tmp_path: Path) -> None:
    """As with Slurm 22.05: the submission succeeds, the job fails with ``ExitCode 0:53``."""
    job_id = await backend.submit(JobSpec(script='#!/bin/bash\necho\n', working_directory=str(tmp_path / 'nope')))
    job = await finished(backend, job_id)
    assert job['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 53}


async def test_script_without_interpreter_is_refused(backend: LocalBackend, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as info:
        await backend.submit(JobSpec(script='echo hi\n', working_directory=str(tmp_path)))
    assert info.value.status == 500  # as the real server answers sbatch's refusal
    assert 'This does not look like a batch script' in info.value.message


async def test_invalid_time_is_refused(backend: LocalBackend, tmp_path: Path) -> None:
    with pytest.raises(ApiError, match='Invalid --time specification'):
        await backend.submit(JobSpec(script='#!/bin/bash\n#SBATCH --time=soon\n', working_directory=str(tmp_path)))


async def test_cancel_kills_the_process_group(backend: LocalBackend, tmp_path: Path) -> None:
    script = '#!/bin/bash\nsleep 300 &\necho $! > child.pid\nwait\n'
    job_id = await backend.submit(JobSpec(script=script, working_directory=str(tmp_path)))
    pid_file = tmp_path / 'child.pid'

    async def child_pid() -> int | None:
        text = pid_file.read_text().strip() if pid_file.exists() else ''
        return int(text) if text else None

    pid = await async_wait_until(child_pid, what='the job to start its child')
    await backend.cancel(job_id)
    job = (await backend.jobs(job_id))[0]
    assert job['status'] == {'state': f'CANCELLED by {UID}', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert job['tasks'][0]['status'] == {
        'state': 'CANCELLED',
        'stateReason': None,
        'exitCode': 0,
        'interruptSignal': 15,
    }

    async def child_gone() -> bool:
        return not alive(pid)

    await async_wait_until(child_gone, timeout=10, what='the child process to be killed')
    with pytest.raises(ApiError, match='Job/step already completing or completed'):  # scancel's error: 500
        await backend.cancel(job_id)
    assert (await backend.jobs(job_id))[0]['status']['state'] == f'CANCELLED by {UID}'


async def test_time_limit_kills_the_job(backend: LocalBackend, tmp_path: Path) -> None:
    start = time.monotonic()
    script = '#!/bin/bash\n#SBATCH --time=0:01\nsleep 300 &\necho $! > child.pid\nwait\n'
    job_id = await backend.submit(JobSpec(script=script, working_directory=str(tmp_path)))
    job = await finished(backend, job_id)
    assert 1 <= time.monotonic() - start < 10
    assert job['status'] == {'state': 'TIMEOUT', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert job['time']['limit'] == 1
    pid = int((tmp_path / 'child.pid').read_text())

    async def child_gone() -> bool:
        return not alive(pid)

    await async_wait_until(child_gone, timeout=10, what='the child process to be killed')


async def test_held_job_stays_pending_until_cancelled(backend: LocalBackend, tmp_path: Path) -> None:
    job_id = await backend.submit(
        JobSpec(script='#!/bin/bash\n#SBATCH --hold\ntouch ran\n', working_directory=str(tmp_path))
    )
    await asyncio.sleep(0.3)
    job = (await backend.jobs(job_id))[0]
    assert job['status'] == {'state': 'PENDING', 'stateReason': 'JobHeldUser', 'exitCode': 0, 'interruptSignal': 0}
    assert (job['tasks'], job['time']['start'], job['nodes']) == ([], None, 'None assigned')
    await backend.cancel(job_id)
    job = await finished(backend, job_id)
    assert job['status']['state'] == f'CANCELLED by {UID}'
    assert job['tasks'] == []
    assert not (tmp_path / 'ran').exists()


async def test_unknown_job(backend: LocalBackend) -> None:
    for call in (backend.jobs, backend.metadata):
        with pytest.raises(ApiError) as info:
            await call('999')
        assert (info.value.status, info.value.message) == (404, 'Job not found.')
    with pytest.raises(ApiError, match='Invalid job id specified') as info:
        await backend.cancel('999')
    assert info.value.status == 500


async def test_close_kills_running_jobs(tmp_path: Path) -> None:
    backend = LocalBackend(ServerSettings(roots=[tmp_path]))
    job_id = await backend.submit(
        JobSpec(script='#!/bin/bash\necho $$ > pid\nsleep 300\n', working_directory=str(tmp_path))
    )

    async def pid() -> int | None:
        text = (tmp_path / 'pid').read_text().strip() if (tmp_path / 'pid').exists() else ''
        return int(text) if text else None

    leader = await async_wait_until(pid, what='the job to start')
    await asyncio.wait_for(backend.close(), 10)
    assert not alive(leader)
    assert (await backend.jobs(job_id))[0]['status']['state'] == f'CANCELLED by {UID}'


async def test_scheduler_description(backend: LocalBackend) -> None:
    assert backend.version.startswith('22.05')
    (partition,) = await backend.partitions()
    assert partition['name'] == 'normal'
    (node,) = await backend.nodes()
    assert node['state'] == ['IDLE']
    assert await backend.reservations() == []
