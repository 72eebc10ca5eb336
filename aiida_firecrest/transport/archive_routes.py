"""The ways through archives: what FirecREST's commands and direct transfers cannot carry goes inside a ``tar`` archive.

FirecREST puts paths into shell commands without quoting them for the shell, HTML-escapes them in the scripts of its
transfer jobs, hangs on an empty direct upload and creates links only to absolute paths in its file systems (see
:mod:`~aiida_firecrest.transport.carried_names`). An archive carries any name, any content and any link, and the
server's ``compress`` and ``extract`` take only the path of the archive and of a directory. :class:`ArchiveRoutes`
makes those detours: a file, a link or a directory sent inside a local archive that the server extracts, a file or a
tree fetched inside an archive the server makes, a copy archived and extracted on the server, and the temporary
archives they need (in ``temp_directory``, else hidden beside their target).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import posixpath
import tempfile
import uuid
from typing import Any

from aiida.common.log import AIIDA_LOGGER

from ..client.exceptions import (
    FirecrestError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    UnsupportedPathError,
)
from . import local_archives
from .backend import FirecrestBackend, gather
from .carried_names import check_commands_carry, commands_carry, server_carries, shell_word_safe
from .listed_paths import entry_size
from .server_archives import single_file_pattern

__all__ = ('ArchiveRoutes',)

LOGGER = AIIDA_LOGGER.getChild('transport.FirecrestTransport')


class ArchiveRoutes:
    """The detours through archives of one transport; each method says its requests."""

    def __init__(self, backend: FirecrestBackend, temp_directory: str) -> None:
        """:param temp_directory: the directory for temporary archives on the server ('' for beside their target)."""
        self._backend = backend
        self._temp_directory = temp_directory

    async def remove(self, path: str) -> None:
        """Remove ``path`` and everything below it (one ``rm -R``); nothing happens if it does not exist.

        :raises UnsupportedPathError: if ``path`` holds a ``'``.
        """
        check_commands_carry('remove', path)
        try:
            await self._backend.rm(path)
        except PathNotFoundError:
            pass

    async def remove_leftover(self, path: str) -> None:
        """Remove what an operation leaves on the server (a temporary archive or directory, the destination of a
        failed tree transfer): a failure is logged, never raised, so that it neither turns a transfer that worked
        into a failure nor hides why one failed."""
        try:
            await self.remove(path)
        except OSError as exc:
            LOGGER.warning(f'could not remove {path} on the server (remove it by hand): {exc}')

    def temporary_path(self, beside: str, suffix: str) -> str:
        name = f'aiida-firecrest-{uuid.uuid4().hex}{suffix}'
        if self._temp_directory:
            return f'{self._temp_directory}/{name}'
        return posixpath.join(posixpath.dirname(posixpath.normpath(beside)), f'.{name}')

    def refuse_uncarried_root(self, path: str) -> None:
        """Refuse a tree whose own path FirecREST cannot carry (its archive is made or unpacked there by a command).

        :raises UnsupportedPathError: if so.
        """
        if not server_carries(path):
            raise UnsupportedPathError(
                f'FirecREST cannot carry the path {path!r} in its commands (it quotes no path for the shell and '
                'HTML-escapes them in transfer jobs), so no tree can travel there; rename it'
            )

    async def compress_into_temporary(
        self,
        source: str,
        target: str,
        dereference: bool,
        match_pattern: str | None = None,
        compression: str = 'gzip',
    ) -> None:
        """Archive ``source`` into ``target`` in the temporary directory, creating that directory on first use."""
        compress = functools.partial(
            self._backend.compress,
            source,
            target,
            dereference=dereference,
            compression=compression,
            match_pattern=match_pattern,
            path=source,
        )
        try:
            await compress()
        except PathNotFoundError:
            if not self._temp_directory or await self._backend.is_dir(self._temp_directory):
                raise
            await self._backend.mkdir(self._temp_directory, parents=True)
            await compress()

    async def extract(self, source: str, destination: str, compression: str) -> None:
        """Extract the remote archive ``source`` into the existing remote directory ``destination``: one request."""
        await self._backend.extract(source, destination, compression, path=source)

    async def extract_local_archive(self, local_archive: str, directory: str, *, beside: str) -> None:
        """Upload a local gzip archive to the temporary directory, extract it into the remote ``directory`` and
        remove it: three requests."""
        remote_archive = self.temporary_path(beside, '.tar.gz')
        await self._upload_temporary(local_archive, remote_archive)
        try:
            await self._backend.extract(remote_archive, directory, 'gzip', path=directory)
        finally:
            await self.remove_leftover(remote_archive)

    async def _upload_temporary(self, localpath: str, remotepath: str) -> None:
        """Upload to the temporary directory, creating it on first use."""
        try:
            await self._backend.upload(localpath, remotepath)
        except PathNotFoundError:
            await self._backend.mkdir(posixpath.dirname(remotepath), parents=True)
            await self._backend.upload(localpath, remotepath)

    async def make_directory(self, path: str, *, parents: bool, ignore_existing: bool) -> None:
        """Create a directory whose path holds a ``'``: the server's ``mkdir`` would create another one (the ``'``
        ends the quotes around the path), but an archive carries any name. The levels from the first one holding a
        ``'`` go into a local archive of empty directories, extracted by the server into the deepest level without
        one (created first with ``parents``); its listing tells whether the first level exists.

        :raises PathExistsError: if ``path`` exists and not ``ignore_existing``, or as a file.
        :raises PathNotFoundError: if the parent does not exist and not ``parents``.
        :raises PathNotADirectoryError: if a level exists as a file.
        :raises UnsupportedPathError: where existence cannot be told (see :meth:`makedirs_async`, :meth:`mkdir_async`).
        """
        parts = posixpath.normpath(path).strip('/').split('/')
        depth = next(index for index, part in enumerate(parts) if not commands_carry(part))
        base, levels = '/' + '/'.join(parts[:depth]), parts[depth:]
        if not parents and len(levels) > 1:
            check_commands_carry('look into', posixpath.dirname(posixpath.normpath(path)))
        if parents:
            await self._backend.mkdir(base, parents=True)
        first = await self._backend.entry(posixpath.join(base, levels[0]))
        if first is not None:
            first_is_dir = first['type'] == 'd' or (
                first['type'] == 'l' and await self._backend.is_dir(posixpath.join(base, levels[0]))
            )
            if len(levels) == 1:
                if ignore_existing and first_is_dir:
                    return
                raise PathExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            if not first_is_dir:
                raise PathNotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            if not ignore_existing:
                check_commands_carry('tell whether there is a directory in', posixpath.join(base, levels[0]))
        elif await self._backend.mode(base) is None:
            raise PathNotFoundError(errno.ENOENT, f'{posixpath.dirname(path)} does not exist', path)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            await asyncio.to_thread(local_archives.create_directories_archive, local_archive, '/'.join(levels))
            await self.extract_local_archive(local_archive, base, beside=posixpath.join(base, 'directory'))
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def put_file(self, localpath: str, remotepath: str) -> None:
        """Send a file inside a one-member archive that the server extracts into the remote directory: an archive
        carries any name and any content. A safely named archive is uploaded in the file's place and replaced by the
        extraction (two requests, and an upload onto a directory fails as a direct upload does); else it goes through
        the temporary directory (three requests, after a listing to refuse a directory in the way).

        :raises UnsupportedPathError: if FirecREST cannot carry the path of the remote directory.
        :raises PathIsADirectoryError: if ``remotepath`` is a directory.
        """
        directory, name = posixpath.split(remotepath)
        directory = directory or '/'
        self.refuse_uncarried_root(directory)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            await asyncio.to_thread(local_archives.create_file_archive, localpath, local_archive, name=name)
            if not server_carries(name):
                entry = await self._backend.entry(remotepath)
                if entry is not None and entry['type'] == 'd':
                    raise PathIsADirectoryError(errno.EISDIR, f'{remotepath} is a directory', remotepath)
                await self.extract_local_archive(local_archive, directory, beside=remotepath)
                return
            await self._backend.upload(local_archive, remotepath)
            try:
                await self.extract(remotepath, directory, 'gzip')
            except FirecrestError:
                await self.remove(remotepath)  # the archive, not the file: leave nothing half done
                raise
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def put_link(self, target: str, remotepath: str) -> None:
        """Create the remote link ``remotepath`` to ``target`` exactly (relative, absolute or dangling), replacing a
        file there: through a one-member archive, since FirecREST's ``symlink`` only takes absolute paths inside its
        file systems."""
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            name = posixpath.basename(remotepath)
            await asyncio.to_thread(local_archives.create_link_archive, local_archive, name=name, target=target)
            await self.extract_local_archive(local_archive, posixpath.dirname(remotepath) or '/', beside=remotepath)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def get_file(self, remotepath: str, localpath: str, size: int) -> None:
        """Fetch a file whose name FirecREST cannot carry: the server's ``compress`` selects it with a pattern in
        which every character it cannot carry matches anything, the archive (safely named) comes down and only the
        exact member is written to ``localpath``. Three requests.

        :raises UnsupportedPathError: if the directory's path cannot be given to the server's ``compress``.
        :raises PathNotFoundError: if the archive does not hold the file (it is not a regular file).
        """
        directory, name = posixpath.split(remotepath)
        if not (server_carries(directory) and shell_word_safe(directory)):
            raise UnsupportedPathError(
                f'FirecREST cannot carry the path {directory!r} in its commands (it quotes no path for the shell), so '
                f'{name!r} cannot be fetched from it; rename the directory'
            )
        remote_archive = self.temporary_path(remotepath, '.tar.gz')
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            try:
                await self.compress_into_temporary(
                    remotepath, remote_archive, dereference=True, match_pattern=single_file_pattern(name)
                )
                await self._backend.download(remote_archive, local_archive, local_archives.archive_size_bound([size]))
            finally:
                await self.remove_leftover(remote_archive)
            if not await asyncio.to_thread(local_archives.extract_member, local_archive, name, localpath):
                raise PathNotFoundError(errno.ENOENT, f'{remotepath} is not a regular file the server archives', name)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def archive_into(self, source: str, directory: str, dereference: bool) -> None:
        """Archive ``source`` on the server (``tar -C dirname basename``) and extract it into ``directory``: three
        requests (``compress``, ``extract``, removal of the temporary archive)."""
        remote_archive = self.temporary_path(posixpath.join(directory, 'archive'), '.tar')
        try:
            await self.compress_into_temporary(source, remote_archive, dereference, compression='none')
            await self._backend.extract(remote_archive, directory, 'none', path=directory)
        finally:
            await self.remove_leftover(remote_archive)

    async def compress_copies(
        self, root: str, relative: list[str], destination: str, compression: str, dereference: bool
    ) -> None:
        """Archive the paths ``relative`` to ``root`` under those names, as ``core.local`` does: they are copied (one
        ``cp`` job each) into a temporary directory, which is archived whole and removed.

        FirecREST's ``compress`` selects several sources only with a pattern, and then archives regular files alone
        (no links, no empty directories), always gzip-compressed, named after the parent of its source: not the
        archive asked for.

        :raises UnsupportedPathError: if a path cannot be given to a transfer job.
        """
        for name in relative:
            self.refuse_uncarried_root(posixpath.join(root, name))
        staging = self.temporary_path(destination, '')
        parents = sorted({posixpath.join(staging, posixpath.dirname(name)) for name in relative})
        await gather(self._backend.mkdir(parent, parents=True) for parent in parents)
        try:
            await gather(
                self._backend.cp(posixpath.join(root, name), posixpath.join(staging, name), dereference)
                for name in relative
            )
            tops = {name.split('/')[0] for name in relative}
            source = posixpath.join(staging, tops.pop()) if len(tops) == 1 else f'{staging}/.'
            await self._backend.compress(
                source, destination, dereference=False, compression=compression, path=destination
            )
        finally:
            await self.remove_leftover(staging)

    async def archive_size(self, entries: list[dict[str, Any]], dereference: bool, remote_archive: str) -> int:
        """The size to plan the download of the server's archive of a listed tree by: a bound from the listing (no
        request), or the archive's ``stat`` when links followed make the listing's sizes incomplete."""
        if not (dereference and any(entry['type'] == 'l' for entry in entries)):
            return local_archives.archive_size_bound([entry_size(entry) or 0 for entry in entries])
        return int((await self._backend.stat(remote_archive, dereference=True))['size'])
