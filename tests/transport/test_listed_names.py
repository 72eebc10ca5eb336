"""Names the server lists are checked as an archive's members are, on every way a tree is fetched (one archive or file
by file, links followed or kept, times and modes preserved): a name that leads outside the destination is refused
before anything is written, and nothing lands, is linked or is changed outside it."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from aiida_firecrest.client.exceptions import UnsafeArchiveError
from aiida_firecrest.transport.backend import FirecrestBackend
from aiida_firecrest.transport.listed_paths import glob_entries, preserve_all
from tests.remote_files import RemotePath
from tests.transport.contract_helpers import snapshot

HOSTILE_NAMES = ['../escape', 'sub/../../escape', '/tmp/escape']
KINDS = {'file': {'type': '-'}, 'link': {'type': 'l', 'linkTarget': '/etc/passwd'}, 'directory': {'type': 'd'}}


@pytest.fixture
def remote(transport_scratch: Callable[[str], RemotePath]) -> RemotePath:
    return transport_scratch('firecrest')


@pytest.mark.local_server(reason='writes the remote tree through the local file system')
@pytest.mark.parametrize('name', HOSTILE_NAMES)
@pytest.mark.parametrize('kind', sorted(KINDS))
@pytest.mark.parametrize(('way', 'archive_threshold'), [('one archive', 0), ('file by file', 1000)])
@pytest.mark.parametrize('dereference', [False, True], ids=['links kept', 'links followed'])
async def test_tree_refuses_a_listed_name_leading_outside(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    name: str,
    kind: str,
    way: str,
    archive_threshold: int,
    dereference: bool,
) -> None:
    Path(remote / 'tree').mkdir()
    (Path(remote / 'tree') / 'f.txt').write_text('x')
    list_directory = FirecrestBackend.list_directory

    async def hostile_listing(self: FirecrestBackend, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        entries = await list_directory(self, path, **kwargs)
        return [*entries, {**entries[0], 'name': name, **KINDS[kind]}]

    (tmp_path / 'local').mkdir()
    before = snapshot(tmp_path)
    monkeypatch.setattr(FirecrestBackend, 'list_directory', hostile_listing)
    async with firecrest_transport(archive_threshold=archive_threshold) as transport:
        with pytest.raises(UnsafeArchiveError, match='would be written outside'):
            await transport.gettree_async(remote / 'tree', tmp_path / 'local' / 'copy', dereference=dereference)
    assert snapshot(tmp_path) == before
    assert not os.path.lexists('/tmp/escape')


@pytest.mark.local_server(reason='writes the remote tree through the local file system')
@pytest.mark.parametrize('kind', sorted(KINDS))
@pytest.mark.parametrize(('way', 'archive_threshold'), [('one archive', 0), ('file by file', 1000)])
async def test_tree_refuses_a_listed_name_below_a_listed_link(
    firecrest_transport: Any,
    monkeypatch: pytest.MonkeyPatch,
    remote: RemotePath,
    tmp_path: Path,
    kind: str,
    way: str,
    archive_threshold: int,
) -> None:
    """``ls -R`` lists nothing below a link: a listing that does would have a name written where the link points."""
    Path(remote / 'tree').mkdir()
    (Path(remote / 'tree') / 'f.txt').write_text('x')
    (tmp_path / 'outside').mkdir()
    list_directory = FirecrestBackend.list_directory

    async def hostile_listing(self: FirecrestBackend, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        entries = await list_directory(self, path, **kwargs)
        link = {**entries[0], 'name': 'a', **KINDS['link'], 'linkTarget': str(tmp_path / 'outside')}
        return [*entries, link, {**entries[0], 'name': 'a/escape', **KINDS[kind]}]

    (tmp_path / 'local').mkdir()
    before = snapshot(tmp_path)
    monkeypatch.setattr(FirecrestBackend, 'list_directory', hostile_listing)
    async with firecrest_transport(archive_threshold=archive_threshold) as transport:
        with pytest.raises(UnsafeArchiveError, match="below the listed link 'a'"):
            await transport.gettree_async(remote / 'tree', tmp_path / 'local' / 'copy', dereference=False)
    assert snapshot(tmp_path) == before


def test_preserved_modes_and_times_stay_below_the_root(tmp_path: Path) -> None:
    """A listing's modes go to the fetched files alone: not through a local link, not to a name leading outside."""
    outside = tmp_path / 'outside.txt'
    outside.write_text('keep')
    outside.chmod(0o600)
    root = tmp_path / 'copy'
    root.mkdir()
    (root / 'f.txt').write_text('x')
    (root / 'link').symlink_to(outside)
    entry = {'type': '-', 'permissions': 'rwxrwxrwx', 'lastModified': '2020-01-01T00:00:00', 'size': '1'}
    preserve_all(str(root), [{**entry, 'name': 'f.txt'}, {**entry, 'name': 'link'}])
    assert stat.S_IMODE((root / 'f.txt').stat().st_mode) == 0o777
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    with pytest.raises(UnsafeArchiveError):
        preserve_all(str(root), [{**entry, 'name': '../outside.txt'}])
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600


class Listings:
    """A backend whose ``ls`` of any directory answers ``names`` (regular files)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    async def list_or_empty(self, directory: str) -> tuple[bool, list[dict[str, Any]]]:
        return True, [{'name': name, 'type': '-'} for name in self.names]


@pytest.mark.parametrize(
    ('pattern', 'name'),
    [('.*', '..'), ('.*', '.'), ('..', '..'), ('*', 'sub/file'), ('*', '/etc/passwd')],
)
async def test_glob_refuses_a_listed_name_that_is_no_entry(pattern: str, name: str) -> None:
    """A pattern's matches are joined to their directory (and their basenames to a local one): a listed name that
    would lead elsewhere is refused."""
    with pytest.raises(UnsafeArchiveError, match='is no entry of a directory'):
        await glob_entries(cast(Any, Listings(['ok.txt', name])), f'/scratch/{pattern}')


async def test_glob_matches_listed_names() -> None:
    matches = await glob_entries(cast(Any, Listings(['a.txt', 'b.dat', '.hidden.txt'])), '/scratch/*.txt')
    assert [path for path, _ in matches] == ['/scratch/a.txt']
