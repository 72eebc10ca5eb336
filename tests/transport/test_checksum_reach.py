"""A file too large for the server to hash before its command timeout still goes through the staging area: the real
server's ``checksum`` runs ``sha256sum`` under the SSH command timeout (20 s at CSCS) and answers 408 for a file of
some gigabytes. Such a copy is compared by its size (with a warning saying so), and files of that size or more are not
hashed again in the same process.

A ``sha256sum`` that outlasts the server's command timeout stands in for the large file: it is put first on the
server's ``PATH`` (the local server runs its commands with ``bash -c`` in its own environment). Uploads are compared by
SHA-256 here (``checksum_uploads``): by default they are compared by size anyway."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiida.common.log import AIIDA_LOGGER

from aiida_firecrest.client.exceptions import ChecksumMismatchError
from aiida_firecrest.client.server_facts import FACTS
from tests.remote_files import RemotePath
from tests.transport.conftest import RequestCounter

pytestmark = pytest.mark.local_server(reason="changes the local server's command timeout and its sha256sum")

CHECKSUM = 'GET /filesystem/{system_name}/ops/checksum'
STAT = 'GET /filesystem/{system_name}/ops/stat'
SIZE_ONLY = 'checked by its size only'


@pytest.fixture
def remote(transport_scratch: Callable[[str], RemotePath]) -> RemotePath:
    return transport_scratch('firecrest')


@pytest.fixture
def slow_checksums(
    local_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The server's ``sha256sum`` outlasts its command timeout (1 s); what the process learnt is forgotten after."""
    bin_directory = tmp_path_factory.mktemp('slow-bin')
    script = bin_directory / 'sha256sum'
    script.write_text('#!/bin/sh\nexec sleep 3\n')
    script.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_directory}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setattr(local_server.settings, 'command_timeout', 1.0)
    FACTS.clear()
    yield
    FACTS.clear()


def _transfer(transport: Any, direction: str, local: Path, remote: Path) -> Any:
    if direction == 'upload':
        return transport.putfile_async(local, remote)
    return transport.getfile_async(remote, local)


@pytest.mark.usefixtures('slow_checksums')
@pytest.mark.parametrize('direction', ['upload', 'download'])
async def test_file_the_server_cannot_hash_is_transferred_and_checked_by_its_size(
    firecrest_transport: Any,
    count_requests: Callable[[], RequestCounter],
    caplog: pytest.LogCaptureFixture,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    direction: str,
) -> None:
    data = os.urandom(staged_size)
    source, target = (tmp_path / 'file.bin', Path(remote / 'file.bin'))
    (source if direction == 'upload' else target).write_bytes(data)
    caplog.set_level(logging.WARNING, logger=AIIDA_LOGGER.name)
    async with firecrest_transport(checksum_uploads=True) as transport:
        async with count_requests() as counted:
            await _transfer(transport, direction, source, target)
    assert (target if direction == 'upload' else source).read_bytes() == data
    assert (counted.counts[CHECKSUM], counted.counts[STAT]) == (1, 1)
    assert [record.getMessage() for record in caplog.records if SIZE_ONLY in record.getMessage()] == [
        f'the server cannot compute the SHA-256 of {target} ({staged_size / 1e6:.0f} MB) within its command timeout: '
        'this staged copy is checked by its size only'
    ]


@pytest.mark.usefixtures('slow_checksums')
@pytest.mark.parametrize(('larger', 'checksums'), [(0, 0), (1, 0), (-1, 1)], ids=['same size', 'larger', 'smaller'])
async def test_after_a_timeout_files_as_large_are_not_hashed_again(
    firecrest_transport: Any,
    count_requests: Callable[[], RequestCounter],
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    larger: int,
    checksums: int,
) -> None:
    (tmp_path / 'first.bin').write_bytes(os.urandom(staged_size))
    (tmp_path / 'second.bin').write_bytes(os.urandom(staged_size + larger))
    async with firecrest_transport(checksum_uploads=True) as transport:
        await transport.putfile_async(tmp_path / 'first.bin', remote / 'first.bin')
        async with count_requests() as counted:
            await transport.putfile_async(tmp_path / 'second.bin', remote / 'second.bin')
    assert counted.counts[CHECKSUM] == checksums
    assert Path(remote / 'second.bin').read_bytes() == (tmp_path / 'second.bin').read_bytes()


@pytest.mark.usefixtures('slow_checksums')
@pytest.mark.parametrize('direction', ['upload', 'download'])
async def test_copy_of_another_size_is_not_kept(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    staged_size: int,
    direction: str,
) -> None:
    """Where only the size can be compared, a copy whose size differs is refused and removed, as one whose checksum
    differs."""
    source, target = (tmp_path / 'file.bin', Path(remote / 'file.bin'))
    (source if direction == 'upload' else target).write_bytes(os.urandom(staged_size))
    async with firecrest_transport(checksum_uploads=True) as transport:
        stat = transport.client.stat

        async def one_byte_more(system: str, path: str, dereference: bool = False) -> dict[str, Any]:
            attributes = dict(await stat(system, path, dereference=dereference))
            return {**attributes, 'size': int(attributes['size']) + 1}

        monkeypatch.setattr(transport.client, 'stat', one_byte_more)
        with pytest.raises(ChecksumMismatchError, match=r'the size of .* differs'):
            await _transfer(transport, direction, source, target)
    assert os.listdir(remote) == ([] if direction == 'upload' else ['file.bin'])
    assert os.listdir(tmp_path) == (['file.bin'] if direction == 'upload' else [])
