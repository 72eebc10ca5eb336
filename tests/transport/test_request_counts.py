"""Pins on the number of FirecREST requests of the key operations (token requests not counted).

CSCS throttles clients to 10 requests per second and 120 per minute; the plugin's value lies in asking little. Each
test counts the requests the local server answered (``local_server.request_log``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.client.server_facts import FACTS
from aiida_firecrest.transport.backend import usable_direct_download
from tests.transport.contract_helpers import build_tree

pytestmark = pytest.mark.local_server(reason="pins request counts in the local server's request log")

MiB = 1024 * 1024


@pytest.fixture
def remote(transport_scratch: Callable[[str], Path]) -> Path:
    return transport_scratch('firecrest')


@pytest.fixture
def count(count_requests: Callable[[], Any]) -> Callable[..., Any]:
    """``await count(coroutine)`` returns the requests per endpoint that awaiting ``coroutine`` cost."""

    async def counter(coroutine: Any) -> collections.Counter[str]:
        async with count_requests() as counted:
            await coroutine
        return counted.counts

    return counter


async def test_small_put_is_one_request_and_get_two(
    firecrest_transport: Any, count: Any, remote: Path, tmp_path: Path
) -> None:
    (tmp_path / 'f.txt').write_text('content')
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        put = await count(transport.put_async(tmp_path / 'f.txt', remote / 'f.txt'))
        get = await count(transport.get_async(remote / 'f.txt', tmp_path / 'back.txt'))
        missing = await count(transport.get_async(remote / 'nope', tmp_path / 'nope', ignore_nonexisting=True))
    assert put == {'POST /filesystem/{system_name}/ops/upload': 1}
    # the listing of the directory tells the size, which decides between the direct and the staged download
    assert get == {'GET /filesystem/{system_name}/ops/ls': 1, 'GET /filesystem/{system_name}/ops/download': 1}
    assert missing == {}  # the same directory: its listing, a moment old, tells that the file is missing
    assert (tmp_path / 'back.txt').read_text() == 'content'


async def test_queries_are_one_request_each(firecrest_transport: Any, count: Any, remote: Path) -> None:
    build_tree(remote, {'dir/f.txt': 'x'})
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        for query in ('path_exists_async', 'isdir_async', 'isfile_async', 'get_attribute_async'):
            for path in (remote / 'dir', remote / 'dir' / 'f.txt', remote / 'missing'):
                if query == 'get_attribute_async' and path.name == 'missing':
                    continue
                counts = await count(getattr(transport, query)(path))
                assert sum(counts.values()) == 1, (query, path, counts)
        assert (
            sum((await count(transport.makedirs_async(remote / 'a' / 'b' / 'c', ignore_existing=True))).values()) == 1
        )
        assert sum((await count(transport.mkdir_async(remote / 'a' / 'b' / 'c' / 'd'))).values()) == 1
        assert sum((await count(transport.glob_async(f'{remote}/dir/*.txt'))).values()) == 1


async def test_listdir_withattributes_is_one_ls(firecrest_transport: Any, count: Any, remote: Path) -> None:
    build_tree(remote, {**{f'file{index}.txt': str(index) for index in range(40)}, 'sub/inner': 'x'})
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        counts = await count(transport.listdir_withattributes_async(remote))
        entries = await transport.listdir_withattributes_async(remote)
    assert counts == {'GET /filesystem/{system_name}/ops/ls': 1}
    assert len(entries) == 41
    assert {entry['name'] for entry in entries if entry['isdir']} == {'sub'}


async def test_whoami_costs_no_request_with_a_jwt(firecrest_transport: Any, count_requests: Any) -> None:
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        async with count_requests() as counted:
            for _ in range(5):
                await transport.whoami_async()
    assert counted.all_requests == []


@pytest.mark.parametrize('direction', ['put', 'get'])
async def test_thousand_file_tree_costs_a_small_constant(
    firecrest_transport: Any, count: Any, remote: Path, tmp_path: Path, direction: str
) -> None:
    tree = {f'd{index % 10}/f{index}.txt': f'{index}' for index in range(1000)}
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        if direction == 'put':
            source = build_tree(tmp_path / 'tree', tree)
            counts = await count(transport.puttree_async(source, remote / 'tree'))
            result = remote / 'tree'
        else:
            build_tree(remote / 'tree', tree)
            counts = await count(transport.gettree_async(remote / 'tree', tmp_path / 'tree'))
            result = tmp_path / 'tree'
    assert counts.pop('GET /status/systems', 0) <= 1  # the direct limit of an archive over 1 MiB: once per process
    assert sum(counts.values()) <= 4, counts
    assert len(list(result.rglob('*.txt'))) == 1000


async def test_status_systems_is_asked_at_most_once_per_process(
    firecrest_transport: Any, count_requests: Any, remote: Path, tmp_path: Path
) -> None:
    """Files of 1 MiB or more need the server's direct limit: asked once, for all transports the engine opens."""
    FACTS.clear()
    (tmp_path / 'f.bin').write_bytes(b'x' * (2 * MiB))
    async with count_requests() as counted:
        for index in range(3):
            async with firecrest_transport() as transport:
                await transport.put_async(tmp_path / 'f.bin', remote / f'f{index}.bin')
                await transport.get_async(remote / f'f{index}.bin', tmp_path / f'back{index}.bin')
    counts = counted.counts
    assert counts['GET /status/systems'] == 1
    assert counts['POST /filesystem/{system_name}/ops/upload'] == 3


async def test_small_files_never_ask_for_the_limit(
    firecrest_transport: Any, count: Any, remote: Path, tmp_path: Path
) -> None:
    """Up to 3/4 of pyfirecrest's 1 MiB (no server has a lower direct limit), a file goes both ways directly without
    asking the server its limit."""
    FACTS.clear()
    (tmp_path / 'f.txt').write_bytes(b'x' * usable_direct_download(MiB))
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        counts = await count(transport.put_async(tmp_path / 'f.txt', remote / 'f.txt'))
        counts += await count(transport.get_async(remote / 'f.txt', tmp_path / 'back.txt'))
    assert counts['GET /status/systems'] == 0
    assert sum(counts.values()) == 3  # upload; ls and download


async def test_calcjob_upload_and_retrieve(firecrest_transport: Any, count: Any, remote: Path, tmp_path: Path) -> None:
    """What the engine does over the transport for ``core.arithmetic.add`` (``execmanager``): 9 requests, 10 when
    the work directory is new (with the scheduler's submit and poll, 11 and 12).

    whoami (0), path_exists (1), [makedirs of a new work directory (1)], makedirs of the shard (1), mkdir of the
    folder (1), two sandbox files (2), the ``.aiida`` folder with two files (2: its archive uploaded in its place and
    extracted, since the folder is known to be fresh), three retrieved files: one ``ls`` of the folder, which tells
    their sizes (1), then a download of the file with content (1); the empty and the missing one cost nothing more.
    """
    sandbox = build_tree(
        tmp_path / 'sandbox',
        {
            'aiida.in': 'echo 3',
            '_aiidasubmit.sh': '#!/bin/bash',
            '.aiida/calcinfo.json': '{}',
            '.aiida/job_tmpl.json': '{}',
        },
    )
    workdir = remote / 'aiida'
    uuid = 'a1b2c3d4-0000-4000-8000-000000000000'
    total: collections.Counter[str] = collections.Counter()
    async with firecrest_transport() as transport:
        total += await count(transport.whoami_async())
        exists = await transport.path_exists_async(workdir)
        total['GET /filesystem/{system_name}/ops/stat'] += 1
        if not exists:
            total += await count(transport.makedirs_async(workdir))
        shard = workdir / uuid[:2] / uuid[2:4]
        total += await count(transport.makedirs_async(shard, ignore_existing=True))
        folder = shard / uuid[4:]
        total += await count(transport.mkdir_async(folder))
        for name in ('aiida.in', '_aiidasubmit.sh', '.aiida'):
            total += await count(transport.put_async(sandbox / name, folder / name))
        (folder / 'aiida.out').write_text('6')
        (folder / '_scheduler-stdout.txt').write_text('')
        retrieved = tmp_path / 'retrieved'
        retrieved.mkdir()
        for name in ('aiida.out', '_scheduler-stdout.txt', '_scheduler-stderr.txt'):
            total += await count(transport.get_async(folder / name, retrieved / name, ignore_nonexisting=True))
    assert sorted(p.name for p in retrieved.iterdir()) == ['_scheduler-stdout.txt', 'aiida.out']
    assert sorted(p.name for p in (folder / '.aiida').iterdir()) == ['calcinfo.json', 'job_tmpl.json']
    assert sum(total.values()) == 10, total  # the work directory was new
    assert total['GET /filesystem/{system_name}/ops/ls'] == 1
    assert total['POST /filesystem/{system_name}/ops/mkdir'] == 3
    assert total['GET /status/systems'] == 0
