"""Staged transfers killed in the middle (an S3 error, a lost connection, the caller cancelling) leave nothing behind:
no file at the destination, no temporary file, no transfer job running; a failed tree transfer leaves nothing at a
destination it created; and the failed removal of a temporary archive does not fail a transfer that worked."""

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

from aiida_firecrest.client.exceptions import FirecrestApiError, TransferFailedError, UnsafeArchiveError
from aiida_firecrest.transport.archive_routes import ArchiveRoutes
from aiida_firecrest.transport.backend import FirecrestBackend
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


@pytest.mark.parametrize('direction', ['put', 'get'])
async def test_failed_removal_of_the_temporary_archive_is_logged_not_raised(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    direction: str,
) -> None:
    """A tree that travels as one archive arrives whole even when its temporary archive cannot be removed."""
    remove = ArchiveRoutes.remove
    refused: list[Path] = []

    async def refusing_temporaries(self: ArchiveRoutes, path: str) -> None:
        if 'aiida-firecrest-' in path:
            refused.append(Path(path))
            raise FirecrestApiError('Injected server error.')
        await remove(self, path)

    monkeypatch.setattr(ArchiveRoutes, 'remove', refusing_temporaries)
    source = tmp_path / 'tree' if direction == 'put' else Path(remote / 'tree')
    source.mkdir()
    for index in range(12):  # above the archive threshold
        (source / f'f{index}').write_text(str(index))
    destination = Path(remote / 'copy') if direction == 'put' else tmp_path / 'copy'
    async with firecrest_transport() as transport:
        if direction == 'put':
            await transport.puttree_async(source, destination)
        else:
            await transport.gettree_async(source, destination)
    for leftover in refused:  # the local server's temporary directory is shared by the session's tests
        leftover.unlink(missing_ok=True)
    assert sorted(os.listdir(destination)) == sorted(os.listdir(source))
    assert refused
    assert 'could not remove' in caplog.text


@pytest.mark.parametrize('direction', ['put', 'get'])
@pytest.mark.parametrize('entries', [3, 12], ids=['file-by-file', 'archive'])
async def test_failed_tree_transfer_leaves_nothing_at_a_new_destination(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    direction: str,
    entries: int,
) -> None:
    """The destination the transfer created is removed, so that a retry does not copy into it (``tree/tree``)."""

    async def failing(*args: Any) -> None:
        raise FirecrestApiError('Injected server error.')

    monkeypatch.setattr(FirecrestBackend, 'upload' if direction == 'put' else 'download', failing)
    source = tmp_path / 'tree' if direction == 'put' else Path(remote / 'tree')
    source.mkdir()
    for index in range(entries):
        (source / f'f{index}').write_text(str(index))
    destination = Path(remote / 'copy') if direction == 'put' else tmp_path / 'copy'
    async with firecrest_transport() as transport:
        with pytest.raises(FirecrestApiError):
            if direction == 'put':
                await transport.puttree_async(source, destination)
            else:
                await transport.gettree_async(source, destination)
    assert not destination.exists()


async def test_failed_tree_transfer_into_an_existing_directory_leaves_it_as_it_was(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path
) -> None:
    """The tree goes into ``copy/tree``, which the transfer created and removes; what ``copy`` held stays."""

    async def failing(*args: Any) -> None:
        raise FirecrestApiError('Injected server error.')

    monkeypatch.setattr(FirecrestBackend, 'download', failing)
    Path(remote / 'tree').mkdir()
    (Path(remote / 'tree') / 'f').write_text('new')
    (tmp_path / 'copy').mkdir()
    (tmp_path / 'copy' / 'kept').write_text('kept')
    async with firecrest_transport() as transport:
        with pytest.raises(FirecrestApiError):
            await transport.gettree_async(remote / 'tree', tmp_path / 'copy', overwrite=True)
    assert os.listdir(tmp_path / 'copy') == ['kept']


@pytest.mark.parametrize('name', ['../escape.txt', 'sub/../../escape.txt', '/abs/escape.txt'])
async def test_tree_fetched_file_by_file_refuses_names_leading_outside(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path, name: str
) -> None:
    """The names of a listing are checked as an archive's members are, whatever the server lists."""
    Path(remote / 'tree').mkdir()
    (Path(remote / 'tree') / 'f.txt').write_text('x')
    list_directory = FirecrestBackend.list_directory

    async def hostile_listing(self: FirecrestBackend, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        entries = await list_directory(self, path, **kwargs)
        return [*entries, {**entries[0], 'name': name}]

    monkeypatch.setattr(FirecrestBackend, 'list_directory', hostile_listing)
    async with firecrest_transport() as transport:
        with pytest.raises(UnsafeArchiveError):
            await transport.gettree_async(remote / 'tree', tmp_path / 'local' / 'copy')
    assert not (tmp_path / 'escape.txt').exists()
    assert not (tmp_path / 'local' / 'escape.txt').exists()
    assert not (tmp_path / 'local' / 'copy').exists()
