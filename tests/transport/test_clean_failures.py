"""Staged transfers killed in the middle (an S3 error, a lost connection, the caller cancelling) leave nothing behind:
no file at the destination, no temporary file, no transfer job running."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from firecrest.FirecrestException import MultipartUploadException
from firecrest.v2._async.Client import AsyncExternalDownload, AsyncExternalUpload

from aiida_firecrest.client.exceptions import TransferFailedError
from tests.remote_files import RemotePath

pytestmark = pytest.mark.local_server(reason='reads the jobs and the staging area of the local server')

UNFINISHED = frozenset({'PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED'})


@pytest.fixture
def remote(transport_scratch: Callable[[str], RemotePath]) -> RemotePath:
    return transport_scratch('firecrest')


@pytest.fixture
def staged_size(local_server: Any) -> int:
    """A size that always takes the staged path, in two parts of the multipart upload."""
    return max(int(local_server.settings.max_ops_file_size), int(local_server.settings.s3.max_part_size)) + 1


async def _unfinished_transfer_jobs(transport: Any) -> list[str]:
    """The transfer jobs of the user still pending or running, after the cancellations settled."""
    client, system = transport.client, transport.compute_resource
    for _ in range(50):
        jobs = await client.job_info(system) or []
        unfinished = [
            str(job['jobId'])
            for job in jobs
            if 'Transfer' in str(job.get('name')) and job['status']['state'] in UNFINISHED
        ]
        if not unfinished:
            return []
        await asyncio.sleep(0.1)
    return unfinished


async def _interrupted_download(self: AsyncExternalDownload, file_path: Any = None) -> None:
    """Half an object written, then the connection to S3 lost."""
    Path(self._file_path).write_bytes(b'partial')
    raise httpx.RemoteProtocolError('peer closed connection without sending complete message body')


async def _s3_refuses_a_part(self: AsyncExternalUpload) -> None:
    raise MultipartUploadException(self.transfer_data, 'Failed to upload part 2: 500: InternalError')


@pytest.mark.parametrize(
    ('direction', 'patched', 'failure'),
    [
        ('download', (AsyncExternalDownload, 'download_file_from_stage'), _interrupted_download),
        ('upload', (AsyncExternalUpload, 'upload_file_to_stage'), _s3_refuses_a_part),
    ],
)
async def test_s3_failure_leaves_nothing_behind(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    direction: str,
    patched: tuple[type, str],
    failure: Any,
) -> None:
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    Path(remote / 'source.bin').write_bytes(os.urandom(staged_size))
    local_dir = tmp_path / 'here'
    local_dir.mkdir()
    monkeypatch.setattr(*patched, failure)
    async with firecrest_transport() as transport:
        with pytest.raises(TransferFailedError, match=r'staging area \(S3\)'):
            if direction == 'upload':
                await transport.putfile_async(tmp_path / 'source.bin', remote / 'target.bin')
            else:
                await transport.getfile_async(remote / 'source.bin', local_dir / 'target.bin')
        assert await _unfinished_transfer_jobs(transport) == []
    assert not Path(remote / 'target.bin').exists()
    assert os.listdir(local_dir) == []


async def test_cancelled_staged_upload_cancels_its_transfer_job(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path, staged_size: int
) -> None:
    started = asyncio.Event()

    async def stalled_upload(self: AsyncExternalUpload) -> None:
        started.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(AsyncExternalUpload, 'upload_file_to_stage', stalled_upload)
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        task = asyncio.ensure_future(transport.putfile_async(tmp_path / 'source.bin', remote / 'target.bin'))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _unfinished_transfer_jobs(transport) == []
    assert not Path(remote / 'target.bin').exists()


async def test_cancelled_staged_download_leaves_no_file(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path, staged_size: int
) -> None:
    written = asyncio.Event()

    async def stalled_download(self: AsyncExternalDownload, file_path: Any = None) -> None:
        Path(self._file_path).write_bytes(b'partial')
        written.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(AsyncExternalDownload, 'download_file_from_stage', stalled_download)
    Path(remote / 'source.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        task = asyncio.ensure_future(transport.getfile_async(remote / 'source.bin', tmp_path / 'target.bin'))
        await written.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(os.listdir(tmp_path)) == []
