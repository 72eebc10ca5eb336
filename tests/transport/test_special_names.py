"""Against the real-like local server: the requests that empty files and names FirecREST's commands cannot carry take,
the listing shared by the ``get`` s of a directory, the refusals that send nothing, and the staged path taken when a
direct download is refused after all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.client.exceptions import UnsupportedPathError
from aiida_firecrest.transport.backend import usable_direct_download
from tests.transport.contract_helpers import DIR, build_tree, snapshot

pytestmark = pytest.mark.local_server(reason="checks the requests in the local server's request log")

UPLOAD = 'POST /filesystem/{system_name}/ops/upload'
EXTRACT = 'POST /filesystem/{system_name}/ops/extract'
RM = 'DELETE /filesystem/{system_name}/ops/rm'
MKDIR = 'POST /filesystem/{system_name}/ops/mkdir'
LS = 'GET /filesystem/{system_name}/ops/ls'
DOWNLOAD_DIRECT = 'GET /filesystem/{system_name}/ops/download'
DOWNLOAD_STAGED = 'POST /filesystem/{system_name}/transfer/download'
CHECKSUM = 'GET /filesystem/{system_name}/ops/checksum'


@pytest.fixture
def remote(transport_scratch: Any) -> Path:
    return transport_scratch('firecrest')


@pytest.mark.parametrize(
    ('name', 'content', 'expected'),
    [
        pytest.param('empty.txt', '', {UPLOAD: 1, EXTRACT: 1}, id='empty-in-place'),
        pytest.param("it's.txt", 'x', {LS: 1, UPLOAD: 1, EXTRACT: 1, RM: 1}, id='single-quote'),
        pytest.param('a"b&c<d>.txt', 'x', {LS: 1, UPLOAD: 1, EXTRACT: 1, RM: 1}, id='html-escaped'),
        pytest.param('tab\there.txt', '', {LS: 1, UPLOAD: 1, EXTRACT: 1, RM: 1}, id='empty-control-character'),
    ],
)
async def test_put_inside_an_archive(
    firecrest_transport: Any,
    count_requests: Any,
    remote: Path,
    tmp_path: Path,
    name: str,
    content: str,
    expected: dict[str, int],
) -> None:
    """An empty file (whose direct upload would hang until the command timeout) goes up as an archive in its own
    place; an awkward name as an archive in a temporary place, after a listing that refuses a directory there."""
    (tmp_path / 'source').write_text(content)
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        async with count_requests() as counted:
            await transport.putfile_async(tmp_path / 'source', remote / name)
    assert snapshot(remote) == {name: content}
    assert dict(counted.counts) == expected


async def test_gets_in_a_directory_share_one_listing(
    firecrest_transport: Any, count_requests: Any, remote: Path, tmp_path: Path
) -> None:
    build_tree(remote, {'a.txt': 'a', 'b.txt': 'b', 'empty.txt': ''})
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        async with count_requests() as counted:
            for name in ('a.txt', 'b.txt', 'empty.txt'):
                await transport.get_async(remote / name, tmp_path / name)
    assert {name: (tmp_path / name).read_text() for name in ('a.txt', 'b.txt', 'empty.txt')} == {
        'a.txt': 'a',
        'b.txt': 'b',
        'empty.txt': '',
    }
    assert dict(counted.counts) == {LS: 1, DOWNLOAD_DIRECT: 2}


async def test_a_write_of_this_transport_renews_the_listing(
    firecrest_transport: Any, count_requests: Any, remote: Path, tmp_path: Path
) -> None:
    build_tree(remote, {'a.txt': 'a'})
    (tmp_path / 'b.txt').write_text('new')
    async with firecrest_transport() as transport:
        await transport.get_async(remote / 'a.txt', tmp_path / 'a.txt')
        await transport.put_async(tmp_path / 'b.txt', remote / 'b.txt')
        async with count_requests() as counted:
            await transport.get_async(remote / 'b.txt', tmp_path / 'back.txt')
    assert (tmp_path / 'back.txt').read_text() == 'new'
    assert counted.counts[LS] == 1


@pytest.mark.parametrize('ignore_existing', [False, True])
@pytest.mark.parametrize('name', ["it's", "top/it's/deep"])
async def test_makedirs_of_a_single_quote_through_an_archive(
    firecrest_transport: Any, count_requests: Any, remote: Path, name: str, ignore_existing: bool
) -> None:
    """The server's ``mkdir`` would make a directory of another name: no ``mkdir`` of such a path is sent."""
    async with firecrest_transport() as transport:
        async with count_requests() as counted:
            await transport.makedirs_async(remote / name, ignore_existing=ignore_existing)
    parts = name.split('/')
    assert snapshot(remote) == {'/'.join(parts[: depth + 1]): DIR for depth in range(len(parts))}
    assert counted.counts[EXTRACT] == 1
    assert counted.counts[MKDIR] == 1  # ``mkdir -p`` of the deepest level without a quote


@pytest.mark.parametrize('operation', ['remove', 'rmtree', 'rmdir'])
async def test_removal_of_a_single_quote_is_refused_unsent(
    firecrest_transport: Any, count_requests: Any, remote: Path, operation: str
) -> None:
    build_tree(remote, {"it's": DIR})
    async with firecrest_transport() as transport:
        async with count_requests() as counted:
            with pytest.raises(UnsupportedPathError, match=r"remove .*it's"):
                await getattr(transport, f'{operation}_async')(remote / "it's")
    assert snapshot(remote) == {"it's": DIR}
    assert counted.total == 0


@pytest.mark.parametrize('factor', [pytest.param(0.9, id='413-at-once')])
async def test_refused_direct_download_takes_the_staged_path(
    firecrest_transport: Any, local_server: Any, count_requests: Any, remote: Path, tmp_path: Path, factor: float
) -> None:
    """A file listed small but grown since (the listing is shared for seconds) is tried directly; the server refuses
    it as the real one does for its size, and the file comes through the staging area, checked."""
    limit = int(local_server.settings.max_ops_file_size)
    build_tree(remote, {'small.txt': 's', 'grows.bin': 'x'})
    data = bytes(range(256)) * (int(limit * factor) // 256)
    assert len(data) > usable_direct_download(limit)
    async with firecrest_transport() as transport:
        await transport.get_async(remote / 'small.txt', tmp_path / 'small.txt')
        (remote / 'grows.bin').write_bytes(data)
        async with count_requests() as counted:
            await transport.get_async(remote / 'grows.bin', tmp_path / 'grows.bin')
    assert (tmp_path / 'grows.bin').read_bytes() == data
    counts = (counted.counts[DOWNLOAD_DIRECT], counted.counts[DOWNLOAD_STAGED], counted.counts[CHECKSUM])
    assert counts == (1, 1, 1)
