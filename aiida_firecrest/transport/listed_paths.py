"""Working from listings of the server: glob patterns, links and canonical paths resolved with as few requests as
possible, and what a listing entry tells (its size, and the modes and times to give a local copy).

A listing (``ls``) gives the names, types and attributes of a whole directory in one request: nothing it told is asked
again with ``stat``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import stat
from pathlib import PurePosixPath
from typing import Any

from aiida.transports.transport import has_magic

from ..client.exceptions import AccessDeniedError, FirecrestApiError, FirecrestError, UnsafeArchiveError
from . import local_archives
from .backend import MISSING, FirecrestBackend, gather
from .file_attributes import attributes_of_entry

__all__ = (
    'check_listed_names',
    'entry_is_dir',
    'entry_size',
    'glob_entries',
    'links_to_directories',
    'matching',
    'preserve_all',
    'realpath',
)

OUTSIDE_FILE_SYSTEMS = 400
"""The status of the server's refusal of a path outside the file systems it exposes (``The provided path (...) does
not match any of the defined filesystem paths``): such a path is no error to :func:`realpath`, any other answer is."""

_MAX_LINKS = 40
"""Links followed while resolving a path before it counts as a cycle (as the kernel's ``ELOOP``)."""


def matching(entries: list[dict[str, Any]], pattern: str | None) -> list[dict[str, Any]]:
    """Filter listing entries by a glob ``pattern``, with :func:`glob.glob`'s rule for hidden names."""
    if not pattern:
        return entries
    hidden_too = pattern.startswith('.')
    return [
        entry
        for entry in entries
        if fnmatch.fnmatchcase(entry['name'], pattern) and (hidden_too or not entry['name'].startswith('.'))
    ]


async def glob_entries(backend: FirecrestBackend, pathname: str) -> list[tuple[str, dict[str, Any] | None]]:
    """The paths matching ``pathname`` with their listing entries (None for a directory matched by a pattern ending
    with ``/``): one ``ls`` per directory the pattern's last component is matched in."""
    dirname, basename = posixpath.split(pathname)
    if has_magic(dirname):
        candidates = await glob_entries(backend, dirname)
        flags = await gather(entry_is_dir(backend, path, entry) for path, entry in candidates)
        directories = [path for (path, _), is_dir in zip(candidates, flags, strict=True) if is_dir]
    else:
        directories = [dirname]
    listings = await gather(backend.list_or_empty(directory) for directory in directories)
    matches: list[tuple[str, dict[str, Any] | None]] = []
    for directory, (exists, entries) in zip(directories, listings, strict=True):
        if not basename:  # a pattern ending with '/' matches directories
            if exists:
                matches.append((directory + '/', None))
            continue
        if has_magic(basename):
            # as AiiDA's ``glob1``: hidden names only for a pattern starting with '.'
            found = matching(entries, basename)
        else:
            found = [entry for entry in entries if entry['name'] == basename]
        matches.extend((posixpath.join(directory, _entry_name(directory, entry)), entry) for entry in found)
    return matches


def _entry_name(directory: str, entry: dict[str, Any]) -> str:
    """The name of an entry of the listing of ``directory``, which a genuine ``ls -A`` never lists as ``.``, ``..``
    or with a ``/``: joined to a path, such a name would lead elsewhere (here and on the server).

    :raises UnsafeArchiveError: for such a name.
    """
    name = str(entry['name'])
    if name in ('', '.', '..') or '/' in name:
        raise UnsafeArchiveError(f'listed name {name!r} in {directory} is no entry of a directory')
    return name


async def entry_is_dir(backend: FirecrestBackend, path: str, entry: dict[str, Any] | None) -> bool:
    """Whether a listed entry is a directory, following a link (which costs a ``stat``)."""
    if entry is None or entry['type'] == 'd':
        return True
    if entry['type'] == 'l':
        mode = await backend.mode(path)
        return mode is not None and stat.S_ISDIR(mode)
    return False


async def links_to_directories(backend: FirecrestBackend, directory: str, links: list[str]) -> dict[str, bool]:
    """Which of the links in ``directory`` lead to directories: one dereferencing ``ls``, or one ``stat`` each if
    that fails (``ls -L`` fails on a broken link)."""
    try:
        followed = await backend.ls(directory, dereference=True)
        types = {entry['name']: entry['type'] for entry in followed}
        return {name: types.get(name) == 'd' for name in links}
    except FirecrestError:
        modes = await gather(backend.mode(posixpath.join(directory, name)) for name in links)
        return {name: mode is not None and stat.S_ISDIR(mode) for name, mode in zip(links, modes, strict=True)}


async def realpath(backend: FirecrestBackend, path: str, links_followed: int = 0) -> str:
    """The canonical form of the absolute ``path``, as :func:`os.path.realpath` (not strict: a missing part is kept as
    written): one ``stat`` per component, and an ``ls`` per link to read its target. Components outside the server's
    file systems are taken as plain directories, and components one may not look at are kept as written (as
    :func:`os.path.realpath` keeps those it cannot ``lstat``).

    :raises FirecrestError: with ``errno.ELOOP`` for a cycle of links; any other failure of a request (a bare 404, a
        500...) as it came: it tells nothing of the path.
    """
    parts = [part for part in path.split('/') if part and part != '.']
    resolved = '/'
    for index, part in enumerate(parts):
        if part == '..':
            resolved = posixpath.dirname(resolved)
            continue
        candidate = posixpath.join(resolved, part)
        try:
            mode = int((await backend.stat(candidate, dereference=False))['mode'])
        except MISSING:
            return posixpath.normpath(posixpath.join(candidate, *parts[index + 1 :]))
        except AccessDeniedError:
            mode = stat.S_IFDIR
        except FirecrestApiError as exc:
            if exc.status != OUTSIDE_FILE_SYSTEMS:
                raise
            mode = stat.S_IFDIR
        if not stat.S_ISLNK(mode):
            resolved = candidate
            continue
        if links_followed >= _MAX_LINKS:
            raise FirecrestError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = str((await backend.ls(candidate))[0]['linkTarget'])
        resolved = await realpath(backend, posixpath.join(resolved, target), links_followed + 1)
    return resolved


def entry_size(entry: dict[str, Any] | None) -> int | None:
    """The size of a listed regular file; None for anything else, or if the listing did not tell."""
    if entry is None or entry.get('type') != '-':
        return None
    try:
        return int(str(entry.get('size')))
    except ValueError:
        return None


def check_listed_names(root: str, entries: list[dict[str, Any]]) -> None:
    """Refuse a recursive listing of a tree to be fetched to ``root`` that would write outside it, before anything
    is written: a name that is absolute or has a ``..`` component (as an archive member), or a name below a listed
    link (``ls -R`` does not descend into links; writing below one would write where it points).

    :raises UnsafeArchiveError: naming the first such entry.
    """
    links = {str(entry['name']) for entry in entries if entry['type'] == 'l'}
    for entry in entries:
        name = str(entry['name'])
        local_archives.local_path_of(root, name)
        parents = PurePosixPath(name).parents
        through = next((str(parent) for parent in parents if str(parent) in links), None)
        if through is not None:
            raise UnsafeArchiveError(f'listed name {name!r} lies below the listed link {through!r}')


def preserve_all(root: str, entries: list[dict[str, Any]]) -> None:
    """Set the permissions and modification times of a fetched tree from its listing (deepest first).

    Only below ``root``, and never through a local link (``chmod`` follows links): a listing may say anything.

    :raises UnsafeArchiveError: for a listed name that is absolute or has a ``..`` component.
    """
    for entry in sorted(entries, key=lambda entry: -str(entry['name']).count('/')):
        if entry['type'] == 'l':
            continue
        attributes = attributes_of_entry(entry)
        path = local_archives.local_path_of(root, str(entry['name']))
        if os.path.lexists(path) and not os.path.islink(path):
            local_archives.set_mode_and_time(path, attributes['st_mode'], attributes['st_mtime'])
