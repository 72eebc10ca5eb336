"""What the transport makes of names, without a server: the C escapes of listings, which paths each way of FirecREST
carries, the refusals before anything is sent, the shared listings of directories, and the archives that carry what
FirecREST's commands cannot."""

from __future__ import annotations

import asyncio
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.client.exceptions import UnsupportedPathError
from aiida_firecrest.transport.carried_names import (
    check_commands_carry,
    check_jobs_carry,
    commands_carry,
    jobs_carry,
    server_carries,
    shell_word_safe,
)
from aiida_firecrest.transport.file_attributes import decode_listed_name
from aiida_firecrest.transport.known_directories import FreshDirectories, RecentListings
from aiida_firecrest.transport.local_archives import create_archive, create_directories_archive, safe_extract


@pytest.mark.parametrize(
    ('listed', 'name'),
    [
        pytest.param('plain.txt', 'plain.txt', id='plain'),
        pytest.param('\\303\\274n\\303\\257.txt', 'ünï.txt', id='octal-utf8'),
        pytest.param('\\346\\227\\245\\346\\234\\254', '日本', id='octal-three-byte-utf8'),
        pytest.param('tab\\tname', 'tab\tname', id='tab'),
        pytest.param('new\\nline', 'new\nline', id='newline'),
        pytest.param('bell\\a', 'bell\a', id='control'),
        pytest.param('double"quote', 'double"quote', id='double-quote-unescaped-by-the-server'),
        pytest.param("single'quote", "single'quote", id='single-quote'),
        pytest.param('\\377bad', os.fsdecode(b'\xffbad'), id='undecodable-byte-as-surrogate'),
        pytest.param('back\\tslash', 'back\tslash', id='backslash-reads-as-escape'),
    ],
)
def test_decode_listed_name(listed: str, name: str) -> None:
    """The server leaves C escapes in names (after unescaping only ``\\"`` and ``\\\\``). A name holding a backslash
    is ambiguous after that: ``back\\tslash`` may have been ``back<tab>slash`` or a backslash and a ``t``; it reads as
    the escape (documented in :func:`decode_listed_name`)."""
    assert decode_listed_name(listed) == name


@pytest.mark.parametrize(
    ('path', 'commands', 'jobs', 'everywhere', 'shell_word'),
    [
        pytest.param('/a/plain-name_1.txt', True, True, True, True, id='plain'),
        pytest.param("/a/single'quote", False, False, False, False, id='single-quote'),
        pytest.param('/a/double"quote', True, False, False, False, id='double-quote'),
        pytest.param('/a/semi;colon&amp', True, False, False, False, id='ampersand'),
        pytest.param('/a/<angle>', True, False, False, False, id='angle-brackets'),
        pytest.param('/a/with space', True, True, False, False, id='space'),
        pytest.param('/a/tab\there', True, True, False, False, id='control-character'),
        pytest.param('/a/back\\slash', True, True, False, False, id='backslash'),
        pytest.param('/a/$HOME and `id`', True, True, False, False, id='shell-expansion'),
        pytest.param('/a/ünï.txt', True, True, True, True, id='non-ascii'),
    ],
)
def test_which_ways_carry_a_path(path: str, commands: bool, jobs: bool, everywhere: bool, shell_word: bool) -> None:
    """Commands break on ``'`` only, jobs on what HTML escaping changes; staged transfers and uploads need more."""
    assert (commands_carry(path), jobs_carry(path), server_carries(path), shell_word_safe(path)) == (
        commands,
        jobs,
        everywhere,
        shell_word,
    )


@pytest.mark.parametrize('path', ["/a/it's", "/it's/a"])
def test_commands_refuse_a_single_quote_naming_it(path: str) -> None:
    with pytest.raises(UnsupportedPathError, match=r"remove .*the ' in it would end the quotes"):
        check_commands_carry('remove', '/fine', path)


@pytest.mark.parametrize('char', ['"', '&', "'", '<', '>'])
def test_jobs_refuse_html_escaped_characters_naming_them(char: str) -> None:
    with pytest.raises(UnsupportedPathError, match=re.escape(f'HTML-escape the {char!r}')):
        check_jobs_carry('copy', '/fine', f'/a/x{char}y')


@pytest.mark.parametrize('path', ['/a/plain', '/a/with space', '/a/ünï'])
def test_jobs_accept_what_they_carry(path: str) -> None:
    check_jobs_carry('copy', path)
    check_commands_carry('copy', path)


# --- the shared listings of directories -------------------------------------------------------------------------------


class Lister:
    """A fetch of a listing that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        await asyncio.sleep(0)
        return [{'name': 'f.txt', 'type': '-', 'size': '3'}]


async def test_concurrent_and_successive_gets_share_one_listing() -> None:
    listings, lister = RecentListings(), Lister()
    await asyncio.gather(*(listings.get('/d', lister) for _ in range(3)))
    await listings.get('/d/', lister)
    assert lister.calls == 1


@pytest.mark.parametrize('changed', ['/d', '/d/f.txt', '/d/sub/deep'], ids=['directory', 'entry', 'below'])
async def test_a_change_of_this_transport_forgets_the_listing(changed: str) -> None:
    directories, lister = FreshDirectories(), Lister()
    await directories.listings.get('/d', lister)
    directories.touched(changed)
    await directories.listings.get('/d', lister)
    assert lister.calls == 2


async def test_a_removal_of_an_ancestor_forgets_the_listing() -> None:
    directories, lister = FreshDirectories(), Lister()
    await directories.listings.get('/top/d', lister)
    directories.forget('/top')
    await directories.listings.get('/top/d', lister)
    assert lister.calls == 2


async def test_a_change_elsewhere_keeps_the_listing() -> None:
    directories, lister = FreshDirectories(), Lister()
    await directories.listings.get('/d', lister)
    directories.touched('/other/f.txt')
    await directories.listings.get('/d', lister)
    assert lister.calls == 1


async def test_a_listing_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, 'monotonic', lambda: now[0])
    listings, lister = RecentListings(max_age=10.0), Lister()
    await listings.get('/d', lister)
    now[0] += 9.0
    await listings.get('/d', lister)
    assert lister.calls == 1
    now[0] += 2.0
    await listings.get('/d', lister)
    assert lister.calls == 2


async def test_a_failed_listing_is_not_remembered() -> None:
    listings, lister = RecentListings(), Lister()

    async def failing() -> list[dict[str, Any]]:
        raise FileNotFoundError('/d')

    with pytest.raises(FileNotFoundError):
        await listings.get('/d', failing)
    await listings.get('/d', lister)
    assert lister.calls == 1


# --- archives that carry what the server's commands cannot ------------------------------------------------------------


@pytest.mark.parametrize('path', ["it's", "top/it's/deep", 'a"b/c&d'])
def test_directories_archive_holds_every_level(tmp_path: Path, path: str) -> None:
    create_directories_archive(tmp_path / 'a.tar.gz', path)
    with tarfile.open(tmp_path / 'a.tar.gz') as tar:
        members = [(member.name, member.isdir()) for member in tar]
    parts = path.split('/')
    assert members == [('/'.join(parts[: depth + 1]), True) for depth in range(len(parts))]


@pytest.mark.parametrize(('copy_hard_links', 'links'), [(True, 1), (False, 2)])
def test_hard_links_of_followed_links_become_copies(tmp_path: Path, copy_hard_links: bool, links: int) -> None:
    """``tar --dereference`` stores a file reached through a link as a hard link to the first; with
    ``copy_hard_links`` it is extracted as an independent file with the same content."""
    source = tmp_path / 'tree'
    source.mkdir()
    (source / 'a.txt').write_text('content')
    with tarfile.open(tmp_path / 'a.tar', 'w') as tar:
        tar.add(source, arcname='tree')
        hard = tar.gettarinfo(source / 'a.txt', arcname='tree/b.txt')
        hard.type, hard.linkname, hard.size = tarfile.LNKTYPE, 'tree/a.txt', 0
        tar.addfile(hard)
    target = tmp_path / 'out'
    target.mkdir()
    safe_extract(tmp_path / 'a.tar', target, strip_components=1, copy_hard_links=copy_hard_links)
    assert (target / 'b.txt').read_text() == 'content'
    assert (target / 'a.txt').stat().st_nlink == (target / 'b.txt').stat().st_nlink == links


def test_archive_of_a_tree_carries_any_name(tmp_path: Path) -> None:
    names = ["it's", 'a"b', 'semi;colon&amp', 'tab\there', 'ünï', '']
    source = tmp_path / 'tree'
    source.mkdir()
    for name in names[:-1]:
        (source / name).write_text(name)
    (source / 'empty').write_bytes(b'')
    create_archive(source, tmp_path / 'a.tar.gz', arcname='tree', dereference=True)
    target = tmp_path / 'out'
    target.mkdir()
    safe_extract(tmp_path / 'a.tar.gz', target)
    assert {path.name: path.read_text() for path in (target / 'tree').iterdir()} == {
        **{name: name for name in names[:-1]},
        'empty': '',
    }
