"""Archives that cannot be extracted as they are: bad hard links and broken archives fail as ``core.local`` fails on
them (an ``OSError``: its ``extract`` runs ``tar``), never with tarfile's own ``KeyError`` or ``ReadError``, naming the
member, and leave nothing extracted. Hostile paths and links are in ``test_transfers.py``."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from aiida.transports.plugins.local import LocalTransport

from aiida_firecrest.client.exceptions import BrokenArchiveError, UnsafeArchiveError
from aiida_firecrest.transport.local_archives import extract_member, safe_extract
from tests.transport.contract_helpers import DIR, snapshot

Member = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, data: bytes = b'data') -> Member:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    return member, data


def _directory(name: str) -> Member:
    member = tarfile.TarInfo(name)
    member.type = tarfile.DIRTYPE
    return member, None


def _hard_link(name: str, target: str) -> Member:
    member = tarfile.TarInfo(name)
    member.type = tarfile.LNKTYPE
    member.linkname = target
    return member, None


def _tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, 'w:gz') as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


BAD_HARD_LINKS = {
    'to-a-missing-member': [_hard_link('hard', 'missing.txt')],
    'to-itself': [_hard_link('hard', 'hard')],
    'to-a-later-member': [_hard_link('hard', 'later.txt'), _file('later.txt')],
    'to-a-directory': [_directory('sub'), _hard_link('hard', 'sub')],
    'to-the-target': [_hard_link('hard', '.')],
    'to-nothing': [_hard_link('hard', '')],
}


def _core_local_extract(archive: Path, target: Path) -> None:
    with LocalTransport() as transport:
        transport.extract(str(archive), str(target))


@pytest.mark.parametrize('name', sorted(BAD_HARD_LINKS))
def test_bad_hard_link_fails_as_core_local_naming_the_member(tmp_path: Path, name: str) -> None:
    """A hard link must name a file of the archive before it; the safe members before it are not written either."""
    archive = _tar(tmp_path / 'bad.tar.gz', [_file('ok.txt'), *BAD_HARD_LINKS[name]])
    (tmp_path / 'local').mkdir()
    (tmp_path / 'ours').mkdir()
    with pytest.raises(OSError):
        _core_local_extract(archive, tmp_path / 'local')
    with pytest.raises(UnsafeArchiveError, match="archive hard link 'hard'") as info:
        safe_extract(archive, tmp_path / 'ours')
    assert not isinstance(info.value, (ValueError, LookupError))
    assert os.listdir(tmp_path / 'ours') == []


@pytest.mark.parametrize('copy_hard_links', [False, True], ids=['linked', 'copied'])
@pytest.mark.parametrize('strip_components', [0, 1])
def test_hard_link_to_a_file_before_it_is_extracted(
    tmp_path: Path, copy_hard_links: bool, strip_components: int
) -> None:
    prefix = 'top/' if strip_components else ''
    members = [_file(f'{prefix}sub/a.txt', b'a'), _hard_link(f'{prefix}b.txt', f'{prefix}sub/a.txt')]
    archive = _tar(tmp_path / 'ok.tar.gz', members)
    (tmp_path / 'target').mkdir()
    safe_extract(archive, tmp_path / 'target', strip_components=strip_components, copy_hard_links=copy_hard_links)
    assert snapshot(tmp_path / 'target') == {'sub': DIR, 'sub/a.txt': 'a', 'b.txt': 'a'}
    linked = os.path.samefile(tmp_path / 'target' / 'b.txt', tmp_path / 'target' / 'sub' / 'a.txt')
    assert linked is not copy_hard_links


def _broken(kind: str, path: Path) -> Path:
    """An archive that cannot be read: cut in the middle of its compressed data, no archive, or empty."""
    whole = _tar(path.with_suffix('.whole'), [_file('big.bin', os.urandom(200_000))]).read_bytes()
    content = {'truncated': whole[: len(whole) // 2], 'not-an-archive': b'<html>502 Bad Gateway</html>', 'empty': b''}
    path.write_bytes(content[kind])
    return path


@pytest.mark.parametrize('kind', ['truncated', 'not-an-archive', 'empty'])
def test_broken_archive_fails_as_core_local(tmp_path: Path, kind: str) -> None:
    archive = _broken(kind, tmp_path / 'broken.tar.gz')
    (tmp_path / 'local').mkdir()
    (tmp_path / 'ours').mkdir()
    with pytest.raises(OSError):
        _core_local_extract(archive, tmp_path / 'local')
    with pytest.raises(BrokenArchiveError, match=r'broken\.tar\.gz cannot be read') as info:
        safe_extract(archive, tmp_path / 'ours')
    assert isinstance(info.value.__cause__, (tarfile.TarError, EOFError))


@pytest.mark.parametrize('kind', ['truncated', 'not-an-archive', 'empty'])
def test_member_of_a_broken_archive_fails_with_an_os_error(tmp_path: Path, kind: str) -> None:
    with pytest.raises(BrokenArchiveError):
        extract_member(_broken(kind, tmp_path / 'broken.tar.gz'), 'big.bin', tmp_path / 'big.bin')
