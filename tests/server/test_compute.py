"""The ``/compute`` routes through pyfirecrest's sync and async clients, with each job backend.

Every JSON answer is validated against the FirecREST v2 specification by the client fixtures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import LocalFirecrest
from tests.server.conftest import (
    async_job_in_state,
    async_wait_until,
    job_in_state,
    make_async_client,
    realism,
    wait_until,
)

SYSTEM = 'cluster'
CANCELLED_BY_ME = f'CANCELLED by {os.getuid()}'
SLEEPER = '#!/bin/bash\nsleep 300\n'
HELD = '#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\n'
SCANCEL_FAILED = 'Unexpected Slurm command response. exit_status:0 std_err:scancel: Terminating job {job_id}\n'


def listed(client: Firecrest, job_id: str) -> bool:
    """Whether the jobs list has ``job_id``."""
    return job_id in [job['jobId'] for job in client.job_info(SYSTEM)]


def test_job_completes(backend_sync_client: Firecrest, job_dir: Path) -> None:
    script = '#!/bin/bash\necho "hello $GREETING"\n'
    submitted = backend_sync_client.submit(SYSTEM, str(job_dir), script_str=script, env_vars={'GREETING': 'a, b'})
    job_id = submitted['jobId']
    assert isinstance(job_id, str)
    job = wait_until(job_in_state(backend_sync_client, job_id, 'COMPLETED', 'FAILED'), what='the job to end')
    assert job['status'] == {'state': 'COMPLETED', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert job['workingDirectory'] == str(job_dir)
    assert [task['name'] for task in job['tasks']] == ['batch']
    assert isinstance(job['time']['start'], int)
    (metadata,) = backend_sync_client.job_metadata(SYSTEM, job_id)
    assert metadata['script'] == script
    assert metadata['standardOutput'] == str(job_dir / f'slurm-{job_id}.out')
    assert (job_dir / f'slurm-{job_id}.out').read_text() == 'hello a, b\n'


async def test_job_fails_with_its_exit_code(backend_async_client: AsyncFirecrest, job_dir: Path) -> None:
    submitted = await backend_async_client.submit(SYSTEM, str(job_dir), script_str='#!/bin/bash\nexit 3\n')
    condition = async_job_in_state(backend_async_client, submitted['jobId'], 'COMPLETED', 'FAILED')
    job = await async_wait_until(condition, what='the job to end')
    assert job['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 3, 'interruptSignal': 0}


def test_cancel_running_job(backend_sync_client: Firecrest, job_dir: Path) -> None:
    job_id = backend_sync_client.submit(SYSTEM, str(job_dir), script_str=SLEEPER)['jobId']
    wait_until(job_in_state(backend_sync_client, job_id, 'RUNNING'), what='the job to run')
    backend_sync_client.cancel_job(SYSTEM, job_id)
    job = wait_until(job_in_state(backend_sync_client, job_id, 'CANCELLED'), what='the job to be cancelled')
    assert job['status'] == {'state': CANCELLED_BY_ME, 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    with pytest.raises(UnexpectedStatusException) as info:  # scancel reports an error, which the real server passes on
        backend_sync_client.cancel_job(SYSTEM, job_id)
    response = info.value.responses[-1]
    assert response.status_code == 500
    assert response.json()['message'].startswith(SCANCEL_FAILED.format(job_id=job_id))
    assert 'Job/step already completing or completed' in response.json()['message']
    assert backend_sync_client.job_info(SYSTEM, job_id)[0]['status']['state'] == CANCELLED_BY_ME


async def test_held_job_is_pending(backend_async_client: AsyncFirecrest, job_dir: Path) -> None:
    script = '#!/bin/bash\n#SBATCH --hold\ntouch ran\n'
    job_id = (await backend_async_client.submit(SYSTEM, str(job_dir), script_str=script))['jobId']
    (job,) = await backend_async_client.job_info(SYSTEM, job_id)
    assert job['status']['state'] == 'PENDING'
    assert job['status']['stateReason'] == 'JobHeldUser'
    assert job['tasks'] == []
    await backend_async_client.cancel_job(SYSTEM, job_id)
    await async_wait_until(async_job_in_state(backend_async_client, job_id, 'CANCELLED'), what='the cancellation')
    assert not (job_dir / 'ran').exists()


def test_missing_working_directory(backend_sync_client: Firecrest, job_dir: Path) -> None:
    """The submission succeeds, as on the real server; the job fails as Slurm 22.05 fails it (``ExitCode 0:53``)."""
    job_id = backend_sync_client.submit(SYSTEM, str(job_dir / 'nope'), script_str='#!/bin/bash\necho\n')['jobId']
    job = wait_until(job_in_state(backend_sync_client, job_id, 'FAILED', 'COMPLETED'), what='the job to end')
    assert job['status'] == {'state': 'FAILED', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 53}


async def test_job_from_remote_script(backend_async_client: AsyncFirecrest, job_dir: Path) -> None:
    (job_dir / 'job.sh').write_text('#!/bin/bash\n#SBATCH --output=job.log\npwd\n')
    submitted = await backend_async_client.submit(SYSTEM, str(job_dir), script_remote_path=str(job_dir / 'job.sh'))
    condition = async_job_in_state(backend_async_client, submitted['jobId'], 'COMPLETED', 'FAILED')
    job = await async_wait_until(condition, what='the job to end')
    assert (job['status']['state'], job['name']) == ('COMPLETED', 'job.sh')
    assert (job_dir / 'job.log').read_text() == f'{job_dir}\n'


def test_refused_submissions(sync_client: Firecrest, local_dir: Path) -> None:
    """``sbatch`` refusing a job is the real server's 500; a path outside the roots a 400."""
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.submit(SYSTEM, str(local_dir), script_str='echo no interpreter line\n')
    assert info.value.responses[-1].status_code == 500
    assert 'This does not look like a batch script' in info.value.responses[-1].json()['message']
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.submit(SYSTEM, '/etc', script_str='#!/bin/bash\n')
    assert info.value.responses[-1].status_code == 400
    assert 'does not match any of the defined filesystem paths' in info.value.responses[-1].json()['message']
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.submit(SYSTEM, str(local_dir), script_remote_path=str(local_dir / 'missing.sh'))
    assert info.value.responses[-1].status_code == 500


async def test_unknown_job(async_client: AsyncFirecrest) -> None:
    """Describing an unknown job is a 404; cancelling one is the 500 of ``scancel``'s error, as on the real server."""
    for call in (async_client.job_info, async_client.job_metadata):
        with pytest.raises(UnexpectedStatusException) as info:
            await call(SYSTEM, '999999')
        assert info.value.responses[-1].status_code == 404
        assert info.value.responses[-1].json()['message'] == 'Job not found.'
    with pytest.raises(UnexpectedStatusException) as info:
        await async_client.cancel_job(SYSTEM, '999999')
    assert info.value.responses[-1].status_code == 500
    message = info.value.responses[-1].json()['message']
    assert message.startswith(SCANCEL_FAILED.format(job_id='999999'))
    assert 'Invalid job id specified' in message
    with pytest.raises(UnexpectedStatusException) as info:
        await async_client.job_info('no-such-system', '1')
    assert info.value.responses[-1].status_code == 404


def test_list_filtered_by_account(sync_client: Firecrest, local_dir: Path) -> None:
    job_id = sync_client.submit(SYSTEM, str(local_dir), script_str=HELD, account='special')['jobId']
    assert [job['jobId'] for job in sync_client.job_info(SYSTEM, account='special')] == [job_id]
    assert job_id not in [job['jobId'] for job in sync_client.job_info(SYSTEM, account='other')]
    sync_client.cancel_job(SYSTEM, job_id)


@pytest.mark.parametrize('gap', [8.0, 0.0])  # 8 s: a loaded machine sees the completion seconds after it
def test_jobs_list_gap(backend_sync_client: Firecrest, any_backend_server: LocalFirecrest, job_dir: Path, gap: float):
    """A job that just finished is absent from the list for ``jobs_list_gap`` seconds (real: about 4 s), while the
    job itself answers; 0 (the kind behaviour) lists it at once."""
    with realism(any_backend_server, jobs_list_gap=gap):
        job_id = backend_sync_client.submit(SYSTEM, str(job_dir), script_str='#!/bin/bash\n')['jobId']
        wait_until(job_in_state(backend_sync_client, job_id, 'COMPLETED'), what='the job to complete')
        assert listed(backend_sync_client, job_id) is (gap == 0)
        wait_until(lambda: listed(backend_sync_client, job_id), what='the job to be listed after the gap')


@pytest.mark.parametrize('unlisted', [True, False])
def test_job_cancelled_while_held(
    backend_sync_client: Firecrest, any_backend_server: LocalFirecrest, job_dir: Path, unlisted: bool
) -> None:
    """A job cancelled before it started is never listed by the real server; the kind switch lists it."""
    with realism(any_backend_server, jobs_list_gap=0.0, unlisted_unstarted_jobs=unlisted):
        job_id = backend_sync_client.submit(SYSTEM, str(job_dir), script_str=HELD)['jobId']
        assert listed(backend_sync_client, job_id)
        backend_sync_client.cancel_job(SYSTEM, job_id)
        wait_until(job_in_state(backend_sync_client, job_id, 'CANCELLED'), what='the cancellation')
        assert listed(backend_sync_client, job_id) is not unlisted


@pytest.mark.parametrize('job_id', ['999999', 'ended'])
def test_cancel_errors_switched_off(sync_client: Firecrest, local_server: LocalFirecrest, local_dir: Path, job_id: str):
    """The kind switch: an unknown job is a 404, and cancelling an ended one changes nothing."""
    with realism(local_server, cancel_errors=False):
        if job_id == 'ended':
            job_id = sync_client.submit(SYSTEM, str(local_dir), script_str='#!/bin/bash\n')['jobId']
            wait_until(job_in_state(sync_client, job_id, 'COMPLETED'), what='the job to complete')
            sync_client.cancel_job(SYSTEM, job_id)
            assert sync_client.job_info(SYSTEM, job_id)[0]['status']['state'] == 'COMPLETED'
            return
        with pytest.raises(UnexpectedStatusException) as info:
            sync_client.cancel_job(SYSTEM, job_id)
        assert (info.value.responses[-1].status_code, info.value.responses[-1].json()['message']) == (
            404,
            'Job not found.',
        )


def test_time_limit_local(sync_client: Firecrest, local_dir: Path) -> None:
    start = time.monotonic()
    job_id = sync_client.submit(SYSTEM, str(local_dir), script_str='#!/bin/bash\n#SBATCH --time=0:01\nsleep 300\n')[
        'jobId'
    ]
    job = wait_until(job_in_state(sync_client, job_id, 'TIMEOUT', 'COMPLETED', 'FAILED'), what='the time limit')
    assert job['status'] == {'state': 'TIMEOUT', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert job['time']['limit'] == 1
    assert time.monotonic() - start < 10


@pytest.mark.slurm
@pytest.mark.slow
async def test_time_limit_slurm(slurm_server: LocalFirecrest) -> None:
    """Slurm's shortest limit is a minute, and it checks limits every 30 s: this takes 60 to 100 s."""
    client = make_async_client(slurm_server)
    try:
        workdir = slurm_server.client_config()['workdir']
        script = '#!/bin/bash\n#SBATCH --time=1\n#SBATCH --output=/dev/null\nsleep 300\n'
        job_id = (await client.submit(SYSTEM, workdir, script_str=script))['jobId']
        condition = async_job_in_state(client, job_id, 'TIMEOUT', 'COMPLETED', 'FAILED', 'CANCELLED')
        job = await async_wait_until(condition, timeout=180, what='the Slurm time limit')
    finally:
        await client.close_session()
    assert job['status'] == {'state': 'TIMEOUT', 'stateReason': 'None', 'exitCode': 0, 'interruptSignal': 0}
    assert job['time']['limit'] == 60


async def test_new_jobs_invisible_for_a_while(local_server: LocalFirecrest, async_client: AsyncFirecrest) -> None:
    """The ``job_invisible_seconds`` fault: 404 and absent from the list, as a job slurmdbd has not seen yet."""
    local_server.faults.job_invisible_seconds = 1.0
    try:
        workdir = local_server.client_config()['workdir']
        job_id = (await async_client.submit(SYSTEM, workdir, script_str='#!/bin/bash\n#SBATCH -o /dev/null\n'))['jobId']
        with pytest.raises(UnexpectedStatusException) as info:
            await async_client.job_info(SYSTEM, job_id)
        assert (info.value.responses[-1].status_code, info.value.responses[-1].json()['message']) == (
            404,
            'Job not found.',
        )
        assert job_id not in [job['jobId'] for job in await async_client.job_info(SYSTEM)]
        (job,) = await async_client.wait_for_job(SYSTEM, job_id, timeout=30)  # tolerates the 404s and the gap
        assert job['status']['state'] == 'COMPLETED'
    finally:
        local_server.faults.job_invisible_seconds = 0.0


def test_scheduler_description(backend_sync_client: Firecrest) -> None:
    """The backend's partitions, nodes and reservations, as ``/status`` serves them (validated against the spec)."""
    partitions = backend_sync_client.partitions(SYSTEM)
    assert partitions
    assert all(partition['name'] for partition in partitions)
    nodes = backend_sync_client.nodes(SYSTEM)
    assert nodes
    assert all(node['cpus'] > 0 for node in nodes)
    assert isinstance(backend_sync_client.reservations(SYSTEM), list)
