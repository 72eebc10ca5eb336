"""Staged transfers killed in the middle (an S3 error, a lost connection, the caller cancelling) leave nothing behind:
no file at the destination, no temporary file, no transfer job running (and the multipart upload, which FirecREST gives
no way to abort, goes with the bucket's lifecycle); a staged copy that differs from its source is not left under its
final name; a failed transfer job is reported with its log; a failed tree transfer leaves nothing at a destination it
created; and the failed removal of a temporary archive does not fail a transfer that worked."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiida_firecrest.client.exceptions import (
    ChecksumMismatchError,
    FirecrestApiError,
    TransferFailedError,
    UnsafeArchiveError,
)
from aiida_firecrest.server.settings import S3Settings
from aiida_firecrest.server.staging import Staging
from aiida_firecrest.transport import staged_transfers
from aiida_firecrest.transport.archive_routes import ArchiveRoutes
from aiida_firecrest.transport.backend import FirecrestBackend
from aiida_firecrest.transport.staged_transfers import ChecksumReach, staged_download, staged_upload
from tests.remote_files import RemotePath
from tests.transport.conftest import settle

pytestmark = pytest.mark.local_server(reason='reads the jobs and the staging area of the local server')

REACH = ChecksumReach(('checksum_reach', 'of the tests calling the staged transfers directly'))

UNFINISHED = frozenset({'PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED'})


@pytest.fixture
def remote(transport_scratch: Callable[[str], RemotePath]) -> RemotePath:
    return transport_scratch('firecrest')


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


async def _interrupted_download(*args: Any, **kwargs: Any) -> None:
    """Half an object written, then the connection to S3 lost."""
    Path(args[2]).write_bytes(b'partial')
    raise httpx.RemoteProtocolError('peer closed connection without sending complete message body')


async def _s3_refuses_a_part(*args: Any) -> None:
    raise httpx.RemoteProtocolError('Server disconnected without sending a response.')


@pytest.mark.parametrize(
    ('direction', 'patched', 'failure'),
    [('download', '_stream_object', _interrupted_download), ('upload', '_upload_parts', _s3_refuses_a_part)],
)
async def test_s3_failure_leaves_nothing_behind(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    direction: str,
    patched: str,
    failure: Any,
) -> None:
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    Path(remote / 'source.bin').write_bytes(os.urandom(staged_size))
    local_dir = tmp_path / 'here'
    local_dir.mkdir()
    monkeypatch.setattr(staged_transfers, patched, failure)
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

    async def stalled_upload(*args: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(staged_transfers, '_upload_parts', stalled_upload)
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

    async def stalled_download(*args: Any, **kwargs: Any) -> None:
        Path(args[2]).write_bytes(b'partial')
        written.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(staged_transfers, '_stream_object', stalled_download)
    Path(remote / 'source.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        task = asyncio.ensure_future(transport.getfile_async(remote / 'source.bin', tmp_path / 'target.bin'))
        await written.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _unfinished_transfer_jobs(transport) == []
    assert sorted(os.listdir(tmp_path)) == []


async def test_staged_download_is_written_under_a_temporary_name_and_moved_at_the_end(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path, staged_size: int
) -> None:
    """While the object streams in, the destination does not exist; a hidden ``.part`` file beside it grows."""
    stream_object = staged_transfers._stream_object
    seen: list[list[str]] = []

    async def watched(*args: Any, **kwargs: Any) -> tuple[str, int] | None:
        seen.append(sorted(os.listdir(tmp_path)))
        return await stream_object(*args, **kwargs)

    monkeypatch.setattr(staged_transfers, '_stream_object', watched)
    data = os.urandom(staged_size)
    Path(remote / 'source.bin').write_bytes(data)
    async with firecrest_transport() as transport:
        await transport.getfile_async(remote / 'source.bin', tmp_path / 'target.bin')
    assert seen
    assert all(len(names) == 1 and names[0].startswith('.target.bin.') and names[0].endswith('.part') for names in seen)
    assert os.listdir(tmp_path) == ['target.bin']
    assert (tmp_path / 'target.bin').read_bytes() == data


@pytest.mark.parametrize('existing', [False, True], ids=['new', 'overwritten'])
@pytest.mark.parametrize('checksum_uploads', [False, True], ids=['by size', 'by SHA-256'])
async def test_staged_upload_that_differs_leaves_no_file_under_the_final_name(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    existing: bool,
    checksum_uploads: bool,
) -> None:
    """The transfer job writes the destination itself: a copy that differs from its source is removed."""
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    if existing:
        Path(remote / 'target.bin').write_bytes(b'the old content')
    async with firecrest_transport(checksum_uploads=checksum_uploads) as transport:
        _seen_differing(monkeypatch, transport)
        with pytest.raises(ChecksumMismatchError, match='differs'):
            await transport.putfile_async(tmp_path / 'source.bin', remote / 'target.bin')
    assert os.listdir(remote) == []


async def test_staged_download_whose_checksum_differs_leaves_nothing(
    firecrest_transport: Any, monkeypatch: pytest.MonkeyPatch, remote: RemotePath, tmp_path: Path, staged_size: int
) -> None:
    """A download is verified before its move: nothing at the destination, no temporary file."""
    Path(remote / 'source.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        monkeypatch.setattr(transport.client, 'checksum', _wrong_checksum)
        with pytest.raises(ChecksumMismatchError, match='differs'):
            await transport.getfile_async(remote / 'source.bin', tmp_path / 'target.bin')
    assert os.listdir(tmp_path) == []


async def _wrong_checksum(system: str, path: str) -> dict[str, str]:
    return {'algorithm': 'SHA256', 'checksum': '0' * 64}


def _seen_differing(monkeypatch: pytest.MonkeyPatch, transport: Any) -> None:
    """Every staged copy differs from its source: by its SHA-256, and by one byte more."""
    stat = transport.client.stat

    async def one_byte_more(system: str, path: str, dereference: bool = False) -> dict[str, Any]:
        attributes = dict(await stat(system, path, dereference=dereference))
        return {**attributes, 'size': int(attributes['size']) + 1}

    monkeypatch.setattr(transport.client, 'checksum', _wrong_checksum)
    monkeypatch.setattr(transport.client, 'stat', one_byte_more)


@pytest.mark.parametrize(
    ('direction', 'message'),
    [
        # the real server's upload job ignores its errors writing the file, and completes
        ('upload', r'the transfer job completed without writing the file: .*No such file or directory'),
        ('download', r'the transfer job failed: .*No such file or directory'),
    ],
)
async def test_failed_transfer_job_is_reported_with_its_log(
    firecrest_transport: Any, remote: RemotePath, tmp_path: Path, staged_size: int, direction: str, message: str
) -> None:
    """The job's own message (here: no such file or directory) reaches the caller; nothing is left behind."""
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        client, system = transport.client, transport.compute_resource
        with pytest.raises(FileNotFoundError, match=message) as raised:
            if direction == 'upload':
                target = str(remote / 'missing' / 'target.bin')
                await staged_upload(
                    client, system, str(tmp_path / 'source.bin'), target, account=None, reach=REACH, checksum=True
                )
            else:
                source = str(remote / 'missing.bin')
                await staged_download(
                    client, system, source, str(tmp_path / 'target.bin'), staged_size, account=None, reach=REACH
                )
        assert await _unfinished_transfer_jobs(transport) == []
    assert 'staging area' not in str(raised.value)
    assert os.listdir(remote) == []
    assert os.listdir(tmp_path) == ['source.bin']


@pytest.mark.usefixtures('upload_job_fails_at_part_two')
@pytest.mark.parametrize('existing', [False, True], ids=['new', 'overwritten'])
async def test_staged_upload_whose_job_fails_part_way_leaves_no_partial_copy(
    firecrest_transport: Any,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    existing: bool,
    local_server: Any,
) -> None:
    """The real job writes in place, part by part, after removing the file it replaces: what it wrote is removed.
    The part it failed on stays beside it, holding S3's answer, as the job leaves it. The ended job is not cancelled."""
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    if existing:
        Path(remote / 'target.bin').write_bytes(b'the old content')
    async with firecrest_transport() as transport:
        mark = local_server.request_log.mark()
        with pytest.raises(TransferFailedError, match=r'the transfer job failed: .*Download failed: part 2'):
            await transport.putfile_async(tmp_path / 'source.bin', remote / 'target.bin')
        await settle(local_server)
    assert os.listdir(remote) == ['target.bin.2']
    assert local_server.request_log.counts(mark)['DELETE /compute/{system_name}/jobs/{job_id}'] == 0


async def test_staged_upload_onto_a_directory_leaves_it(
    firecrest_transport: Any, remote: RemotePath, tmp_path: Path, staged_size: int
) -> None:
    """The job refuses a directory as its target (exit status 3): the directory and what it holds stay."""
    (tmp_path / 'source.bin').write_bytes(os.urandom(staged_size))
    Path(remote / 'target').mkdir()
    Path(remote / 'target' / 'kept.txt').write_text('kept')
    async with firecrest_transport() as transport:
        client, system = transport.client, transport.compute_resource
        with pytest.raises(TransferFailedError, match='must point to a file path'):
            target = str(remote / 'target')
            await staged_upload(
                client, system, str(tmp_path / 'source.bin'), target, account=None, reach=REACH, checksum=True
            )
    assert os.listdir(remote / 'target') == ['kept.txt']


async def test_multipart_upload_left_by_a_failed_upload_is_removed_by_the_bucket_lifecycle(
    firecrest_transport: Any,
    local_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
) -> None:
    """FirecREST gives no URL to abort a multipart upload: one the client leaves open (its job cancelled) stays until
    the bucket's lifecycle rule removes it, as the local server's sweep does once it expired."""
    s3 = local_server.settings.s3
    monkeypatch.setattr(staged_transfers, '_upload_parts', _s3_refuses_a_part)
    (tmp_path / 'abandoned.bin').write_bytes(os.urandom(staged_size))
    async with firecrest_transport() as transport:
        with pytest.raises(TransferFailedError):
            await transport.putfile_async(tmp_path / 'abandoned.bin', remote / 'abandoned.bin')
    assert len(_open_multipart_uploads(s3, 'abandoned.bin')) == 1
    await Staging(dataclasses.replace(s3, object_lifetime=0.0)).sweep()
    assert _open_multipart_uploads(s3, 'abandoned.bin') == []


def _open_multipart_uploads(s3: S3Settings, name: str) -> list[str]:
    """The keys of the open multipart uploads of files named ``name`` in the staging bucket."""
    uploads = s3.client().list_multipart_uploads(Bucket=s3.bucket).get('Uploads', [])
    return [upload['Key'] for upload in uploads if upload['Key'].endswith(f'/{name}')]


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
