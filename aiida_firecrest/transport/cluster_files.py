"""The half of the transport contract that acts on the cluster alone: queries, listings, directories, removal,
renames, permissions, links, copies and archives on the server.

:class:`ClusterFiles` is the base of :class:`~aiida_firecrest.transport.FirecrestTransport`, which adds the connection
and the transfers between here and the cluster. Each method checks its arguments as ``core.local`` does and says the
requests it takes; the requests are those of :class:`~aiida_firecrest.transport.backend.FirecrestBackend`, and what
FirecREST's commands cannot carry goes through :class:`~aiida_firecrest.transport.archive_routes.ArchiveRoutes`.
Operations FirecREST runs as transfer jobs (``cp``, ``mv``) are billed to ``billing_account`` and take seconds at least.
"""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from aiida.transports.transport import AsyncTransport, TransportPath, has_magic

from ..client.exceptions import (
    AccessDeniedError,
    FirecrestError,
    FirecrestNotSupportedError,
    InvalidArgumentError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
)
from .archive_routes import ArchiveRoutes
from .backend import FirecrestBackend, gather
from .carried_names import check_commands_carry, commands_carry, jobs_carry
from .file_attributes import attributes_of_entry, attributes_of_stat
from .listed_paths import (
    glob_entries,
    links_to_directories,
    matching,
    realpath,
)
from .server_archives import COMPRESSION_OF_FORMAT, compression_of, move_stripped

__all__ = ('ClusterFiles',)


class ClusterFiles(AsyncTransport):
    """The operations of the ``firecrest`` transport on the cluster's files (abstract: see
    :class:`~aiida_firecrest.transport.FirecrestTransport`)."""

    _backend: FirecrestBackend
    _routes: ArchiveRoutes

    # --- path helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _remote(path: TransportPath) -> str:
        path = str(path)
        if not path.startswith('/'):
            raise InvalidArgumentError(f'the remote path {path!r} is not absolute (relative paths are not supported)')
        return path

    # --- queries --------------------------------------------------------------------------------------------------

    async def path_exists_async(self, path: TransportPath) -> bool:
        """Return whether ``path`` exists (following links, as :func:`os.path.exists`); one ``stat`` request. False
        where the user may not look (as :func:`os.path.exists` and ``core.local`` answer).

        :raises FirecrestError: if the server cannot answer (anything but 'no such file' or 'permission denied').
        """
        try:
            return await self._mode(path) is not None
        except AccessDeniedError:
            return False

    async def isdir_async(self, path: TransportPath) -> bool:
        """Return whether ``path`` is a directory (or a link to one); False if it does not exist. One request.

        :raises FirecrestError: if the server cannot answer.
        """
        mode = await self._mode(path)
        return mode is not None and stat.S_ISDIR(mode)

    async def isfile_async(self, path: TransportPath) -> bool:
        """Return whether ``path`` is a regular file (or a link to one); False if it does not exist. One request.

        :raises FirecrestError: if the server cannot answer.
        """
        mode = await self._mode(path)
        return mode is not None and stat.S_ISREG(mode)

    async def _mode(self, path: TransportPath) -> int | None:
        """Return the mode of ``path`` (following links), None if it does not exist or is empty; one request."""
        path = str(path)
        return await self._backend.mode(self._remote(path)) if path else None

    async def get_attribute_async(self, path: TransportPath) -> Any:
        """Return the :class:`~aiida.transports.util.FileAttribute` of ``path`` (of a link itself, as ``lstat``).

        :raises PathNotFoundError: if ``path`` does not exist.
        """
        path = self._remote(path)
        return attributes_of_stat(await self._backend.stat(path, dereference=False))

    async def listdir_async(self, path: TransportPath, pattern: str | None = None) -> list[str]:
        """Return the names in the directory ``path`` (``.`` and ``..`` excluded); one ``ls`` request.

        :param pattern: keep only the names matching this glob pattern (hidden names only if it starts with ``.``);
            a pattern with ``/`` is matched as :func:`glob.glob` would, relative to ``path``.
        :raises PathNotFoundError: if ``path`` does not exist.
        :raises PathNotADirectoryError: if it is not a directory.
        """
        path = self._remote(path)
        if pattern and '/' in pattern:
            prefix = path.rstrip('/') + '/'
            return [match[len(prefix) :] for match in await self.glob_async(prefix + pattern)]
        entries = await self._backend.list_directory(path)
        return [entry['name'] for entry in matching(entries, pattern)]

    async def listdir_withattributes_async(
        self, path: TransportPath, pattern: str | None = None
    ) -> list[dict[str, Any]]:
        """Return ``{'name', 'attributes', 'isdir'}`` of every entry of the directory ``path``, from one ``ls``.

        ``attributes`` are those of the entry itself (a link's own, as ``lstat``); ``isdir`` follows links, as
        :func:`os.path.isdir`: only a directory holding links costs a second ``ls`` (dereferencing), to know which
        links lead to directories. ``ls`` gives no access time: ``st_atime`` is the modification time.

        :param pattern: see :meth:`listdir_async`.
        :raises PathNotFoundError: if ``path`` does not exist.
        :raises PathNotADirectoryError: if it is not a directory.
        """
        path = self._remote(path)
        entries = matching(await self._backend.list_directory(path), pattern)
        link_is_dir: dict[str, bool] = {}
        links = [entry['name'] for entry in entries if entry['type'] == 'l']
        if links:
            link_is_dir = await links_to_directories(self._backend, path, links)
        return [
            {
                'name': entry['name'],
                'attributes': attributes_of_entry(entry),
                'isdir': entry['type'] == 'd' or link_is_dir.get(entry['name'], False),
            }
            for entry in entries
        ]

    async def glob_async(self, pathname: TransportPath) -> list[str]:
        """Return the paths matching the glob pattern ``pathname`` (hidden names only for a pattern starting with
        ``.``, as AiiDA's ``glob``).

        A pattern only in the last component costs one ``ls``; a path without pattern one ``stat``.

        :param pathname: an absolute path, with ``*``, ``?`` and ``[...]`` patterns in any component.
        """
        pathname = self._remote(pathname)
        if not has_magic(pathname):
            return [pathname] if await self.path_exists_async(pathname) else []
        return [path for path, _ in await glob_entries(self._backend, pathname)]

    def iglob(self, pathname: TransportPath) -> Iterator[str]:
        """Return an iterator of the paths matching ``pathname`` (see :meth:`glob_async`; the base class's ``iglob``
        would ask for every path separately)."""
        glob: Callable[[TransportPath], list[str]] = self.glob  # generated by AsyncTransport, unannotated
        return iter(glob(pathname))

    async def normalize_async(self, path: TransportPath) -> str:
        """Return the canonical form of ``path``, links resolved, as :func:`os.path.realpath` (not strict: a missing
        part is kept as written).

        FirecREST has no ``realpath``: this costs one ``stat`` per path component (and an ``ls`` per link, to read
        its target); components outside the server's file systems are taken as plain directories.

        :raises InvalidArgumentError: if ``path`` is not absolute.
        :raises FirecrestError: with ``errno.ELOOP`` for a cycle of links.
        """
        return await realpath(self._backend, self._remote(path))

    # --- directories and files on the server -------------------------------------------------------------------

    async def makedirs_async(self, path: TransportPath, ignore_existing: bool = False) -> None:
        """Create the directory ``path`` and its missing parents.

        One ``mkdir -p`` request with ``ignore_existing``; without it, one ``mkdir`` when the parent exists (three
        otherwise), since ``mkdir -p`` cannot tell that the directory was there.

        A path holding a ``'`` (which the server's ``mkdir`` cannot carry) is created by extracting an archive of its
        directories (see :meth:`.ArchiveRoutes.make_directory`).

        :raises PathExistsError: if ``path`` exists and not ``ignore_existing``, or it exists as a file.
        :raises UnsupportedPathError: if ``path`` holds a ``'`` below an existing directory whose name holds one, and
            not ``ignore_existing`` (FirecREST cannot look inside such a directory).
        """
        path = self._remote(path)
        if not commands_carry(path):
            await self._routes.make_directory(path, parents=True, ignore_existing=ignore_existing)
            return
        if ignore_existing:
            await self._backend.mkdir(path, parents=True)
            return
        try:
            await self._backend.mkdir(path, parents=False)
        except PathNotFoundError:
            await self._backend.mkdir(posixpath.dirname(posixpath.normpath(path)), parents=True)
            await self._backend.mkdir(path, parents=False)

    async def mkdir_async(self, path: TransportPath, ignore_existing: bool = False) -> None:
        """Create the directory ``path`` (its parent must exist); one request.

        :raises PathExistsError: if ``path`` exists (unless it is a directory and ``ignore_existing``).
        :raises PathNotFoundError: if the parent does not exist.
        :raises UnsupportedPathError: if the parent's path holds a ``'`` (FirecREST cannot look inside it).
        """
        path = self._remote(path)
        if not commands_carry(path):
            await self._routes.make_directory(path, parents=False, ignore_existing=ignore_existing)
            return
        try:
            await self._backend.mkdir(path, parents=False)
        except PathExistsError:
            if ignore_existing and await self.isdir_async(path):
                return
            raise

    async def rmdir_async(self, path: TransportPath) -> None:
        """Remove the empty directory ``path``: an ``ls`` to check it, then ``rm``.

        :raises PathNotFoundError: if ``path`` does not exist.
        :raises PathNotADirectoryError: if it is not a directory (a link to one neither, as :func:`os.rmdir`).
        :raises FirecrestError: with ``errno.ENOTEMPTY`` if it is not empty.
        :raises UnsupportedPathError: if ``path`` holds a ``'`` (see :meth:`remove_async`).
        """
        path = self._remote(path)
        check_commands_carry('remove', path)
        entries = await self._backend.ls(path)
        if len(entries) == 1 and str(entries[0]['name']).startswith('/') and entries[0]['type'] != 'd':
            raise PathNotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if [entry for entry in entries if entry['name'] not in ('.', '..')]:
            raise FirecrestError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), path)
        await self._backend.rm(path)

    async def rmtree_async(self, path: TransportPath) -> None:
        """Remove ``path`` and everything below it (``rm -R``); nothing happens if it does not exist. One request.

        :raises FirecrestError: if the removal fails.
        :raises UnsupportedPathError: if ``path`` holds a ``'`` (see :meth:`remove_async`).
        """
        path = self._remote(path)
        check_commands_carry('remove', path)
        try:
            await self._backend.rm(path)
        except PathNotFoundError:
            pass

    async def remove_async(self, path: TransportPath) -> None:
        """Remove the file (or link) ``path``: a ``stat`` to refuse directories, then ``rm``.

        A path holding a ``'`` is refused, with nothing sent: FirecREST's ``rm`` command would end its quotes there,
        and its ``rm`` job would get ``&#39;`` in its place (another file); nothing else of FirecREST removes files.

        :raises PathIsADirectoryError: if ``path`` is a directory.
        :raises PathNotFoundError: if it does not exist.
        :raises UnsupportedPathError: if ``path`` holds a ``'``.
        """
        path = self._remote(path)
        check_commands_carry('remove', path)
        if stat.S_ISDIR(int((await self._backend.stat(path, dereference=False))['mode'])):
            raise PathIsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        await self._backend.rm(path)

    async def rename_async(self, oldpath: TransportPath, newpath: TransportPath) -> None:
        """Rename ``oldpath`` to ``newpath``: two ``stat`` and a transfer job (``mv``, billed to the account).

        A path that the job's script would HTML-escape (``"&'<>``) cannot go to ``mv``: the entry is copied through an
        archive on the server (see :meth:`_copy_through_archive`; times and permissions are kept, not the inode) and
        the old one removed, which FirecREST cannot do for a ``oldpath`` holding a ``'``.

        :raises InvalidArgumentError: if a path is empty.
        :raises PathNotFoundError: if ``oldpath`` does not exist.
        :raises PathExistsError: if ``newpath`` exists.
        :raises UnsupportedPathError: if ``oldpath`` holds a ``'``, or a directory would be renamed to a path holding
            one (nothing is sent).
        """
        if not str(oldpath) or not str(newpath):
            raise InvalidArgumentError('oldpath and newpath must be non-empty paths')
        old, new = self._remote(oldpath), self._remote(newpath)
        by_job = jobs_carry(old) and jobs_carry(new)
        if not by_job:
            check_commands_carry('rename', old)
        old_mode, new_mode = await gather(
            [self._backend.mode(old, dereference=False), self._backend.mode(new, dereference=False)]
        )
        if old_mode is None:
            raise PathNotFoundError(errno.ENOENT, f'{old} does not exist', old)
        if new_mode is not None:
            raise PathExistsError(errno.EEXIST, f'Cannot rename {old}: destination exists', new)
        if by_job:
            await self._backend.mv(old, new)
            return
        await self._copy_through_archive(old, new, is_dir=stat.S_ISDIR(old_mode), dereference=False)
        await self._backend.rm(old)

    async def chmod_async(self, path: TransportPath, mode: int) -> None:
        """Change the permissions of ``path`` (of what it links to); one request.

        :param mode: the new permissions, e.g. ``0o755``.
        :raises PathNotFoundError: if ``path`` does not exist.
        """
        await self._backend.chmod(self._remote(path), mode)

    async def chown_async(self, path: TransportPath, uid: int, gid: int) -> None:
        """Change the owner and group of ``path``; one request. (``core.local`` does not implement ``chown``.)

        :raises PathNotFoundError: if ``path`` does not exist.
        :raises AccessDeniedError: if the user may not.
        """
        await self._backend.chown(self._remote(path), uid, gid)

    async def symlink_async(self, remotesource: TransportPath, remotedestination: TransportPath) -> None:
        """Create a link at ``remotedestination`` to ``remotesource``; with a pattern in the source, one link per match
        in the directory ``remotedestination``, named as the match.

        Each link costs a ``stat`` (``ln -s`` would silently put the link *inside* an existing directory, where
        :func:`os.symlink` refuses) and the ``symlink`` request.

        A path holding a ``'`` (which the server's ``ln`` command cannot carry) is linked by extracting a one-member
        archive holding the link, after a listing of its directory to refuse an existing path.

        :raises InvalidArgumentError: if the destination has a pattern.
        :raises PathExistsError: if a link's path exists.
        """
        source = posixpath.normpath(self._remote(remotesource))
        destination = posixpath.normpath(self._remote(remotedestination))
        if has_magic(source):
            if has_magic(destination):
                raise InvalidArgumentError('`remotedestination` cannot have patterns')
            matches = await self.glob_async(source)
            await gather(
                self._symlink(match, posixpath.join(destination, posixpath.basename(match))) for match in matches
            )
        else:
            await self._symlink(source, destination)

    async def _symlink(self, source: str, link: str) -> None:
        if commands_carry(source) and commands_carry(link):
            await self._backend.symlink(source, link)
            return
        if await self._backend.entry(link) is not None:
            raise PathExistsError(errno.EEXIST, os.strerror(errno.EEXIST), link)
        await self._routes.put_link(source, link)

    # --- copies on the server (transfer jobs) ---------------------------------------------------------------------

    async def copy_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        recursive: bool = True,
        preserve: bool = False,
    ) -> None:
        """Copy a file or a directory on the server (``cp -R``, a transfer job billed to the account); a directory
        onto an existing directory lands inside it. With a pattern, every match is copied into the directory
        ``remotedestination``.

        Where ``cp`` would not do (see :meth:`_copy`), the copy goes through an archive made and extracted by the
        server, or, for a single file FirecREST cannot name in its commands, through a local temporary copy.

        :param dereference: copy what links point to instead of the links.
        :param recursive: if False, refuse directories.
        :param preserve: ignored: FirecREST's ``cp`` keeps no attributes.
        :raises InvalidArgumentError: if a path is empty, the destination has a pattern or equals the source.
        :raises PathNotFoundError: if the source does not exist.
        :raises PathNotADirectoryError: if several matches go to something not a directory.
        :raises TransferFailedError: if the copy job fails.
        """
        if not str(remotesource) or not str(remotedestination):
            raise InvalidArgumentError('remotesource and remotedestination must be non-empty paths')
        source, destination = self._remote(remotesource), self._remote(remotedestination)
        if has_magic(destination):
            raise InvalidArgumentError('Pathname patterns are not allowed in the destination')
        if posixpath.normpath(source) == posixpath.normpath(destination):
            raise InvalidArgumentError('Cannot copy from itself to itself')
        if not has_magic(source):
            mode = await self._source_mode(source, dereference)
            if stat.S_ISDIR(mode) and not recursive:
                raise PathIsADirectoryError(errno.EISDIR, 'not copying a directory without recursive', source)
            await self._copy(source, destination, dereference, mode)
            return
        matches = await glob_entries(self._backend, source)
        if len(matches) > 1 and not await self.isdir_async(destination):
            raise PathNotADirectoryError(
                errno.ENOTDIR, "Can't copy more than one file in the same remotedestination file", destination
            )
        await gather(self._copy(path, destination, dereference, None) for path, _ in matches)

    async def _source_mode(self, source: str, dereference: bool) -> int:
        """The mode of the source of a copy (of what it links to, if ``dereference``).

        :raises PathNotFoundError: if it does not exist.
        """
        mode = await self._backend.mode(source, dereference=dereference)
        if mode is None:
            raise PathNotFoundError(errno.ENOENT, f'{source} does not exist', source)
        return mode

    async def _copy(self, source: str, destination: str, dereference: bool, mode: int | None) -> None:
        """Copy ``source`` (of mode ``mode``, None if not known yet) to ``destination``, or into it if a directory.

        ``cp`` (a transfer job) does it when its script carries both paths, except for a directory whose links are
        followed: ``cp -RL --preserve=all``, and ``tar --dereference`` as much, make the files reached through several
        links hard links of each other, so that tree comes here and goes back (``gettree`` and ``puttree``). Otherwise
        an archive made and extracted by the server (see :meth:`_copy_through_archive`).
        """
        by_job = jobs_carry(source) and jobs_carry(destination)
        if by_job and not dereference:
            await self._backend.cp(source, destination, dereference)
            return
        mode = await self._source_mode(source, dereference) if mode is None else mode
        if by_job and not stat.S_ISDIR(mode):
            await self._backend.cp(source, destination, dereference)
            return
        target = destination
        if await self.isdir_async(destination):
            target = posixpath.join(destination, posixpath.basename(posixpath.normpath(source)))
        if stat.S_ISDIR(mode) and dereference:
            await self._copy_through_here(source, target, is_dir=True, dereference=True)
        else:
            await self._copy_through_archive(source, target, is_dir=stat.S_ISDIR(mode), dereference=dereference)

    async def _copy_through_archive(self, source: str, target: str, *, is_dir: bool, dereference: bool) -> None:
        """Copy ``source`` to the path ``target`` without ``cp``: the server archives it (``compress``) into a
        temporary archive and extracts that into place; member names are never HTML-escaped, and links followed stay
        independent files. A directory's contents are archived as ``.`` and extracted into ``target``, created first;
        a file is archived under its own name, extracted into the directory of ``target``. A file whose name differs
        from that of ``target``, or that FirecREST's commands cannot name, goes through a local temporary copy
        (``getfile`` and ``putfile``, which carry any name).

        :raises UnsupportedPathError: for a directory whose path, or that of ``target``, holds a ``'``.
        """
        if is_dir:
            check_commands_carry('copy', source, target)
            await self._backend.mkdir(target, parents=False)
            await self._routes.archive_into(f'{posixpath.normpath(source)}/.', target, dereference)
            return
        directory, name = posixpath.split(target)
        if commands_carry(source) and commands_carry(directory) and posixpath.basename(source) == name:
            await self._routes.archive_into(source, directory or '/', dereference)
            return
        await self._copy_through_here(source, target, is_dir=False, dereference=dereference)

    async def _copy_through_here(self, source: str, target: str, *, is_dir: bool, dereference: bool) -> None:
        """Copy ``source`` to the new path ``target`` through a local temporary copy (get, then put)."""
        scratch = await asyncio.to_thread(tempfile.mkdtemp, prefix='aiida-firecrest-')
        try:
            local_copy = os.path.join(scratch, 'copy')
            if is_dir:
                await self.gettree_async(source, local_copy, dereference=dereference)
                await self.puttree_async(local_copy, target, dereference=dereference)
            else:
                await self.getfile_async(source, local_copy, dereference=dereference)
                await self.putfile_async(local_copy, target, dereference=dereference)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def copyfile_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        preserve: bool = False,
    ) -> None:
        """Copy a file on the server (a transfer job); see :meth:`copy_async`.

        :raises PathIsADirectoryError: if the source is a directory.
        :raises PathNotFoundError: if it does not exist.
        """
        source, destination = self._remote(remotesource), self._remote(remotedestination)
        mode = await self._source_mode(source, dereference)
        if stat.S_ISDIR(mode):
            raise PathIsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), source)
        await self._copy(source, destination, dereference, mode)

    async def copytree_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        preserve: bool = False,
    ) -> None:
        """Copy a directory on the server (a transfer job); onto an existing directory it lands inside it.

        :raises PathNotADirectoryError: if the source is not a directory.
        :raises PathNotFoundError: if it does not exist.
        """
        source, destination = self._remote(remotesource), self._remote(remotedestination)
        mode = await self._source_mode(source, True)
        if not stat.S_ISDIR(mode):
            raise PathNotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), source)
        await self._copy(source, destination, dereference, mode)

    # --- archives on the server -----------------------------------------------------------------------------------

    async def compress_async(
        self,
        format: str,
        remotesources: TransportPath | list[TransportPath],
        remotedestination: TransportPath,
        root_dir: TransportPath,
        overwrite: bool = True,
        dereference: bool = False,
    ) -> None:
        """Archive remote files and directories (glob patterns allowed) into ``remotedestination`` on the server,
        with paths relative to ``root_dir``, with FirecREST's ``compress`` (a transfer job if it takes too long).

        A single source directly in ``root_dir`` is archived whole, exactly as ``tar -C root_dir name`` would (one
        request). Several sources, or deeper ones, are copied into a temporary directory first (one ``cp`` job each,
        billed to the account), which is archived whole: FirecREST's own selection of sources by a pattern would
        archive their regular files only, always gzip-compressed, under other names.

        :param format: ``tar``, ``tar.gz``, ``tar.bz2`` or ``tar.xz``.
        :raises InvalidArgumentError: if the format is unknown or a source is outside ``root_dir``.
        :raises PathNotFoundError: if a source does not exist, or a pattern matches nothing.
        :raises PathNotADirectoryError: if ``root_dir`` is not a directory.
        :raises PathIsADirectoryError: if ``remotedestination`` is a directory.
        :raises PathExistsError: if ``remotedestination`` exists and not ``overwrite``.
        """
        if format not in COMPRESSION_OF_FORMAT:
            raise InvalidArgumentError(f'Unsupported compression format: {format}')
        root = posixpath.normpath(self._remote(root_dir))
        destination = self._remote(remotedestination)
        root_mode, destination_mode = await gather([self._backend.mode(root), self._backend.mode(destination)])
        if root_mode is None or not stat.S_ISDIR(root_mode):
            raise PathNotADirectoryError(
                errno.ENOTDIR, 'The relative root does not exist, or is not a directory.', root
            )
        if destination_mode is not None and stat.S_ISDIR(destination_mode):
            raise PathIsADirectoryError(errno.EISDIR, 'The remote destination is a directory', destination)
        if destination_mode is not None and not overwrite:
            raise PathExistsError(errno.EEXIST, 'The remote destination already exists.', destination)
        sources = remotesources if isinstance(remotesources, list) else [remotesources]
        found = await gather(self._compress_sources(self._remote(source)) for source in sources)
        relative = []
        for path in (path for paths in found for path in paths):
            name = posixpath.relpath(posixpath.normpath(path), root)
            if name == '..' or name.startswith('../'):
                raise InvalidArgumentError(f'{path} is not inside the root directory {root}')
            relative.append(name)
        await self.makedirs_async(posixpath.dirname(posixpath.normpath(destination)), ignore_existing=True)
        compression = COMPRESSION_OF_FORMAT[format]
        if len(relative) == 1 and '/' not in relative[0]:
            # ``tar -C root name``; for the root itself ``tar -C root .``, as ``core.local`` names the members
            source = posixpath.join(root, relative[0]) if relative[0] != '.' else f'{root}/.'
            await self._backend.compress(
                source, destination, dereference=dereference, compression=compression, path=destination
            )
        else:
            await self._routes.compress_copies(root, relative, destination, compression, dereference)

    async def _compress_sources(self, source: str) -> list[str]:
        if has_magic(source):
            matches = await self.glob_async(source)
            if not matches:
                raise PathNotFoundError(errno.ENOENT, 'Pattern matched no remote file or folder', source)
            return matches
        if not await self.path_exists_async(source):
            raise PathNotFoundError(errno.ENOENT, 'The remote path does not exist', source)
        return [source]

    async def extract_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        overwrite: bool = True,
        strip_components: int = 0,
    ) -> None:
        """Extract a remote archive into the remote directory ``remotedestination`` (created), with FirecREST's
        ``extract`` (a transfer job if it takes too long).

        FirecREST's ``extract`` cannot strip components: with ``strip_components``, the archive is extracted into a
        temporary directory beside the destination, and what lies at that depth is moved into place (one ``mv`` job
        when the destination is new or empty and everything comes from one directory, one per entry otherwise;
        entries already in the destination are replaced). A leading ``./`` of the member names does not count.

        :param overwrite: only True is supported.
        :param strip_components: leading path components to drop.
        :raises FirecrestNotSupportedError: if not ``overwrite``.
        :raises PathNotFoundError: if the archive does not exist.
        """
        if not overwrite:
            raise FirecrestNotSupportedError('The overwrite=False is not implemented yet')
        source, destination = self._remote(remotesource), posixpath.normpath(self._remote(remotedestination))
        if not await self.path_exists_async(source):
            raise PathNotFoundError(errno.ENOENT, 'The remote archive does not exist', source)
        compression = await compression_of(self._backend, source)
        if not strip_components:
            await self.makedirs_async(destination, ignore_existing=True)
            await self._routes.extract(source, destination, compression)
            return
        temporary = posixpath.join(posixpath.dirname(destination), f'.aiida-firecrest-extract-{uuid.uuid4().hex}')
        await self.makedirs_async(temporary, ignore_existing=True)
        try:
            await self._routes.extract(source, temporary, compression)
            await move_stripped(self._backend, temporary, destination, strip_components)
        finally:
            await self.rmtree_async(temporary)
