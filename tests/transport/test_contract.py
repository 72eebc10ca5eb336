"""The transport contract of aiida-core 2.9, run against ``core.local`` (the reference) and ``firecrest``.

Every test runs once per transport kind. ``core.local`` pins the semantics (``aiida/transports/plugins/local.py``); the
FirecREST transport must behave the same, except where a test states in one line why the two legitimately differ.

The "remote" side of ``core.local`` is a directory under ``tmp_path``; that of ``firecrest`` a directory inside the work
directory of the server under test. Trees are built and checked there through ``remote_files``, never through the
transport under test: on the disk for the local server, through plain pyfirecrest for a deployment given with
``--firecrest-config``, so the firecrest half runs against either.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiida.transports.plugins.local import LocalTransport
from aiida.transports.transport import Transport
from aiida.transports.util import FileAttribute
from packaging.version import Version

from aiida_firecrest.client.exceptions import UnsupportedPathError
from tests.remote_files import DiskFiles, Location, RemoteFiles
from tests.transport.contract_helpers import DIR, Entry, Link, Transfer, permissions_enforced, run_coroutine

NEEDS_PERMISSIONS = pytest.mark.skipif(
    not permissions_enforced(), reason='root bypasses file permissions; CI runs this suite as a non-root user'
)

SAMPLE_TREE: dict[str, Entry] = {
    'a.txt': 'alpha',
    'b.dat': 'beta',
    '.hidden': 'secret',
    'sub': DIR,
    'sub/c.txt': 'gamma',
    'sub/deep': DIR,
    'sub/deep/d.txt': 'delta',
    'empty': DIR,
}
"""Files, a hidden file, nested and empty directories; no links."""

LINK_TREE: dict[str, Entry] = {
    'target.txt': 'pointed at',
    'dir': DIR,
    'dir/inner.txt': 'inside',
    'link_file': Link('target.txt'),
    'link_dir': Link('dir'),
}
"""A tree with relative links to a file and to a directory."""

LINK_TREE_DEREFERENCED: dict[str, Entry] = {
    'target.txt': 'pointed at',
    'dir': DIR,
    'dir/inner.txt': 'inside',
    'link_file': 'pointed at',
    'link_dir': DIR,
    'link_dir/inner.txt': 'inside',
}
"""What :data:`LINK_TREE` becomes when links are followed."""

GLOB_TREE: dict[str, Entry] = {
    'a.txt': 'a',
    'b.txt': 'b',
    'c.dat': 'c',
    '.hidden.txt': 'h',
    'sub': DIR,
    'sub/x.txt': 'sx',
    'sub/y.dat': 'sy',
    'other': DIR,
    'other/x.txt': 'ox',
    'empty': DIR,
}

SPECIAL_NAMES = [
    pytest.param('with space.txt', id='space'),
    pytest.param("single'quote.txt", id='squote'),
    pytest.param('double"quote.txt', id='dquote'),
    pytest.param('ünïcødé-ß-日本.txt', id='non-ascii'),
    pytest.param('$HOME and `id`.txt', id='shell-expansion'),
    pytest.param('semi;colon&amp|pipe.txt', id='shell-operators'),
    pytest.param('-leading-dash.txt', id='leading-dash'),
]
"""File names a transport must pass through untouched (no quoting, expansion or option parsing on the way)."""

UNREMOVABLE = (
    "FirecREST limitation: its rm command leaves a ' unescaped, its rm job HTML-escapes it; refused, nothing sent"
)

ARCHIVE_FORMATS = [
    pytest.param('tar', 'r:', id='tar'),
    pytest.param('tar.gz', 'r:gz', id='tar.gz'),
    pytest.param('tar.bz2', 'r:bz2', id='tar.bz2'),
    pytest.param('tar.xz', 'r:xz', id='tar.xz'),
]
"""The formats of ``compress`` (aiida-core's docstring says ``tar.bz``; both implementations accept ``tar.bz2``), and
the :mod:`tarfile` mode that reads each."""


LOCAL_ARCHIVES_27 = Version(version('aiida-core')) < Version('2.8')
"""aiida-core 2.7's LocalTransport ignores ``strip_components`` and does not create the parent of a new archive."""


def xfail_local_archives_27(transport_kind: str, request: pytest.FixtureRequest) -> None:
    """Mark the reference's half of an archive test as failing on aiida-core 2.7 (see :data:`LOCAL_ARCHIVES_27`)."""
    if transport_kind == 'core.local' and LOCAL_ARCHIVES_27:
        reason = 'aiida-core 2.7 LocalTransport ignores strip_components and makes no parent of a new archive'
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(params=['core.local', 'firecrest'])
def transport_kind(request: pytest.FixtureRequest) -> str:
    """The entry point name of the transport under test."""
    return request.param


@pytest.fixture
def transport(transport_kind: str, request: pytest.FixtureRequest) -> Iterator[Transport]:
    """An open transport of ``transport_kind``, closed afterwards."""
    if transport_kind == 'core.local':
        # Built directly so that the reference half of the suite does not depend on the server under test.
        transport: Transport = LocalTransport(machine='localhost')
    else:
        request.getfixturevalue('aiida_profile')  # the sync API of an AsyncTransport runs on the profile's runner loop
        # The suite checks behaviour, not pacing: without a per-minute budget it runs in seconds rather than minutes.
        transport = request.getfixturevalue('transport_factory')('firecrest', requests_per_minute=0)
    with transport:
        yield transport


@pytest.fixture
def remote(transport_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Location]:
    """A fresh, empty directory on the transport's side, with the files object that looks at it there."""
    if transport_kind == 'core.local':
        files = DiskFiles()
        path = files.scratch(str(tmp_path), 'remote')
        yield Location(files, path)
        files.remove(path)
    else:
        remote_files: RemoteFiles = request.getfixturevalue('remote_files')
        yield Location(remote_files, request.getfixturevalue('transport_scratch')('firecrest'))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Location]:
    """A fresh, empty directory on the local side (the machine running AiiDA)."""
    files = DiskFiles()
    path = files.scratch(str(tmp_path), 'local')
    yield Location(files, path)
    files.remove(path)


@pytest.fixture(params=['put', 'get', 'copy'])
def transfer(request: pytest.FixtureRequest, transport: Transport, local: Location, remote: Location) -> Transfer:
    """A transfer direction with fresh ``source`` and ``destination`` directories on the right sides."""
    kind = request.param
    source_side, destination_side = {'put': (local, remote), 'get': (remote, local), 'copy': (remote, remote)}[kind]
    source = source_side / 'from'
    destination = destination_side / 'to'
    source.mkdir()
    destination.mkdir()
    return Transfer(kind, transport, source, destination)


PUT_GET = pytest.mark.parametrize('transfer', ['put', 'get'], indirect=True)
"""Restricts a test to ``put`` and ``get``: ``copy`` has no ``overwrite`` or ``ignore_nonexisting`` argument."""


# --- transfers: files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_file_to_new_path(transfer: Transfer, family: str) -> None:
    transfer.source.build({'f.txt': 'content'})
    transfer.call(family, transfer.source / 'f.txt', transfer.destination / 'renamed.txt')
    assert transfer.destination.snapshot() == {'renamed.txt': 'content'}


def test_transfer_file_into_existing_directory_lands_inside(transfer: Transfer) -> None:
    transfer.source.build({'f.txt': 'content'})
    transfer.any(transfer.source / 'f.txt', transfer.destination)
    assert transfer.destination.snapshot() == {'f.txt': 'content'}


@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_file_into_missing_parent_raises(transfer: Transfer, family: str) -> None:
    """A file transfer does not create missing parent directories of its destination."""
    transfer.source.build({'f.txt': 'content'})
    with pytest.raises(FileNotFoundError):
        transfer.call(family, transfer.source / 'f.txt', transfer.destination / 'missing' / 'f.txt')
    assert transfer.destination.snapshot() == {}


def test_transfer_overwrites_existing_file_by_default(transfer: Transfer) -> None:
    transfer.source.build({'f.txt': 'new'})
    transfer.destination.build({'f.txt': 'old and longer'})
    transfer.any(transfer.source / 'f.txt', transfer.destination / 'f.txt')
    assert transfer.destination.snapshot() == {'f.txt': 'new'}


@PUT_GET
@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_file_overwrite_false_on_existing_raises(transfer: Transfer, family: str) -> None:
    transfer.source.build({'f.txt': 'new'})
    transfer.destination.build({'f.txt': 'old'})
    with pytest.raises(OSError):
        transfer.call(family, transfer.source / 'f.txt', transfer.destination / 'f.txt', overwrite=False)
    assert transfer.destination.snapshot() == {'f.txt': 'old'}


@PUT_GET
@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_file_overwrite_false_on_new_path_works(transfer: Transfer, family: str) -> None:
    transfer.source.build({'f.txt': 'new'})
    transfer.call(family, transfer.source / 'f.txt', transfer.destination / 'f.txt', overwrite=False)
    assert transfer.destination.snapshot() == {'f.txt': 'new'}


@PUT_GET
@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_of_a_file_link_copies_the_content(transfer: Transfer, family: str) -> None:
    transfer.source.build({'target.txt': 'pointed at', 'link': Link('target.txt')})
    transfer.call(family, transfer.source / 'link', transfer.destination / 'copy')
    assert transfer.destination.snapshot() == {'copy': 'pointed at'}


@pytest.mark.parametrize('family', ['any', 'file', 'tree'])
def test_transfer_missing_source_raises(transfer: Transfer, family: str) -> None:
    with pytest.raises(OSError):
        transfer.call(family, transfer.source / 'missing', transfer.destination / 'x')
    assert transfer.destination.snapshot() == {}


@PUT_GET
def test_transfer_missing_source_with_ignore_nonexisting_does_nothing(transfer: Transfer) -> None:
    transfer.any(transfer.source / 'missing', transfer.destination / 'x', ignore_nonexisting=True)
    assert transfer.destination.snapshot() == {}


@pytest.mark.parametrize('name', SPECIAL_NAMES)
def test_transfer_file_with_special_name(transfer: Transfer, name: str) -> None:
    transfer.source.build({name: f'content of {name}'})
    transfer.any(transfer.source / name, transfer.destination / name)
    assert transfer.destination.snapshot() == {name: f'content of {name}'}


def test_transfer_empty_file(transfer: Transfer) -> None:
    transfer.source.build({'empty.txt': ''})
    transfer.any(transfer.source / 'empty.txt', transfer.destination / 'empty.txt')
    assert transfer.destination.snapshot() == {'empty.txt': ''}


def test_transfer_binary_file_is_byte_exact(transfer: Transfer) -> None:
    payload = bytes(range(256)) * 257 + b'\r\n\x00end'
    (transfer.source / 'blob.bin').write_bytes(payload)
    transfer.any(transfer.source / 'blob.bin', transfer.destination / 'blob.bin')
    assert (transfer.destination / 'blob.bin').read_bytes() == payload


# --- transfers: trees -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_to_new_path(transfer: Transfer, family: str) -> None:
    """The whole tree arrives, hidden files and empty directories included."""
    (transfer.source / 'tree').build(SAMPLE_TREE)
    transfer.call(family, transfer.source / 'tree', transfer.destination / 'new')
    assert (transfer.destination / 'new').snapshot() == SAMPLE_TREE


@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_into_existing_directory_lands_at_basename(transfer: Transfer, family: str) -> None:
    """Like ``cp -r tree existing``: the tree becomes ``existing/tree``."""
    (transfer.source / 'tree').build(SAMPLE_TREE)
    (transfer.destination / 'existing').mkdir()
    transfer.call(family, transfer.source / 'tree', transfer.destination / 'existing')
    assert (transfer.destination / 'existing').snapshot() == {
        'tree': DIR,
        **{f'tree/{path}': entry for path, entry in SAMPLE_TREE.items()},
    }


@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_onto_existing_file_raises(transfer: Transfer, family: str) -> None:
    (transfer.source / 'tree').build(SAMPLE_TREE)
    transfer.destination.build({'file': 'untouched'})
    with pytest.raises(OSError):
        transfer.call(family, transfer.source / 'tree', transfer.destination / 'file')
    assert transfer.destination.snapshot() == {'file': 'untouched'}


@PUT_GET
@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_overwrite_false_on_existing_raises(transfer: Transfer, family: str) -> None:
    (transfer.source / 'tree').build(SAMPLE_TREE)
    transfer.destination.build({'existing/old.txt': 'old'})
    with pytest.raises(OSError):
        transfer.call(family, transfer.source / 'tree', transfer.destination / 'existing', overwrite=False)
    assert transfer.destination.snapshot() == {'existing': DIR, 'existing/old.txt': 'old'}


@PUT_GET
@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_overwrite_merges_into_existing(transfer: Transfer, family: str) -> None:
    """With ``overwrite`` (the default) files of the tree replace existing ones; other existing files stay."""
    (transfer.source / 'tree').build({'a.txt': 'new', 'sub/b.txt': 'new b'})
    transfer.destination.build({'existing/tree/a.txt': 'old', 'existing/tree/kept.txt': 'kept'})
    transfer.call(family, transfer.source / 'tree', transfer.destination / 'existing')
    assert (transfer.destination / 'existing' / 'tree').snapshot() == {
        'a.txt': 'new',
        'kept.txt': 'kept',
        'sub': DIR,
        'sub/b.txt': 'new b',
    }


@pytest.mark.parametrize('family', ['any', 'tree'])
@pytest.mark.parametrize(
    ('dereference', 'expected'),
    [pytest.param(False, LINK_TREE, id='keep-links'), pytest.param(True, LINK_TREE_DEREFERENCED, id='follow-links')],
)
def test_transfer_tree_dereference(transfer: Transfer, family: str, dereference: bool, expected: dict) -> None:
    """``dereference=False`` recreates links as links (same target); ``True`` copies what they point to."""
    (transfer.source / 'tree').build(LINK_TREE)
    transfer.call(family, transfer.source / 'tree', transfer.destination / 'new', dereference=dereference)
    assert (transfer.destination / 'new').snapshot() == expected


@pytest.mark.parametrize('family', ['any', 'tree'])
def test_transfer_tree_follow_links_makes_independent_files(transfer: Transfer, family: str) -> None:
    """Followed links become files of their own, as ``shutil.copytree`` makes them, not hard links to one another."""
    (transfer.source / 'tree').build(LINK_TREE)
    transfer.call(family, transfer.source / 'tree', transfer.destination / 'new', dereference=True)
    files = ['target.txt', 'link_file', 'dir/inner.txt', 'link_dir/inner.txt']
    assert {name: (transfer.destination / 'new' / name).lstat().nlink for name in files} == dict.fromkeys(files, 1)


def test_transfer_tree_default_dereference(transfer: Transfer) -> None:
    """``put`` and ``get`` follow links by default, ``copy`` keeps them."""
    (transfer.source / 'tree').build(LINK_TREE)
    transfer.any(transfer.source / 'tree', transfer.destination / 'new')
    expected = LINK_TREE if transfer.kind == 'copy' else LINK_TREE_DEREFERENCED
    assert (transfer.destination / 'new').snapshot() == expected


def test_transfer_tree_keeps_dangling_link_without_dereference(transfer: Transfer) -> None:
    spec: dict[str, Entry] = {'f.txt': 'x', 'dangling': Link('nowhere'), 'sub/abs': Link('/nonexistent/abs/target')}
    (transfer.source / 'tree').build(spec)
    transfer.any(transfer.source / 'tree', transfer.destination / 'new', dereference=False)
    assert (transfer.destination / 'new').snapshot() == {**spec, 'sub': DIR}


def test_puttree_following_links_refuses_a_dangling_one(transport: Transport, remote: Location, tmp_path: Path) -> None:
    """As ``core.local``, whose ``shutil.copytree`` fails on a link it cannot follow: no silently missing file."""
    source = tmp_path / 'tree'
    source.mkdir()
    (source / 'f.txt').write_text('x')
    (source / 'dangling').symlink_to('nowhere')
    with pytest.raises(OSError):
        transport.puttree(str(source), str(remote / 'new'), dereference=True)


def test_transfer_tree_with_special_names(transfer: Transfer) -> None:
    names = [str(param.values[0]) for param in SPECIAL_NAMES]
    spec: dict[str, Entry] = {f'{name}.d/{name}': name for name in names}
    (transfer.source / 'tree').build(spec)
    transfer.any(transfer.source / 'tree', transfer.destination / 'new')
    assert (transfer.destination / 'new').snapshot() == {**spec, **{f'{name}.d': DIR for name in names}}


def test_transfer_tree_preserves_file_mtimes(transfer: Transfer, transport_kind: str) -> None:
    """The reference copies trees with ``shutil.copytree`` (``copy2``), which keeps modification times."""
    if transport_kind == 'firecrest':
        pytest.skip(
            'not in the contract: FirecREST has no call to set times; core.ssh_async keeps them only on request'
        )
    (transfer.source / 'tree').build({'old.txt': 'old'})
    os.utime(str(transfer.source / 'tree' / 'old.txt'), (1_000_000_000, 1_000_000_000))
    transfer.any(transfer.source / 'tree', transfer.destination / 'new')
    assert (transfer.destination / 'new' / 'old.txt').lstat().mtime == 1_000_000_000


# --- transfers: glob patterns -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('pattern', 'expected'),
    [
        pytest.param('*.txt', {'a.txt': 'a', 'b.txt': 'b'}, id='star'),
        pytest.param('?.*', {'a.txt': 'a', 'b.txt': 'b', 'c.dat': 'c'}, id='question-mark'),
        pytest.param('[ab].txt', {'a.txt': 'a', 'b.txt': 'b'}, id='bracket'),
        pytest.param('s*', {'sub': DIR, 'sub/x.txt': 'sx', 'sub/y.dat': 'sy'}, id='single-directory'),
        pytest.param(
            '*',
            {
                'a.txt': 'a',
                'b.txt': 'b',
                'c.dat': 'c',
                'sub': DIR,
                'sub/x.txt': 'sx',
                'sub/y.dat': 'sy',
                'other': DIR,
                'other/x.txt': 'ox',
                'empty': DIR,
            },
            id='star-skips-hidden',
        ),
    ],
)
def test_transfer_glob_into_existing_directory(transfer: Transfer, pattern: str, expected: dict) -> None:
    """Matching files land inside the destination directory, matching directories at ``destination/name``."""
    transfer.source.build(GLOB_TREE)
    (transfer.destination / 'into').mkdir()
    transfer.any(transfer.source / pattern, transfer.destination / 'into')
    assert (transfer.destination / 'into').snapshot() == expected


@pytest.mark.parametrize('destination', ['missing', 'file'])
def test_transfer_glob_several_matches_need_a_directory(transfer: Transfer, destination: str) -> None:
    """Several matches onto a missing path or a file is an ``OSError``."""
    transfer.source.build(GLOB_TREE)
    transfer.destination.build({'file': 'untouched'})
    with pytest.raises(OSError):
        transfer.any(transfer.source / '*.txt', transfer.destination / destination)
    assert transfer.destination.snapshot() == {'file': 'untouched'}


def test_transfer_glob_single_file_match_into_existing_directory(
    transfer: Transfer, transport_kind: str, request: pytest.FixtureRequest
) -> None:
    """A single matching file lands inside the directory, as without a pattern."""
    if transport_kind == 'core.local' and transfer.kind == 'get':
        reason = 'aiida-core 2.9 get() (local and ssh_async) writes a single glob match onto the directory itself'
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    transfer.source.build(GLOB_TREE)
    (transfer.destination / 'into').mkdir()
    transfer.any(transfer.source / 'c.*', transfer.destination / 'into')
    assert (transfer.destination / 'into').snapshot() == {'c.dat': 'c'}


def test_transfer_glob_single_match_onto_new_path(transfer: Transfer) -> None:
    transfer.source.build(GLOB_TREE)
    transfer.any(transfer.source / 'a.*', transfer.destination / 'renamed.txt')
    assert transfer.destination.snapshot() == {'renamed.txt': 'a'}


def test_transfer_glob_in_destination_raises_value_error(transfer: Transfer) -> None:
    transfer.source.build(GLOB_TREE)
    with pytest.raises(ValueError):
        transfer.any(transfer.source / '*.txt', transfer.destination / '*')
    assert transfer.destination.snapshot() == {}


def test_transfer_glob_without_match_does_nothing(transfer: Transfer) -> None:
    transfer.source.build(GLOB_TREE)
    transfer.any(transfer.source / '*.none', transfer.destination)
    assert transfer.destination.snapshot() == {}


# --- transfers: argument checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize('method', ['put', 'putfile', 'puttree', 'get', 'getfile', 'gettree'])
def test_relative_local_path_raises_value_error(
    transport: Transport, local: Location, remote: Location, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local paths must be absolute, even when the relative one exists from the current directory."""
    local.build({'tree/f.txt': 'local'})
    remote.build({'tree/f.txt': 'remote'})
    monkeypatch.chdir(local.path)
    is_tree = method.endswith('tree')
    relative_local = 'tree' if is_tree else 'tree/f.txt'
    remote_path = str(remote / 'tree') if is_tree else str(remote / 'tree' / 'f.txt')
    with pytest.raises(ValueError):
        if method.startswith('put'):
            getattr(transport, method)(relative_local, remote_path)
        else:
            getattr(transport, method)(remote_path, relative_local)


@pytest.mark.parametrize('dereference', [False, True])
def test_copyfile_dereference(transport: Transport, remote: Location, dereference: bool) -> None:
    remote.build({'target.txt': 'pointed at', 'link': Link('target.txt')})
    transport.copyfile(str(remote / 'link'), str(remote / 'copy'), dereference=dereference)
    assert remote.snapshot()['copy'] == ('pointed at' if dereference else Link('target.txt'))


def test_copy_onto_itself_raises_value_error(transport: Transport, remote: Location) -> None:
    remote.build({'f.txt': 'x'})
    with pytest.raises(ValueError):
        transport.copy(str(remote / 'f.txt'), str(remote / 'f.txt'))


@pytest.mark.parametrize('destination', ['same-transport', 'local-transport'])
@pytest.mark.parametrize('what', ['file', 'tree'])
def test_copy_from_remote_to_remote(
    transport: Transport, remote: Location, tmp_path: Path, destination: str, what: str
) -> None:
    """The source transport downloads, the destination transport uploads (here: the same one, or a local one)."""
    spec: dict[str, Entry] = {'f.txt': 'content'} if what == 'file' else {'tree/a.txt': 'a', 'tree/sub/b.txt': 'b'}
    (remote / 'from').build(spec)
    source = remote / 'from' / ('f.txt' if what == 'file' else 'tree')
    target_root = (
        remote / 'to' if destination == 'same-transport' else Location(DiskFiles(), tmp_path / 'other-machine')
    )
    target_root.mkdir()
    if destination == 'same-transport':
        transport.copy_from_remote_to_remote(transport, str(source), str(target_root))
    else:
        with LocalTransport(machine='localhost') as other:
            transport.copy_from_remote_to_remote(other, str(source), str(target_root))
    expected = {'f.txt': 'content'} if what == 'file' else {'tree': DIR, 'tree/a.txt': 'a', 'tree/sub': DIR}
    if what == 'tree':
        expected['tree/sub/b.txt'] = 'b'
    assert target_root.snapshot() == expected


# --- listing ----------------------------------------------------------------------------------------------------------


def test_listdir_lists_names(transport: Transport, remote: Location) -> None:
    """Plain names, hidden entries and links included, without ``.`` and ``..``."""
    remote.build({**SAMPLE_TREE, 'link': Link('a.txt'), 'dangling': Link('nowhere')})
    assert sorted(transport.listdir(str(remote))) == sorted(
        ['a.txt', 'b.dat', '.hidden', 'sub', 'empty', 'link', 'dangling']
    )


def test_listdir_of_empty_directory(transport: Transport, remote: Location) -> None:
    assert transport.listdir(str(remote)) == []


@pytest.mark.parametrize(
    ('pattern', 'expected'),
    [
        pytest.param('*.txt', ['a.txt', 'b.txt'], id='star'),
        pytest.param('[ab]*', ['a.txt', 'b.txt'], id='bracket'),
        pytest.param('s?b', ['sub'], id='question-mark'),
        pytest.param('.*', ['.hidden.txt'], id='hidden'),
        pytest.param('*', ['a.txt', 'b.txt', 'c.dat', 'sub', 'other', 'empty'], id='star-skips-hidden'),
        pytest.param('*.none', [], id='no-match'),
    ],
)
def test_listdir_pattern(transport: Transport, remote: Location, pattern: str, expected: list[str]) -> None:
    """``pattern`` filters the names like a shell glob inside the directory; the names stay relative."""
    remote.build(GLOB_TREE)
    assert sorted(transport.listdir(str(remote), pattern=pattern)) == sorted(expected)


@pytest.mark.parametrize('name', SPECIAL_NAMES)
def test_listdir_special_name(transport: Transport, remote: Location, name: str) -> None:
    remote.build({name: 'x', f'dir {name}': DIR})
    assert sorted(transport.listdir(str(remote))) == sorted([name, f'dir {name}'])


@pytest.mark.parametrize('path', ['missing', 'file.txt'])
def test_listdir_of_non_directory_raises(transport: Transport, remote: Location, path: str) -> None:
    remote.build({'file.txt': 'x'})
    with pytest.raises(OSError):
        transport.listdir(str(remote / path))


@pytest.mark.parametrize(
    ('name', 'isdir', 'file_type'),
    [
        pytest.param('a.txt', False, stat.S_IFREG, id='file'),
        pytest.param('sub', True, stat.S_IFDIR, id='dir'),
        pytest.param('link_file', False, stat.S_IFLNK, id='link-to-file'),
        pytest.param('link_dir', True, stat.S_IFLNK, id='link-to-dir'),
        pytest.param('dangling', False, stat.S_IFLNK, id='dangling-link'),
    ],
)
def test_listdir_withattributes_entry(
    transport: Transport, remote: Location, name: str, isdir: bool, file_type: int
) -> None:
    """Each entry has its name, ``isdir`` (following links) and the attributes of the entry itself (not followed)."""
    remote.build(
        {
            'a.txt': 'alpha',
            'sub/c.txt': 'c',
            'link_file': Link('a.txt'),
            'link_dir': Link('sub'),
            'dangling': Link('x'),
        },
    )
    entries = {entry['name']: entry for entry in transport.listdir_withattributes(str(remote))}
    assert sorted(entries) == ['a.txt', 'dangling', 'link_dir', 'link_file', 'sub']
    entry = entries[name]
    assert entry['isdir'] is isdir
    assert isinstance(entry['attributes'], FileAttribute)
    assert stat.S_IFMT(entry['attributes'].st_mode) == file_type
    assert entry['attributes'].st_size == (remote / name).lstat().size


def test_listdir_withattributes_pattern(
    transport: Transport, transport_kind: str, remote: Location, request: pytest.FixtureRequest
) -> None:
    """``pattern`` filters the entries as in ``listdir``, as the docstring promises."""
    if transport_kind == 'core.local':
        reason = 'aiida-core 2.9 BlockingTransport.listdir_withattributes ignores pattern (core.ssh_async honours it)'
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    remote.build(GLOB_TREE)
    names = [entry['name'] for entry in transport.listdir_withattributes(str(remote), pattern='*.txt')]
    assert sorted(names) == ['a.txt', 'b.txt']


# --- attributes and predicates ----------------------------------------------------------------------------------------


def test_get_attribute_of_file(transport: Transport, remote: Location) -> None:
    """All six FileAttribute fields, as ``lstat`` sees them (FirecREST has whole-second times)."""
    remote.build({'f.txt': 'twelve bytes'})
    expected = (remote / 'f.txt').lstat()
    attributes = transport.get_attribute(str(remote / 'f.txt'))
    assert isinstance(attributes, FileAttribute)
    assert set(attributes) == set(FileAttribute._valid_fields)
    assert attributes.st_size == 12
    assert attributes.st_mode == expected.mode
    assert (attributes.st_uid, attributes.st_gid) == (expected.uid, expected.gid)
    assert abs(attributes.st_mtime - expected.mtime) < 1
    assert abs(attributes.st_atime - expected.atime) < 1


@pytest.mark.parametrize(
    ('name', 'file_type'),
    [
        pytest.param('sub', stat.S_IFDIR, id='dir'),
        pytest.param('link', stat.S_IFLNK, id='link-not-followed'),
        pytest.param('dangling', stat.S_IFLNK, id='dangling-link'),
    ],
)
def test_get_attribute_file_type(transport: Transport, remote: Location, name: str, file_type: int) -> None:
    remote.build({'sub': DIR, 'link': Link('sub'), 'dangling': Link('nowhere')})
    attributes = transport.get_attribute(str(remote / name))
    assert stat.S_IFMT(attributes.st_mode) == file_type
    assert attributes.st_mode == (remote / name).lstat().mode


def test_get_attribute_of_missing_path_raises(transport: Transport, remote: Location) -> None:
    with pytest.raises(FileNotFoundError):
        transport.get_attribute(str(remote / 'missing'))


@pytest.mark.parametrize(
    ('path', 'expected'),
    [
        pytest.param('file.txt', (False, True, True), id='file'),
        pytest.param('dir', (True, False, True), id='dir'),
        pytest.param('link_file', (False, True, True), id='link-to-file'),
        pytest.param('link_dir', (True, False, True), id='link-to-dir'),
        pytest.param('dangling', (False, False, False), id='dangling-link'),
        pytest.param('missing', (False, False, False), id='missing'),
        pytest.param('file.txt/below', (False, False, False), id='below-a-file'),
        pytest.param('with space.txt', (False, True, True), id='special-name'),
    ],
)
def test_isdir_isfile_path_exists(transport: Transport, remote: Location, path: str, expected: tuple) -> None:
    """The three predicates follow links (like ``os.path``) and answer False rather than raise."""
    remote.build(
        {
            'file.txt': 'x',
            'dir': DIR,
            'link_file': Link('file.txt'),
            'link_dir': Link('dir'),
            'dangling': Link('nowhere'),
            'with space.txt': 'x',
        },
    )
    full = str(remote / path)
    assert (transport.isdir(full), transport.isfile(full), transport.path_exists(full)) == expected


@pytest.mark.parametrize('path_type', [str, Path, PurePosixPath])
def test_methods_accept_path_objects(transport: Transport, remote: Location, local: Location, path_type: type) -> None:
    """Every path argument is a ``TransportPath``: ``str``, ``Path`` or ``PurePosixPath``."""
    local.build({'f.txt': 'content'})
    transport.putfile(path_type(str(local / 'f.txt')), path_type(str(remote / 'f.txt')))
    transport.getfile(path_type(str(remote / 'f.txt')), path_type(str(local / 'back.txt')))
    assert transport.isfile(path_type(str(remote / 'f.txt')))
    assert transport.listdir(path_type(str(remote))) == ['f.txt']
    assert transport.get_attribute(path_type(str(remote / 'f.txt'))).st_size == 7
    assert (local / 'back.txt').read_text() == 'content'


# --- directories ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['a/b/c', *SPECIAL_NAMES])
def test_makedirs_creates_all_levels(transport: Transport, remote: Location, name: str) -> None:
    transport.makedirs(str(remote / 'top' / name))
    levels = [PurePosixPath(name), *PurePosixPath(name).parents[:-1]]
    assert (remote / 'top').snapshot() == {str(level): DIR for level in levels}


def test_makedirs_existing_raises(transport: Transport, remote: Location) -> None:
    remote.build({'a/b': DIR})
    with pytest.raises(FileExistsError):
        transport.makedirs(str(remote / 'a' / 'b'))


def test_makedirs_existing_with_ignore_existing_keeps_content(transport: Transport, remote: Location) -> None:
    remote.build({'a/b/f.txt': 'kept'})
    transport.makedirs(str(remote / 'a' / 'b'), ignore_existing=True)
    assert remote.snapshot() == {'a': DIR, 'a/b': DIR, 'a/b/f.txt': 'kept'}


def test_makedirs_onto_existing_file_raises_even_with_ignore_existing(
    transport: Transport, transport_kind: str, remote: Location, request: pytest.FixtureRequest
) -> None:
    if transport_kind == 'core.local':
        reason = 'aiida-core 2.9 LocalTransport.makedirs silently accepts an existing file as the leaf'
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    remote.build({'a/f': 'file'})
    with pytest.raises(FileExistsError):
        transport.makedirs(str(remote / 'a' / 'f'), ignore_existing=True)


def test_makedirs_below_a_file_raises(transport: Transport, remote: Location) -> None:
    remote.build({'f': 'file'})
    with pytest.raises(NotADirectoryError):
        transport.makedirs(str(remote / 'f' / 'sub'))


@pytest.mark.parametrize('name', ['plain', *SPECIAL_NAMES])
def test_mkdir_creates_directory(transport: Transport, remote: Location, name: str) -> None:
    transport.mkdir(str(remote / name))
    assert remote.snapshot() == {name: DIR}


@pytest.mark.parametrize('existing', [DIR, 'a file'], ids=['dir', 'file'])
def test_mkdir_existing_raises(transport: Transport, remote: Location, existing: Entry) -> None:
    remote.build({'x': existing})
    with pytest.raises(FileExistsError):
        transport.mkdir(str(remote / 'x'))


def test_mkdir_existing_with_ignore_existing_keeps_content(transport: Transport, remote: Location) -> None:
    remote.build({'x/f.txt': 'kept'})
    transport.mkdir(str(remote / 'x'), ignore_existing=True)
    assert remote.snapshot() == {'x': DIR, 'x/f.txt': 'kept'}


def test_mkdir_with_missing_parent_raises(transport: Transport, remote: Location) -> None:
    with pytest.raises(FileNotFoundError):
        transport.mkdir(str(remote / 'missing' / 'x'))
    assert remote.snapshot() == {}


def test_rmdir_removes_empty_directory(transport: Transport, remote: Location) -> None:
    remote.build({'empty': DIR, 'other': 'kept'})
    transport.rmdir(str(remote / 'empty'))
    assert remote.snapshot() == {'other': 'kept'}


@pytest.mark.parametrize(
    ('path', 'error'),
    [
        pytest.param('full', OSError, id='non-empty'),
        pytest.param('missing', FileNotFoundError, id='missing'),
        pytest.param('file.txt', NotADirectoryError, id='file'),
    ],
)
def test_rmdir_error(transport: Transport, remote: Location, path: str, error: type[Exception]) -> None:
    spec: dict[str, Entry] = {'full/f.txt': 'x', 'file.txt': 'x'}
    remote.build(spec)
    with pytest.raises(error):
        transport.rmdir(str(remote / path))
    assert remote.snapshot() == {**spec, 'full': DIR}


def test_rmtree_removes_tree(transport: Transport, remote: Location) -> None:
    remote.build({'tree': DIR, **{f'tree/{path}': entry for path, entry in SAMPLE_TREE.items()}, 'other': 'x'})
    transport.rmtree(str(remote / 'tree'))
    assert remote.snapshot() == {'other': 'x'}


def test_rmtree_does_not_follow_links(transport: Transport, remote: Location) -> None:
    """Links inside the tree are removed as links: what they point to survives."""
    remote.build({'keep/f.txt': 'kept', 'tree/link': Link('../keep'), 'tree/abs': Link(str(remote / 'keep'))})
    transport.rmtree(str(remote / 'tree'))
    assert remote.snapshot() == {'keep': DIR, 'keep/f.txt': 'kept'}


def test_rmtree_of_a_file_removes_it(transport: Transport, remote: Location) -> None:
    remote.build({'f.txt': 'x', 'other': 'y'})
    transport.rmtree(str(remote / 'f.txt'))
    assert remote.snapshot() == {'other': 'y'}


def test_rmtree_of_missing_path_does_nothing(transport: Transport, remote: Location) -> None:
    transport.rmtree(str(remote / 'missing'))
    assert remote.snapshot() == {}


@pytest.mark.parametrize('name', SPECIAL_NAMES)
def test_rmtree_special_name(
    transport: Transport, transport_kind: str, remote: Location, name: str, request: pytest.FixtureRequest
) -> None:
    if transport_kind == 'firecrest' and "'" in name:
        request.applymarker(pytest.mark.xfail(reason=UNREMOVABLE, raises=UnsupportedPathError, strict=True))
    remote.build({f'{name}/{name}': 'x', 'other': 'y'})
    transport.rmtree(str(remote / name))
    assert remote.snapshot() == {'other': 'y'}


# --- files ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('name', 'kept'),
    [
        pytest.param('f.txt', {'target.txt': 'x', 'link': Link('target.txt'), 'dangling': Link('nowhere')}, id='file'),
        pytest.param('link', {'target.txt': 'x', 'f.txt': 'y', 'dangling': Link('nowhere')}, id='link-not-target'),
        pytest.param('dangling', {'target.txt': 'x', 'f.txt': 'y', 'link': Link('target.txt')}, id='dangling-link'),
    ],
)
def test_remove(transport: Transport, remote: Location, name: str, kept: dict) -> None:
    remote.build({'target.txt': 'x', 'f.txt': 'y', 'link': Link('target.txt'), 'dangling': Link('nowhere')})
    transport.remove(str(remote / name))
    assert remote.snapshot() == kept


@pytest.mark.parametrize(
    ('path', 'error'),
    [
        pytest.param('dir', IsADirectoryError, id='directory'),
        pytest.param('missing', FileNotFoundError, id='missing'),
    ],
)
def test_remove_error(transport: Transport, remote: Location, path: str, error: type[Exception]) -> None:
    remote.build({'dir/f.txt': 'x'})
    with pytest.raises(error):
        transport.remove(str(remote / path))
    assert remote.snapshot() == {'dir': DIR, 'dir/f.txt': 'x'}


@pytest.mark.parametrize('name', SPECIAL_NAMES)
def test_remove_special_name(
    transport: Transport, transport_kind: str, remote: Location, name: str, request: pytest.FixtureRequest
) -> None:
    if transport_kind == 'firecrest' and "'" in name:
        request.applymarker(pytest.mark.xfail(reason=UNREMOVABLE, raises=UnsupportedPathError, strict=True))
    remote.build({name: 'x', 'other': 'y'})
    transport.remove(str(remote / name))
    assert remote.snapshot() == {'other': 'y'}


@pytest.mark.parametrize(
    ('old', 'new', 'expected'),
    [
        pytest.param('f.txt', 'g.txt', {'g.txt': 'content', 'd': DIR, 'd/inner': 'i'}, id='file'),
        pytest.param('d', 'e', {'f.txt': 'content', 'e': DIR, 'e/inner': 'i'}, id='directory'),
        pytest.param('f.txt', 'd/moved.txt', {'d': DIR, 'd/inner': 'i', 'd/moved.txt': 'content'}, id='move'),
        pytest.param(
            'f.txt', 'new \'ñame".txt', {'new \'ñame".txt': 'content', 'd': DIR, 'd/inner': 'i'}, id='special'
        ),
    ],
)
def test_rename(transport: Transport, remote: Location, old: str, new: str, expected: dict) -> None:
    remote.build({'f.txt': 'content', 'd/inner': 'i'})
    transport.rename(str(remote / old), str(remote / new))
    assert remote.snapshot() == expected


@pytest.mark.parametrize(('old', 'new'), [('missing', 'new'), ('f.txt', 'other.txt')], ids=['missing-source', 'exists'])
def test_rename_error(transport: Transport, remote: Location, old: str, new: str) -> None:
    """A missing source and an existing destination are both ``OSError``s; nothing changes."""
    spec: dict[str, Entry] = {'f.txt': 'content', 'other.txt': 'other'}
    remote.build(spec)
    with pytest.raises(OSError):
        transport.rename(str(remote / old), str(remote / new))
    assert remote.snapshot() == spec


@pytest.mark.parametrize(
    ('kind', 'mode'),
    [
        ('file', 0o600),
        ('file', 0o644),
        ('file', 0o755),
        ('file', 0o400),
        ('file', 0o000),
        ('file', 0o4755),
        ('dir', 0o700),
        ('dir', 0o755),
        ('dir', 0o500),
        ('dir', 0o1777),
    ],
)
def test_chmod(transport: Transport, remote: Location, kind: str, mode: int) -> None:
    """The mode set is the mode ``get_mode`` (and ``get_attribute``) reports."""
    remote.build({'x': DIR if kind == 'dir' else 'content'})
    transport.chmod(str(remote / 'x'), mode)
    assert stat.S_IMODE((remote / 'x').lstat().mode) == mode
    assert transport.get_mode(str(remote / 'x')) == mode


def test_chmod_missing_path_raises(transport: Transport, remote: Location) -> None:
    with pytest.raises(OSError):
        transport.chmod(str(remote / 'missing'), 0o644)


@pytest.mark.parametrize(
    ('path', 'expected'),
    [
        pytest.param('a/../b', 'b', id='dotdot'),
        pytest.param('a/./b', 'a/b', id='dot'),
        pytest.param('a//b/', 'a/b', id='slashes'),
        pytest.param('link/f.txt', 'a/f.txt', id='link-resolved'),
    ],
)
def test_normalize(transport: Transport, remote: Location, path: str, expected: str) -> None:
    remote.build({'a/f.txt': 'x', 'b': DIR, 'link': Link('a')})
    root = remote.realpath()
    assert transport.normalize(f'{root}/{path}') == f'{root}/{expected}'


def test_whoami(transport: Transport, remote: Location) -> None:
    """The user named is the one who owns what the transport's side creates (here, the fresh ``remote``)."""
    assert transport.whoami() == remote.owner()


def test_exec_command_wait(transport: Transport, transport_kind: str, remote: Location) -> None:
    if transport_kind == 'firecrest':
        # FirecREST v2 has no endpoint to run a command; `verdi computer test` reports NotImplementedError as skipped.
        with pytest.raises(NotImplementedError):
            transport.exec_command_wait('echo hello', workdir=str(remote))
        return
    assert transport.exec_command_wait('echo hello; pwd', workdir=str(remote)) == (0, f'hello\n{remote}\n', '')


# --- symlink ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('target', 'expected'),
    [
        pytest.param('f.txt', 'content', id='file'),
        pytest.param('d', DIR, id='dir'),
        pytest.param('missing', None, id='dangling'),
        pytest.param("it's ü.txt", 'special', id='special-name'),
    ],
)
def test_symlink(transport: Transport, remote: Location, target: str, expected: Entry | None) -> None:
    """The link points at exactly the source path given (here absolute); a missing source is allowed."""
    remote.build({'f.txt': 'content', 'd/inner': 'i', "it's ü.txt": 'special'})
    transport.symlink(str(remote / target), str(remote / 'link'))
    assert remote.snapshot()['link'] == Link(str(remote / target))
    if expected is None:
        assert not (remote / 'link').exists(follow_links=True)
    elif expected is DIR:
        assert (remote / 'link' / 'inner').read_text() == 'i'
    else:
        assert (remote / 'link').read_text() == expected


def test_symlink_with_glob_links_every_match_into_destination(transport: Transport, remote: Location) -> None:
    remote.build({**{f'src/{path}': entry for path, entry in GLOB_TREE.items()}, 'links': DIR})
    transport.symlink(str(remote / 'src' / '*.txt'), str(remote / 'links'))
    assert (remote / 'links').snapshot() == {
        'a.txt': Link(str(remote / 'src' / 'a.txt')),
        'b.txt': Link(str(remote / 'src' / 'b.txt')),
    }


def test_symlink_onto_existing_path_raises(transport: Transport, remote: Location) -> None:
    remote.build({'f.txt': 'content', 'existing': 'kept'})
    with pytest.raises(OSError):
        transport.symlink(str(remote / 'f.txt'), str(remote / 'existing'))
    assert remote.snapshot() == {'f.txt': 'content', 'existing': 'kept'}


def test_symlink_with_glob_in_destination_raises_value_error(transport: Transport, remote: Location) -> None:
    remote.build({'src/a.txt': 'a', 'links': DIR})
    with pytest.raises(ValueError):
        transport.symlink(str(remote / 'src' / '*.txt'), str(remote / 'links' / '*'))


# --- glob -------------------------------------------------------------------------------------------------------------


GLOB_CASES = [
    pytest.param('*.txt', {'a.txt', 'b.txt'}, id='star'),
    pytest.param('?.dat', {'c.dat'}, id='question-mark'),
    pytest.param('[ab].txt', {'a.txt', 'b.txt'}, id='bracket'),
    pytest.param('[!a].txt', {'b.txt'}, id='negated-bracket'),
    pytest.param('*/x.txt', {'sub/x.txt', 'other/x.txt'}, id='star-directory'),
    pytest.param('sub/*', {'sub/x.txt', 'sub/y.dat'}, id='in-subdirectory'),
    pytest.param('.*', {'.hidden.txt'}, id='hidden'),
    pytest.param('*', {'a.txt', 'b.txt', 'c.dat', 'sub', 'other', 'empty'}, id='star-skips-hidden'),
    pytest.param('a.txt', {'a.txt'}, id='literal-existing'),
    pytest.param('missing.txt', set(), id='literal-missing'),
    pytest.param('*.none', set(), id='no-match'),
    pytest.param('missing/*', set(), id='missing-directory'),
]


@pytest.mark.parametrize(('pattern', 'expected'), GLOB_CASES)
def test_glob(transport: Transport, remote: Location, pattern: str, expected: set[str]) -> None:
    """Absolute paths of the matches; ``*`` and ``?`` do not match a leading dot."""
    remote.build(GLOB_TREE)
    assert sorted(transport.glob(f'{remote}/{pattern}')) == sorted(f'{remote}/{path}' for path in expected)


@pytest.mark.parametrize(('pattern', 'expected'), GLOB_CASES[:3])
def test_iglob(transport: Transport, remote: Location, pattern: str, expected: set[str]) -> None:
    remote.build(GLOB_TREE)
    assert sorted(transport.iglob(f'{remote}/{pattern}')) == sorted(f'{remote}/{path}' for path in expected)


def test_glob_special_names(transport: Transport, remote: Location) -> None:
    names = [str(param.values[0]) for param in SPECIAL_NAMES]
    remote.build(dict.fromkeys(names, 'x'))
    assert sorted(transport.glob(f'{remote}/*.txt')) == sorted(f'{remote}/{name}' for name in names)


# --- compress and extract ---------------------------------------------------------------------------------------------


ARCHIVED: dict[str, Entry] = {
    'a.txt': 'alpha',
    'sub': DIR,
    'sub/b.txt': 'beta',
    'sub/empty': DIR,
    'link': Link('a.txt'),
}


def _archive_members(archive: Location, mode: str) -> dict[str, str]:
    """Map each member name of ``archive`` to its kind: ``'file'``, ``'dir'`` or ``'link'``."""
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode=mode) as tar:  # type: ignore[call-overload]
        return {
            member.name.rstrip('/'): 'link' if member.issym() else 'dir' if member.isdir() else 'file'
            for member in tar.getmembers()
        }


@pytest.mark.parametrize(('archive_format', 'tar_mode'), ARCHIVE_FORMATS)
def test_compress_extract_round_trip(
    transport: Transport, remote: Location, archive_format: str, tar_mode: str
) -> None:
    """The archive is of the requested format, relative to ``root_dir``, and extracts to the original tree."""
    (remote / 'data').build(ARCHIVED)
    archive = remote / f'archive.{archive_format}'
    transport.compress(archive_format, str(remote / 'data'), str(archive), str(remote))
    assert _archive_members(archive, tar_mode)['data/link'] == 'link'
    transport.extract(str(archive), str(remote / 'out'))
    assert (remote / 'out').snapshot() == {'data': DIR, **{f'data/{path}': entry for path, entry in ARCHIVED.items()}}


@pytest.mark.parametrize(('dereference', 'kind'), [(False, 'link'), (True, 'file')])
def test_compress_dereference(transport: Transport, remote: Location, dereference: bool, kind: str) -> None:
    (remote / 'data').build(ARCHIVED)
    archive = remote / 'archive.tar'
    transport.compress('tar', str(remote / 'data'), str(archive), str(remote), dereference=dereference)
    assert _archive_members(archive, 'r:')['data/link'] == kind


@pytest.mark.parametrize(
    ('sources', 'expected'),
    [
        pytest.param(['data/*.txt'], {'a.txt': 'a', 'c.txt': 'c'}, id='glob'),
        pytest.param(
            ['data/a.txt', 'data/sub'],
            {'a.txt': 'a', 'sub': DIR, 'sub/b.txt': 'b', 'sub/empty': DIR, 'sub/link': Link('b.txt')},
            id='list',
        ),
    ],
)
def test_compress_selected_sources(
    transport: Transport,
    remote: Location,
    sources: list[str],
    expected: dict,
    transport_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    """Only the selected sources are archived, named relative to ``root_dir``: ``strip_components=1`` drops ``data``."""
    xfail_local_archives_27(transport_kind, request)
    tree: dict[str, Entry] = {'a.txt': 'a', 'c.txt': 'c', 'b.dat': 'b', 'sub/b.txt': 'b', 'sub/empty': DIR}
    (remote / 'data').build({**tree, 'sub/link': Link('b.txt')})
    archive = remote / 'archive.tar.gz'
    transport.compress('tar.gz', [str(remote / source) for source in sources], str(archive), str(remote))
    transport.extract(str(archive), str(remote / 'out'), strip_components=1)
    assert (remote / 'out').snapshot() == expected


def test_compress_creates_missing_parent_of_destination(
    transport: Transport, remote: Location, transport_kind: str, request: pytest.FixtureRequest
) -> None:
    xfail_local_archives_27(transport_kind, request)
    (remote / 'data').build({'a.txt': 'a'})
    archive = remote / 'new' / 'dir' / 'archive.tar'
    transport.compress('tar', str(remote / 'data'), str(archive), str(remote))
    assert set(_archive_members(archive, 'r:')) == {'data', 'data/a.txt'}


@pytest.mark.parametrize(
    ('arguments', 'error'),
    [
        pytest.param({'format': 'zip'}, ValueError, id='unsupported-format'),
        pytest.param({'remotesources': 'missing'}, OSError, id='missing-source'),
        pytest.param({'remotesources': 'data/*.none'}, OSError, id='glob-without-match'),
        pytest.param({'remotedestination': 'data'}, OSError, id='destination-is-directory'),
        pytest.param({'remotedestination': 'existing.tar', 'overwrite': False}, OSError, id='no-overwrite'),
        pytest.param({'root_dir': 'data/a.txt'}, OSError, id='root-dir-not-directory'),
    ],
)
def test_compress_error(
    transport: Transport, remote: Location, arguments: dict[str, Any], error: type[Exception]
) -> None:
    remote.build({'data/a.txt': 'a', 'existing.tar': 'not an archive'})
    call: dict[str, Any] = {
        'format': 'tar',
        'remotesources': 'data',
        'remotedestination': 'archive.tar',
        'root_dir': '',
        'overwrite': True,
    }
    call.update(arguments)
    for key in ('remotesources', 'remotedestination', 'root_dir'):
        call[key] = str(remote / call[key]) if call[key] else str(remote)
    with pytest.raises(error):
        transport.compress(**call)
    assert remote.snapshot() == {'data': DIR, 'data/a.txt': 'a', 'existing.tar': 'not an archive'}


def test_extract_strip_components(
    transport: Transport, remote: Location, transport_kind: str, request: pytest.FixtureRequest
) -> None:
    xfail_local_archives_27(transport_kind, request)
    (remote / 'data').build(ARCHIVED)
    transport.compress('tar.gz', str(remote / 'data'), str(remote / 'archive.tar.gz'), str(remote))
    transport.extract(str(remote / 'archive.tar.gz'), str(remote / 'out'), strip_components=1)
    assert (remote / 'out').snapshot() == ARCHIVED


def test_extract_creates_missing_destination(transport: Transport, remote: Location) -> None:
    (remote / 'data').build({'a.txt': 'a'})
    transport.compress('tar', str(remote / 'data'), str(remote / 'archive.tar'), str(remote))
    transport.extract(str(remote / 'archive.tar'), str(remote / 'new' / 'nested'))
    assert (remote / 'new' / 'nested').snapshot() == {'data': DIR, 'data/a.txt': 'a'}


def test_extract_missing_archive_raises(transport: Transport, remote: Location) -> None:
    with pytest.raises(OSError):
        transport.extract(str(remote / 'missing.tar'), str(remote / 'out'))


def _tar_of(*members: tuple[str, bytes, str]) -> bytes:
    """A tar archive of ``(name, type, linkname or content)`` members, as bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, kind, text in members:
            member = tarfile.TarInfo(name)
            member.type = kind
            data = text.encode() if kind == tarfile.REGTYPE else b''
            member.linkname = '' if kind == tarfile.REGTYPE else text
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


REFUSED_ARCHIVES = {
    'member-with-dotdot': _tar_of(('ok.txt', tarfile.REGTYPE, 'ok'), ('../escape.txt', tarfile.REGTYPE, 'x')),
    'hard-link-to-no-member': _tar_of(('hard', tarfile.LNKTYPE, 'missing.txt')),
    'not-an-archive': b'<html>502 Bad Gateway</html>',
}


@pytest.mark.parametrize('name', sorted(REFUSED_ARCHIVES))
def test_extract_of_an_archive_tar_refuses_raises_os_error(transport: Transport, remote: Location, name: str) -> None:
    """An archive ``tar`` refuses (a member outside, a bad hard link, no archive) raises an ``OSError`` and writes
    nothing outside the destination."""
    (remote / 'archive.tar').write_bytes(REFUSED_ARCHIVES[name])
    with pytest.raises(OSError):
        transport.extract(str(remote / 'archive.tar'), str(remote / 'out'))
    assert set(remote.snapshot()) <= {'archive.tar', 'out', 'out/ok.txt'}


# --- concurrency ------------------------------------------------------------------------------------------------------


def test_many_coroutines_at_once(transport: Transport, local: Location, remote: Location) -> None:
    """The engine shares one transport between CalcJobs and awaits many of its coroutines at once."""
    count = 50
    for index in range(count):
        (local / f'up-{index}.txt').write_bytes(f'payload {index}'.encode())

    async def upload() -> list[Any]:
        return await asyncio.gather(
            *(transport.put_async(str(local / f'up-{i}.txt'), str(remote / f'file-{i}.txt')) for i in range(count))
        )

    async def download() -> list[Any]:
        return await asyncio.gather(
            *(transport.get_async(str(remote / f'file-{i}.txt'), str(local / f'down-{i}.txt')) for i in range(count))
        )

    run_coroutine(transport, upload)
    assert remote.snapshot() == {f'file-{i}.txt': f'payload {i}' for i in range(count)}
    run_coroutine(transport, download)
    assert {i: (local / f'down-{i}.txt').read_text() for i in range(count)} == {i: f'payload {i}' for i in range(count)}


# --- permissions ------------------------------------------------------------------------------------------------------


@NEEDS_PERMISSIONS
@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_unreadable_file_raises_permission_error(transfer: Transfer, family: str) -> None:
    transfer.source.build({'secret.txt': 'secret'})
    (transfer.source / 'secret.txt').chmod(0o000)
    with pytest.raises(PermissionError):
        transfer.call(family, transfer.source / 'secret.txt', transfer.destination / 'copy.txt')
    assert not (transfer.destination / 'copy.txt').exists()


@NEEDS_PERMISSIONS
@pytest.mark.parametrize('family', ['any', 'file'])
def test_transfer_into_read_only_directory_raises_permission_error(transfer: Transfer, family: str) -> None:
    transfer.source.build({'f.txt': 'content'})
    (transfer.destination / 'ro').mkdir(mode=0o500)
    with pytest.raises(PermissionError):
        transfer.call(family, transfer.source / 'f.txt', transfer.destination / 'ro' / 'f.txt')


@NEEDS_PERMISSIONS
def test_path_exists_is_false_where_one_may_not_look(transport: Transport, remote: Location) -> None:
    """As :func:`os.path.exists` (and ``core.local``): a path below a directory one may not search is not seen."""
    remote.build({'closed/f.txt': 'content'})
    (remote / 'closed').chmod(0o000)
    try:
        assert transport.path_exists(str(remote / 'closed' / 'f.txt')) is False
    finally:
        (remote / 'closed').chmod(0o700)


@NEEDS_PERMISSIONS
@pytest.mark.parametrize(
    'operation',
    [
        pytest.param(lambda t, ro: t.mkdir(str(ro / 'new')), id='mkdir'),
        pytest.param(lambda t, ro: t.makedirs(str(ro / 'new' / 'deeper')), id='makedirs'),
        pytest.param(lambda t, ro: t.remove(str(ro / 'f.txt')), id='remove'),
        pytest.param(lambda t, ro: t.rename(str(ro / 'f.txt'), str(ro / 'g.txt')), id='rename'),
    ],
)
def test_change_in_read_only_directory_raises_permission_error(
    transport: Transport, remote: Location, operation: Callable[[Transport, Location], Any]
) -> None:
    remote.build({'ro/f.txt': 'content'})
    (remote / 'ro').chmod(0o500)
    with pytest.raises(PermissionError):
        operation(transport, remote / 'ro')
    assert remote.snapshot() == {'ro': DIR, 'ro/f.txt': 'content'}
