"""Transfers of files and trees: both sides of the direct-transfer limit, staged transfers with their checksum, the
archive path of trees, and the safety of extracting an archive.

Against a deployment of ``--firecrest-config`` the tests about which requests a transfer takes skip (they read the local
server's request log); the others run, and check the remote side through ``remote_files``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.client.exceptions import ChecksumMismatchError, FirecrestApiError, UnsafeArchiveError
from aiida_firecrest.client.server_facts import FACTS
from aiida_firecrest.transport.backend import usable_direct_download
from aiida_firecrest.transport.local_archives import safe_extract
from aiida_firecrest.transport.staged_transfers import LOGGER, Progress
from tests.conftest import make_sync_client
from tests.remote_files import RemoteFiles, RemotePath
from tests.transport.conftest import settle
from tests.transport.contract_helpers import DIR, Entry, Link, build_tree, snapshot

REQUEST_LOG = pytest.mark.local_server(
    reason="checks which requests the transfer takes in the local server's request log"
)

MiB = 1024 * 1024

UPLOAD_DIRECT = 'POST /filesystem/{system_name}/ops/upload'
UPLOAD_STAGED = 'POST /filesystem/{system_name}/transfer/upload'
DOWNLOAD_DIRECT = 'GET /filesystem/{system_name}/ops/download'
DOWNLOAD_STAGED = 'POST /filesystem/{system_name}/transfer/download'
CHECKSUM = 'GET /filesystem/{system_name}/ops/checksum'
STAT = 'GET /filesystem/{system_name}/ops/stat'
VIEW = 'GET /filesystem/{system_name}/ops/view'
LS = 'GET /filesystem/{system_name}/ops/ls'
SYSTEMS = 'GET /status/systems'


async def _counts(server: Any, mark: int) -> Any:
    """The requests the server answered since ``mark``; None without a request log (``log_server`` is None)."""
    if server is None:
        return None
    await settle(server)
    return server.request_log.counts(mark)


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def remote(transport_scratch: Callable[[str], RemotePath]) -> RemotePath:
    return transport_scratch('firecrest')


@pytest.fixture
def log_server(external_config: dict[str, Any] | None, request: pytest.FixtureRequest) -> Any:
    """The local server, whose request log pins the requests of a test about a behaviour; None against a deployment
    of ``--firecrest-config``, where only what the test observes on the deployment is checked."""
    return None if external_config is not None else request.getfixturevalue('local_server')


@pytest.fixture
def limit(external_config: dict[str, Any] | None, request: pytest.FixtureRequest) -> int:
    """The server's direct-transfer limit: the local server's setting, or what the deployment reports."""
    if external_config is None:
        return int(request.getfixturevalue('local_server').settings.max_ops_file_size)
    client = make_sync_client(external_config)
    try:
        (system,) = [system for system in client.systems() if system['name'] == external_config['compute_resource']]
    finally:
        client.close_session()
    operations = system.get('dataOperation') or {}
    limit = operations.get('max_ops_file_size', operations.get('maxOpsFileSize'))
    if not limit:
        pytest.skip('--firecrest-config: the deployment does not report its direct-transfer limit (max_ops_file_size)')
    return int(limit)


@REQUEST_LOG
async def test_upload_up_to_the_limit_goes_direct(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path, limit: int
) -> None:
    """Below the server's limit (5 MiB, not pyfirecrest's 1 MiB) a file goes up in one request, no checksum."""
    digest = random_file(tmp_path / 'f.bin', limit - 1)
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        mark = local_server.request_log.mark()
        await transport.put_async(tmp_path / 'f.bin', remote / 'f.bin')
        put = await _counts(local_server, mark)
    assert sha256(remote / 'f.bin') == digest
    assert put[UPLOAD_DIRECT] == 1 and put[UPLOAD_STAGED] == 0 and put[CHECKSUM] == 0


@REQUEST_LOG
@pytest.mark.parametrize(('offset', 'staged'), [(0, False), (1, True)])
async def test_download_direct_up_to_the_usable_size(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path, limit: int, offset: int, staged: bool
) -> None:
    """The server checks its limit on the base64 text: a file comes down directly up to 3/4 of the limit (its size
    from a listing of the directory), through the staging area above, never by a direct attempt that would fail."""
    digest = random_file(remote / 'f.bin', usable_direct_download(limit) + offset)
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        mark = local_server.request_log.mark()
        await transport.get_async(remote / 'f.bin', tmp_path / 'back.bin')
        get = await _counts(local_server, mark)
    assert sha256(tmp_path / 'back.bin') == digest
    assert get[LS] == 1
    assert (get[DOWNLOAD_DIRECT], get[DOWNLOAD_STAGED], get[CHECKSUM]) == ((0, 1, 1) if staged else (1, 0, 0))


@REQUEST_LOG
@pytest.mark.parametrize('checksum_uploads', [False, True], ids=['upload by size', 'upload by SHA-256'])
async def test_file_above_the_limit_is_staged_and_checked(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path, limit: int, checksum_uploads: bool
) -> None:
    """A staged upload is checked by the copy's size (one ``stat``), or by its SHA-256 if asked; a staged download
    always by its SHA-256."""
    digest = random_file(tmp_path / 'f.bin', limit + 1)
    async with firecrest_transport(checksum_uploads=checksum_uploads) as transport:
        mark = local_server.request_log.mark()
        await transport.put_async(tmp_path / 'f.bin', remote / 'f.bin')
        put = await _counts(local_server, mark)
        mark = local_server.request_log.mark()
        await transport.get_async(remote / 'f.bin', tmp_path / 'back.bin')
        get = await _counts(local_server, mark)
    assert sha256(remote / 'f.bin') == sha256(tmp_path / 'back.bin') == digest
    assert put[UPLOAD_DIRECT] == 0 and put[UPLOAD_STAGED] == 1
    assert (put[CHECKSUM], put[STAT]) == ((1, 0) if checksum_uploads else (0, 1))
    assert get[DOWNLOAD_DIRECT] == 0 and get[DOWNLOAD_STAGED] == 1 and get[CHECKSUM] == 1
    assert put[VIEW] == get[VIEW] == 0, 'a transfer job that completed is taken at its word: no view of its log'


async def test_staged_20_mb_file_round_trip(
    firecrest_transport: Any, log_server: Any, remote: RemotePath, remote_files: RemoteFiles, tmp_path: Path
) -> None:
    digest = random_file(tmp_path / 'big.bin', 20 * 1000 * 1000)
    async with firecrest_transport() as transport:
        mark = log_server.request_log.mark() if log_server is not None else 0
        await transport.putfile_async(tmp_path / 'big.bin', remote / 'big.bin')
        await transport.getfile_async(remote / 'big.bin', tmp_path / 'back.bin')
        counts = await _counts(log_server, mark)
    assert remote_files.sha256(remote / 'big.bin') == digest
    assert sha256(tmp_path / 'back.bin') == digest
    if counts is not None:
        assert counts[UPLOAD_STAGED] == counts[DOWNLOAD_STAGED] == 1
        assert counts[CHECKSUM] == 1, 'the download is checked by SHA-256, the upload by its size'


@REQUEST_LOG
async def test_a_listed_size_skips_the_direct_attempt(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path, limit: int
) -> None:
    """In a tree fetched file by file, the listing told the sizes: a large file goes straight to the staged path."""
    build_tree(remote, {'tree/small.txt': 'small'})
    digest = random_file(remote / 'tree' / 'large.bin', limit + 10)
    async with firecrest_transport() as transport:
        mark = local_server.request_log.mark()
        await transport.gettree_async(remote / 'tree', tmp_path / 'tree')
        counts = await _counts(local_server, mark)
    assert sha256(tmp_path / 'tree' / 'large.bin') == digest
    assert counts[DOWNLOAD_DIRECT] == 1  # small.txt only
    assert counts[DOWNLOAD_STAGED] == 1


@REQUEST_LOG
async def test_max_direct_size_option_replaces_the_server_limit(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path
) -> None:
    digest = random_file(tmp_path / 'f.bin', 3000)
    async with firecrest_transport(max_direct_size=1000) as transport:
        mark = local_server.request_log.mark()
        await transport.put_async(tmp_path / 'f.bin', remote / 'f.bin')
        counts = await _counts(local_server, mark)
    assert sha256(remote / 'f.bin') == digest
    assert counts[UPLOAD_STAGED] == 1 and counts[UPLOAD_DIRECT] == 0 and counts[SYSTEMS] == 0


@REQUEST_LOG
async def test_413_falls_back_to_the_staged_path(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path, limit: int
) -> None:
    """A ``max_direct_size`` above the server's limit: the server answers 413 and the transfer goes staged."""
    FACTS.clear()
    digest = random_file(tmp_path / 'f.bin', limit + 100)
    async with firecrest_transport(max_direct_size=4 * limit) as transport:
        mark = local_server.request_log.mark()
        await transport.put_async(tmp_path / 'f.bin', remote / 'f.bin')
        counts = await _counts(local_server, mark)
    assert sha256(remote / 'f.bin') == digest
    assert counts[UPLOAD_DIRECT] == 1 and counts[SYSTEMS] == 1 and counts[UPLOAD_STAGED] == 1


async def test_checksum_mismatch_is_an_error(
    firecrest_transport: Any, remote: RemotePath, tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    random_file(tmp_path / 'f.bin', limit + 1)
    async with firecrest_transport(checksum_uploads=True) as transport:

        async def corrupted(system: str, path: str) -> dict[str, str]:
            return {'algorithm': 'SHA256', 'checksum': '0' * 64}

        monkeypatch.setattr(transport.client, 'checksum', corrupted)
        with pytest.raises(ChecksumMismatchError, match='differs'):
            await transport.put_async(tmp_path / 'f.bin', remote / 'f.bin')


@REQUEST_LOG
async def test_staged_download_fetches_the_object_without_waiting_to_see_its_job_end(
    firecrest_transport: Any, remote: Path, tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object is probed in the staging area: a job whose end is never seen does not hold the download back."""
    digest = random_file(remote / 'f.bin', limit + 1)
    async with firecrest_transport() as transport:

        async def never_seen_ending(system: str, job_id: str) -> None:
            await asyncio.Event().wait()

        monkeypatch.setattr(transport.client, 'wait_for_job', never_seen_ending)
        await asyncio.wait_for(transport.get_async(remote / 'f.bin', tmp_path / 'back.bin'), timeout=60)
    assert sha256(tmp_path / 'back.bin') == digest


# --- trees ----------------------------------------------------------------------------------------------------------

BIG_TREE: dict[str, Entry] = {
    **{f'sub{index % 4}/deep/file{index}.txt': f'content {index}' for index in range(40)},
    'empty': DIR,
    '.hidden': 'hidden',
    'relative_link': Link('sub0/deep/file0.txt'),
    'dangling_link': Link('/nowhere/at/all'),
}


@REQUEST_LOG
async def test_tree_goes_up_and_down_as_one_archive(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path
) -> None:
    source = build_tree(tmp_path / 'source', BIG_TREE)
    async with firecrest_transport(archive_threshold=8) as transport:
        mark = local_server.request_log.mark()
        await transport.puttree_async(source, remote / 'tree', dereference=False)
        put = await _counts(local_server, mark)
        mark = local_server.request_log.mark()
        await transport.gettree_async(remote / 'tree', tmp_path / 'back', dereference=False)
        get = await _counts(local_server, mark)
    assert snapshot(remote / 'tree') == snapshot(source)
    assert snapshot(tmp_path / 'back') == snapshot(source)
    assert sum(put.values()) <= 4, put
    assert put[UPLOAD_DIRECT] == 1
    assert sum(get.values()) <= 4, get
    assert get[DOWNLOAD_DIRECT] == 1
    assert os.listdir(local_server.client_config()['temp_directory']) == []


@REQUEST_LOG
async def test_small_tree_goes_file_by_file(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path
) -> None:
    tree: dict[str, Entry] = {'a.txt': 'a', 'sub/b.txt': 'b', 'sub/deeper/c.txt': 'c', 'empty': DIR}
    source = build_tree(tmp_path / 'source', tree)
    async with firecrest_transport(archive_threshold=8) as transport:
        mark = local_server.request_log.mark()
        await transport.puttree_async(source, remote / 'tree')
        put = await _counts(local_server, mark)
        await transport.gettree_async(remote / 'tree', tmp_path / 'back')
    assert snapshot(remote / 'tree') == snapshot(tmp_path / 'back') == snapshot(source)
    assert put[UPLOAD_DIRECT] == 3
    assert put['POST /filesystem/{system_name}/transfer/upload'] == 0


# --- hostile archives ---------------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, 'w:gz') as tar:
        for member, data in members:
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b'pwned') -> tuple[tarfile.TarInfo, bytes | None]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes | None]:
    """A link member (or any member without data, of type ``kind``)."""
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = target
    return member, None


HOSTILE = {
    'absolute': [_file('ok.txt'), _file('/ESCAPE/abs.txt')],
    'dotdot': [_file('ok.txt'), _file('../escape.txt')],
    'dotdot-inside': [_file('sub/../../escape.txt')],
    'escaping-symlink': [_link('link', '../..'), _file('link/escape.txt')],
    'absolute-symlink': [_link('link', '/tmp'), _file('link/escape.txt')],
    'hardlink-outside': [_link('hard', '../outside.txt', tarfile.LNKTYPE)],
    'device': [_link('dev', '', tarfile.CHRTYPE)],
}


@pytest.mark.parametrize('name', sorted(HOSTILE))
def test_hostile_archive_writes_nothing_outside(tmp_path: Path, name: str) -> None:
    outside = tmp_path / 'outside'
    target = outside / 'target'
    target.mkdir(parents=True)
    (outside / 'outside.txt').write_text('keep')
    archive = _tar(tmp_path / 'hostile.tar.gz', HOSTILE[name])
    before = snapshot(outside)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)
    after = snapshot(outside)
    assert {path: entry for path, entry in after.items() if not path.startswith('target')} == {
        path: entry for path, entry in before.items() if not path.startswith('target')
    }
    assert not Path('/ESCAPE').exists()


@pytest.mark.parametrize('name', sorted(HOSTILE))
def test_refused_archive_leaves_nothing_extracted(tmp_path: Path, name: str) -> None:
    """Every member is checked before any is written: the safe members before a hostile one stay in the archive."""
    archive = _tar(tmp_path / 'hostile.tar.gz', [_file('ok.txt', b'ok'), _file('sub/ok.txt', b'ok'), *HOSTILE[name]])
    (tmp_path / 'target').mkdir()
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / 'target')
    assert os.listdir(tmp_path / 'target') == []


def test_safe_extract_strips_and_keeps_inner_links(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / 'ok.tar.gz',
        [_file('top/a.txt', b'a'), _file('top/sub/b.txt', b'b'), _link('top/sub/link', '../a.txt')],
    )
    (tmp_path / 'target').mkdir()
    safe_extract(archive, tmp_path / 'target', strip_components=1)
    assert snapshot(tmp_path / 'target') == {'a.txt': 'a', 'sub': DIR, 'sub/b.txt': 'b', 'sub/link': Link('../a.txt')}


async def test_gettree_refuses_a_hostile_archive_from_the_server(
    firecrest_transport: Any, remote: RemotePath, remote_files: RemoteFiles, tmp_path: Path
) -> None:
    """Whatever the server sends back as the archive of a tree, nothing lands outside the local target."""
    remote_files.build_tree(remote, {f'tree/f{index}.txt': str(index) for index in range(20)})
    hostile = _tar(tmp_path / 'hostile.tar.gz', [_file('tree/ok.txt'), _file('tree/../../escape.txt')])
    async with firecrest_transport(archive_threshold=8) as transport:

        async def compress(source: str, target: str, dereference: bool) -> None:
            await transport.putfile_async(hostile, target)

        transport._routes.compress_into_temporary = compress
        with pytest.raises(UnsafeArchiveError):
            await transport.gettree_async(remote / 'tree', tmp_path / 'local' / 'target')
    assert not (tmp_path / 'escape.txt').exists()
    assert not (tmp_path / 'local' / 'escape.txt').exists()


async def test_one_transport_serves_many_coroutines_at_once(
    firecrest_transport: Any, remote: RemotePath, remote_files: RemoteFiles, tmp_path: Path
) -> None:
    """The engine shares one open transport between its CalcJobs and awaits many of its coroutines at once."""
    remote_files.build_tree(remote, {f'in/f{index}.txt': f'remote {index}' for index in range(20)})
    build_tree(tmp_path / 'up', {f'f{index}.txt': f'local {index}' for index in range(20)})
    (tmp_path / 'down').mkdir()
    async with firecrest_transport(max_concurrency=4) as transport:
        await asyncio.gather(
            *(transport.makedirs_async(remote / 'out' / 'shared', ignore_existing=True) for _ in range(5)),
        )
        results = await asyncio.gather(
            *(
                transport.put_async(tmp_path / 'up' / f'f{i}.txt', remote / 'out' / 'shared' / f'f{i}.txt')
                for i in range(20)
            ),
            *(transport.get_async(remote / 'in' / f'f{i}.txt', tmp_path / 'down' / f'f{i}.txt') for i in range(20)),
            *(transport.listdir_async(remote / 'in') for _ in range(5)),
            *(transport.path_exists_async(remote / 'in' / f'f{i}.txt') for i in range(5)),
            transport.whoami_async(),
            transport.puttree_async(tmp_path / 'up', remote / 'tree'),
        )
    assert all(len(listing) == 20 for listing in results[40:45])
    assert all(results[45:50])
    assert remote_files.snapshot(remote / 'out' / 'shared') == snapshot(tmp_path / 'up')
    assert remote_files.snapshot(remote / 'tree') == snapshot(tmp_path / 'up')
    assert snapshot(tmp_path / 'down') == remote_files.snapshot(remote / 'in')


@REQUEST_LOG
async def test_tree_into_a_fresh_directory_goes_in_place(
    firecrest_transport: Any, local_server: Any, remote: Path, tmp_path: Path
) -> None:
    """In a directory the transport just created, a tree's archive is uploaded in its place and extracted: two
    requests, no temporary file left behind."""
    tree: dict[str, Entry] = {'calcinfo.json': '{}', 'job_tmpl.json': '{}', 'sub/x': 'x', 'link': Link('calcinfo.json')}
    source = build_tree(tmp_path / '.aiida', tree)
    async with firecrest_transport() as transport:
        await transport.mkdir_async(remote / 'folder')
        mark = local_server.request_log.mark()
        await transport.put_async(source, remote / 'folder' / '.aiida', dereference=False)
        counts = await _counts(local_server, mark)
    assert counts == {UPLOAD_DIRECT: 1, 'POST /filesystem/{system_name}/ops/extract': 1}
    assert snapshot(remote / 'folder' / '.aiida') == snapshot(source)
    assert os.listdir(remote / 'folder') == ['.aiida']


async def test_tree_in_place_falls_back_if_the_extraction_fails(
    firecrest_transport: Any,
    remote: RemotePath,
    remote_files: RemoteFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = build_tree(tmp_path / 'tree', {'a.txt': 'a', 'sub/b.txt': 'b'})
    async with firecrest_transport() as transport:
        await transport.mkdir_async(remote / 'folder')
        extract = transport._routes.extract
        calls = []

        async def failing_once(source: str, destination: str, compression: str) -> None:
            calls.append(source)
            if len(calls) == 1:
                raise FirecrestApiError('tar: Cannot mkdir: File exists')
            await extract(source, destination, compression)

        monkeypatch.setattr(transport._routes, 'extract', failing_once)
        await transport.put_async(source, remote / 'folder' / 'tree')
    assert remote_files.snapshot(remote / 'folder' / 'tree') == snapshot(source)
    assert remote_files.listdir(remote / 'folder') == ['tree']


def test_fresh_directory_knowledge() -> None:
    from aiida_firecrest.transport.known_directories import FreshDirectories

    fresh = FreshDirectories()
    assert not fresh.absent('/w/folder/x')
    fresh.created('/w/folder')
    assert fresh.absent('/w/folder/x')
    fresh.touched('/w/folder/x/deep/file')
    assert not fresh.absent('/w/folder/x')
    assert fresh.absent('/w/folder/y')
    fresh.forget('/w')
    assert not fresh.absent('/w/folder/y')


async def test_tree_in_place_notices_a_directory_made_behind_its_back(
    firecrest_transport: Any, remote: RemotePath, remote_files: RemoteFiles, tmp_path: Path
) -> None:
    source = build_tree(tmp_path / 'tree', {'a.txt': 'a'})
    async with firecrest_transport() as transport:
        await transport.mkdir_async(remote / 'folder')
        remote_files.mkdir(remote / 'folder' / 'tree')  # not through the transport
        await transport.put_async(source, remote / 'folder' / 'tree')
    assert remote_files.snapshot(remote / 'folder') == {'tree': DIR, 'tree/tree': DIR, 'tree/tree/a.txt': 'a'}


# --- progress of staged transfers -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ('steps', 'records'),
    [
        ([1.0] * 4, 1),  # within one interval: only the final record
        ([3.0] * 4, 2),  # the second step crosses an interval (the fourth is 100 %), plus the final record
        ([6.0] * 4, 4),  # every step but the last (100 %, which the final record tells) crosses one
    ],
)
def test_progress_is_logged_at_most_once_an_interval(
    caplog: pytest.LogCaptureFixture, steps: list[float], records: int
) -> None:
    clock = FakeClock()
    progress = Progress('staged download of /f', total=4 * MiB, interval=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        for step in steps:
            clock.now += step
            progress.advance(MiB)
        progress.finish()
    assert len(caplog.records) == records
    assert all(record.levelno == logging.INFO for record in caplog.records)
    final = caplog.records[-1].getMessage()
    assert 'done, 4.2 of 4.2 MB' in final
    assert f'({4 * MiB / 1e6 / sum(steps):.1f} MB/s)' in final


@pytest.mark.local_server(reason='a transfer staged by the local server')
@pytest.mark.parametrize('direction', ['put', 'get'])
async def test_staged_transfer_reports_its_progress_on_the_transport_logger(
    firecrest_transport: Any,
    local_server: Any,
    remote: RemotePath,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    direction: str,
) -> None:
    """Bytes done and rate reach AiiDA's transport logger (and so the daemon log) at INFO."""
    monkeypatch.setattr('aiida_firecrest.transport.staged_transfers.PROGRESS_INTERVAL', 0.0)
    size = int(local_server.settings.max_ops_file_size) + 1
    random_file(tmp_path / 'f.bin', size)
    Path(remote / 'f.bin').write_bytes((tmp_path / 'f.bin').read_bytes())
    async with firecrest_transport() as transport:
        with caplog.at_level(logging.INFO, logger=LOGGER.name):
            if direction == 'put':
                await transport.putfile_async(tmp_path / 'f.bin', remote / 'copy.bin')
            else:
                await transport.getfile_async(remote / 'f.bin', tmp_path / 'copy.bin')
    messages = [record.getMessage() for record in caplog.records if record.name == 'aiida.transport.FirecrestTransport']
    action = 'staged upload' if direction == 'put' else 'staged download'
    assert messages and all(message.startswith(f'{action} of ') and 'MB/s' in message for message in messages)
    assert f'done, {size / 1e6:.1f} of {size / 1e6:.1f} MB' in messages[-1]
