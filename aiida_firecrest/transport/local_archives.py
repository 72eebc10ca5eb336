"""The local side of transfers: walking trees, hashing, links, and tar archives with an extraction that stays inside
its target.

Large trees travel as one archive per direction instead of one request per file. The functions here block (disk I/O,
compression): call them through :func:`asyncio.to_thread`.

An archive received from the server is untrusted: :func:`safe_extract` refuses, before writing it, every member with
an absolute path, a ``..`` component, a path that would resolve outside the target (through a link extracted
earlier or already there), a symbolic or hard link whose target lies outside, a hard link to no regular file of the
archive before it, or a special file (device, FIFO). It uses tarfile's ``data`` filter where Python has it, plus its
own check, so both must agree that a member is safe. A refusal is an :class:`UnsafeArchiveError` naming the member
(an ``OSError``, as ``core.local``'s ``tar`` fails on such an archive), never tarfile's own errors.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..client.exceptions import BrokenArchiveError, PathNotFoundError, UnsafeArchiveError

__all__ = (
    'archive_size_bound',
    'create_archive',
    'create_directories_archive',
    'create_file_archive',
    'create_link_archive',
    'extract_member',
    'local_path_of',
    'make_link',
    'safe_extract',
    'set_mode_and_time',
    'sha256_of',
    'unlink_quietly',
    'walk_tree',
)


def create_archive(source: str | Path, archive: str | Path, *, arcname: str, dereference: bool) -> None:
    """Write a gzip-compressed tar archive of the directory ``source``, its members under ``arcname/``.

    :param dereference: archive what links point to instead of the links.
    """
    with tarfile.open(archive, 'w:gz', dereference=dereference, compresslevel=6) as tar:
        tar.add(str(source), arcname=arcname, recursive=True)


def create_file_archive(source: str | Path, archive: str | Path, *, name: str) -> None:
    """Write a gzip-compressed tar archive holding only the file ``source`` (what it links to), named ``name``.

    An archive carries any member name and any content, empty included, where FirecREST's direct paths cannot.
    """
    with tarfile.open(archive, 'w:gz', dereference=True) as tar:
        tar.add(str(source), arcname=name, recursive=False)


@contextmanager
def _reading(archive: str | Path) -> Iterator[tarfile.TarFile]:
    """Open the tar archive ``archive`` (any compression) for reading; what tarfile, gzip, bzip2 or lzma raise on a
    truncated or corrupt archive becomes :class:`BrokenArchiveError`."""
    try:
        with tarfile.open(archive, 'r:*') as tar:
            yield tar
    except (
        tarfile.ReadError,
        tarfile.CompressionError,
        tarfile.HeaderError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        raise BrokenArchiveError(f'the archive {os.path.basename(archive)} cannot be read: {exc}') from exc


def extract_member(archive: str | Path, name: str, target: str | Path) -> bool:
    """Write the regular file ``name`` (``./`` prefix or not) of the tar archive ``archive`` to ``target``.

    :return: whether the archive held it.
    :raises BrokenArchiveError: if the archive cannot be read.
    """
    wanted = name.removeprefix('./')
    with _reading(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.removeprefix('./') == wanted:
                data = tar.extractfile(member)
                if data is None:  # pragma: no cover - a regular file member always has data
                    return False
                with data, open(target, 'wb') as handle:
                    shutil.copyfileobj(data, handle)
                return True
    return False


def archive_size_bound(sizes: list[int]) -> int:
    """An upper bound of the size of a gzip-compressed tar archive of members of ``sizes`` bytes (0 for directories
    and links): a 512-byte header and padding per member, the 10 KiB records of ``tar``, and what ``gzip`` adds to
    incompressible data."""
    tar_size = sum(512 + -(-size // 512) * 512 for size in sizes) + 20480
    return tar_size + tar_size // 1000 + 1024


def create_link_archive(archive: str | Path, *, name: str, target: str) -> None:
    """Write a gzip-compressed tar archive holding only the symbolic link ``name`` to ``target`` (kept verbatim).

    FirecREST's ``symlink`` takes absolute paths inside its file systems only; extracting this archive on the server
    recreates any link, relative or dangling.
    """
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    member.mode = 0o777
    with tarfile.open(archive, 'w:gz') as tar:
        tar.addfile(member)


DIRECTORY_MODE = 0o755
"""The permissions of the directories of :func:`create_directories_archive` (those of ``mkdir`` under umask 022)."""


def create_directories_archive(archive: str | Path, path: str) -> None:
    """Write a gzip-compressed tar archive holding only the empty directories of the relative path ``path``, one
    member per level (``a``, ``a/b``...).

    The server's ``mkdir`` cannot carry a name holding a ``'``; extracting this archive creates any directory.
    """
    parts = PurePosixPath(path).parts
    with tarfile.open(archive, 'w:gz') as tar:
        for depth in range(1, len(parts) + 1):
            member = tarfile.TarInfo('/'.join(parts[:depth]))
            member.type = tarfile.DIRTYPE
            member.mode = DIRECTORY_MODE
            member.mtime = int(time.time())
            tar.addfile(member)


def _strip(name: str, components: int) -> str:
    parts = [part for part in PurePosixPath(name).parts if part != '.']
    return posixpath.join(*parts[components:]) if len(parts) > components else ''


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def local_path_of(root: str, name: str) -> str:
    """The local path of the listed relative ``name`` below ``root``, refused as an archive member would be.

    :raises UnsafeArchiveError: if ``name`` is absolute or has a ``..`` component.
    """
    if not name or name.startswith('/') or '..' in PurePosixPath(name).parts:
        raise UnsafeArchiveError(f'listed name {name!r} would be written outside the target directory')
    return os.path.join(root, *name.split('/'))


def _check(member: tarfile.TarInfo, target: str) -> None:
    """Raise :class:`UnsafeArchiveError` unless extracting ``member`` into ``target`` writes only inside it."""
    name = member.name
    if not name or name.startswith('/') or os.path.isabs(name):
        raise UnsafeArchiveError(f'archive member {name!r} has an absolute path')
    if '..' in PurePosixPath(name).parts:
        raise UnsafeArchiveError(f'archive member {name!r} has a ".." component')
    destination = os.path.realpath(os.path.join(target, name))
    if not _inside(destination, target):
        raise UnsafeArchiveError(f'archive member {name!r} would be written outside the target directory')
    if member.issym():
        if os.path.isabs(member.linkname):
            raise UnsafeArchiveError(f'archive link {name!r} points to the absolute path {member.linkname!r}')
        pointed = os.path.realpath(os.path.join(os.path.dirname(os.path.join(target, name)), member.linkname))
        if not _inside(pointed, target):
            raise UnsafeArchiveError(f'archive link {name!r} points outside the target directory')
    elif member.islnk():
        pointed = os.path.realpath(os.path.join(target, member.linkname))
        if os.path.isabs(member.linkname) or not _inside(pointed, target):
            raise UnsafeArchiveError(f'archive hard link {name!r} points outside the target directory')
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f'archive member {name!r} is a special file')


def _check_hard_links(members: list[tarfile.TarInfo]) -> None:
    """Raise :class:`UnsafeArchiveError` for a hard link to no regular file (or hard link) before it in ``members``.

    A hard link is written as a second name of that file: to a missing member, tarfile raises a ``KeyError`` and to a
    directory it copies the directory; ``tar`` fails on both.
    """
    files: set[str] = set()
    for member in members:
        name = posixpath.normpath(member.name)
        if member.islnk() and posixpath.normpath(member.linkname) not in files:
            raise UnsafeArchiveError(
                f'archive hard link {member.name!r} points to {member.linkname!r}, no file of the archive before it'
            )
        if member.isfile() or member.islnk():
            files.add(name)
        else:
            files.discard(name)


def safe_extract(
    archive: str | Path,
    target: str | Path,
    *,
    strip_components: int = 0,
    skip_symlinks: bool = False,
    copy_hard_links: bool = False,
) -> None:
    """Extract the tar archive ``archive`` (any compression) into the existing directory ``target``, safely.

    :param strip_components: drop this many leading components of every member name (``./`` not counted), as
        ``tar --strip-components``; members left with no name are skipped.
    :param skip_symlinks: extract no symbolic links at all (the caller recreates them once extraction is over, when
        nothing can be written through them any more).
    :param copy_hard_links: write a hard-link member as an independent copy of the file it links to (``tar
        --dereference`` stores a file reached through several links once, and the others as hard links to it).
    :raises UnsafeArchiveError: if a member is unsafe: every member is checked before any is written, so a refused
        archive leaves nothing extracted (each is checked again as it is written once a link was extracted before it).
    :raises BrokenArchiveError: if the archive cannot be read (the members before the damage may be written).
    """
    root = os.path.realpath(target)
    has_data_filter = hasattr(tarfile, 'data_filter')
    with _reading(archive) as tar:
        members = [
            (original, member)
            for original in tar.getmembers()
            if not (skip_symlinks and original.issym())
            for member in [_stripped(original, strip_components)]
            if member is not None
        ]
        for _, member in members:
            _check(member, root)
        _check_hard_links([member for _, member in members])
        links_written = False  # a link written may lead a later member elsewhere: from then on, each is checked again
        for original, member in members:
            if links_written:
                _check(member, root)
            links_written = links_written or member.issym()
            if copy_hard_links and original.islnk():
                _extract_copy(tar, original, os.path.join(root, member.name))
            elif has_data_filter:
                try:
                    tar.extract(member, root, set_attrs=True, filter='data')
                except tarfile.FilterError as exc:
                    raise UnsafeArchiveError(f'archive member {member.name!r} refused: {exc}') from exc
            else:  # pragma: no cover - Python without extraction filters; our own check stands alone
                tar.extract(member, root, set_attrs=True)


def _extract_copy(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
    """Write the content of the hard-link ``member`` to ``path`` as a file of its own, with its mode and time."""
    data = tar.extractfile(member)
    if data is None:  # pragma: no cover - a hard link to a regular file always has data
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with data, open(path, 'wb') as handle:
        shutil.copyfileobj(data, handle)
    set_mode_and_time(path, member.mode, member.mtime)


def _stripped(member: tarfile.TarInfo, strip_components: int) -> tarfile.TarInfo | None:
    """``member`` without its first ``strip_components`` components (None if nothing is left of its name)."""
    if not strip_components:
        return member
    name = _strip(member.name, strip_components)
    if not name:
        return None
    linkname = _strip(member.linkname, strip_components) if member.islnk() else member.linkname
    return _renamed(member, name, linkname)


def _renamed(member: tarfile.TarInfo, name: str, linkname: str) -> tarfile.TarInfo:
    """Return a copy of ``member`` with another name (and link name)."""
    if hasattr(member, 'replace'):
        return member.replace(name=name, linkname=linkname, deep=False)
    import copy  # pragma: no cover - Python without TarInfo.replace

    clone = copy.copy(member)  # pragma: no cover
    clone.name, clone.linkname = name, linkname  # pragma: no cover
    return clone  # pragma: no cover


def sha256_of(path: str) -> str:
    """Return the hexadecimal SHA-256 of a local file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def unlink_quietly(path: str) -> None:
    """Remove a local file if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def make_link(target: str, path: str) -> None:
    """Create (or replace) the local link ``path`` to ``target``."""
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def set_mode_and_time(path: str, mode: int, mtime: float) -> None:
    """Set the permissions and modification time of a local file."""
    os.chmod(path, stat.S_IMODE(mode))
    os.utime(path, (mtime, mtime))


def walk_tree(root: str, dereference: bool) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Return the directories, files and (unless ``dereference``) links below ``root``, relative to it.

    :raises PathNotFoundError: with ``dereference``, for a link that leads nowhere (as ``shutil.copytree``, which
        ``core.local`` uses, fails on it).
    """
    directories: list[str] = []
    files: list[str] = []
    links: list[tuple[str, str]] = []
    for current, dirnames, filenames in os.walk(root, followlinks=dereference):
        relative = os.path.relpath(current, root)
        for name in [*dirnames, *filenames]:
            path = os.path.join(current, name)
            rel = name if relative == '.' else os.path.join(relative, name)
            if not dereference and os.path.islink(path):
                links.append((rel, os.readlink(path)))
            elif os.path.isdir(path):
                directories.append(rel)
            elif os.path.isfile(path):
                files.append(rel)
            elif os.path.islink(path):
                raise PathNotFoundError(errno.ENOENT, 'a link to follow leads nowhere', path)
    return directories, files, links
