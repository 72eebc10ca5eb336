"""How files and directory trees travel between here and the server: the strategy behind ``put`` and ``get``.

A file goes directly (or through the staging area, see :class:`~aiida_firecrest.transport.backend.FirecrestBackend`),
or, empty or named as FirecREST cannot carry, inside an archive (:class:`~aiida_firecrest.transport.archive_routes.
ArchiveRoutes`). A tree goes:

* *in place* into a directory this transport just created (:class:`~aiida_firecrest.transport.known_directories.
  FreshDirectories`): its archive is uploaded as the destination and extracted over itself, two requests;
* as one archive when it has more than ``archive_threshold`` entries, links to keep, empty files or names FirecREST
  cannot carry;
* file by file otherwise, concurrently, from one recursive listing and with no further ``stat``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import shutil
import stat
import tempfile
from typing import Any

from ..client.exceptions import (
    FirecrestError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    translate_errors,
)
from . import local_archives
from .archive_routes import ArchiveRoutes
from .backend import FirecrestBackend, gather
from .carried_names import server_carries
from .file_attributes import attributes_of_entry
from .known_directories import FreshDirectories
from .listed_paths import check_listed_names, preserve_all

__all__ = ('TreeTransfers',)


class TreeTransfers:
    """The transfers of files and trees of one transport; each method says its requests."""

    def __init__(
        self,
        backend: FirecrestBackend,
        routes: ArchiveRoutes,
        fresh: FreshDirectories,
        archive_threshold: int,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        """:param archive_threshold: a tree of more entries travels as one archive."""
        self._backend = backend
        self._routes = routes
        self._fresh = fresh
        self._archive_threshold = archive_threshold
        self.logger = logger

    async def put_file(self, localpath: str, remotepath: str, preserve: bool) -> None:
        """Send the local file ``localpath`` to ``remotepath``: uploaded directly (or staged), or, empty or named as
        FirecREST cannot carry, inside an archive; with ``preserve``, its permissions too (one more request)."""
        if os.path.getsize(localpath) and server_carries(remotepath):
            await self._backend.upload(localpath, remotepath)
        else:
            await self._routes.put_file(localpath, remotepath)
        if preserve:
            await self._backend.chmod(remotepath, stat.S_IMODE(os.stat(localpath).st_mode))

    async def put_tree(self, localpath: str, remotepath: str, dereference: bool, preserve: bool) -> None:
        """Send the local directory ``localpath`` to ``remotepath``, or into it if it exists: in place when the
        destination is known not to exist, else as one archive or file by file (see
        :meth:`~aiida_firecrest.transport.FirecrestTransport.puttree_async`)."""
        if self._fresh.absent(remotepath) and await self._put_in_place(localpath, remotepath, dereference):
            return
        destination, created = await self._tree_destination(localpath, remotepath)
        try:
            await self._put_tree_into(localpath, destination, created, dereference, preserve)
        except BaseException:
            if created:  # leave nothing behind, so that a retry does not copy into it (``tree/tree``)
                await asyncio.shield(self._routes.remove_leftover(destination))
            raise

    async def _put_tree_into(
        self, localpath: str, destination: str, created: bool, dereference: bool, preserve: bool
    ) -> None:
        directories, files, links = await asyncio.to_thread(local_archives.walk_tree, localpath, dereference)
        awkward = any(
            not server_carries(posixpath.join(destination, *relative.split(os.sep))) for relative in directories + files
        ) or any(os.path.getsize(os.path.join(localpath, relative)) == 0 for relative in files)
        if links or awkward or len(directories) + len(files) > self._archive_threshold:
            # links go in the archive too: FirecREST's ``symlink`` cannot recreate relative or dangling ones; so do
            # empty files and names FirecREST cannot carry
            await self._put_tree_archive(localpath, destination, created, dereference)
        else:
            await self._put_tree_files(localpath, destination, created, directories, files, preserve)

    async def get_tree(
        self, remotepath: str, localpath: str, dereference: bool, overwrite: bool, preserve: bool
    ) -> None:
        """Fetch the remote directory ``remotepath`` to ``localpath`` (created), or into it if it exists: as one
        archive or file by file (see :meth:`~aiida_firecrest.transport.FirecrestTransport.gettree_async`)."""
        entries = await self._backend.list_directory(remotepath, recursive=True)
        if os.path.exists(localpath) and not overwrite:
            raise PathExistsError(errno.EEXIST, "Can't overwrite existing files", localpath)
        if os.path.isfile(localpath):
            raise PathNotADirectoryError(errno.ENOTDIR, 'Cannot copy a directory into a file', localpath)
        if os.path.isdir(localpath):
            localpath = os.path.join(localpath, posixpath.basename(remotepath))
        check_listed_names(localpath, entries)
        created = not os.path.lexists(localpath)
        await asyncio.to_thread(os.makedirs, localpath, exist_ok=True)
        try:
            await self._get_tree_into(remotepath, localpath, entries, dereference, preserve)
        except BaseException:
            if created:  # leave nothing behind; what existed before stays as it was
                await asyncio.to_thread(shutil.rmtree, localpath, ignore_errors=True)
            raise

    async def _get_tree_into(
        self, remotepath: str, localpath: str, entries: list[dict[str, Any]], dereference: bool, preserve: bool
    ) -> None:
        uncarried = any(not server_carries(str(entry['name'])) for entry in entries)
        if len(entries) > self._archive_threshold or uncarried:
            await self._get_tree_archive(remotepath, localpath, dereference, entries)
            if not dereference:
                for entry in entries:
                    if entry['type'] == 'l':
                        target = local_archives.local_path_of(localpath, str(entry['name']))
                        await asyncio.to_thread(local_archives.make_link, str(entry['linkTarget']), target)
            if preserve:
                await asyncio.to_thread(preserve_all, localpath, entries)
        else:
            await self._get_tree_files(remotepath, localpath, entries, dereference, preserve)

    async def get_listed_file(
        self,
        remotepath: str,
        localpath: str,
        entry: dict[str, Any] | None,
        dereference: bool,
        overwrite: bool,
        preserve: bool,
    ) -> None:
        """Fetch the file ``remotepath`` whose listing entry is ``entry`` (None: unknown, as for a match of a pattern
        ending with ``/``); a ``stat`` only for a link followed, whose target's size the listing does not tell."""
        if os.path.lexists(localpath) and not overwrite:
            raise PathExistsError(errno.EEXIST, 'Destination already exists: not overwriting it', localpath)
        if entry is None or (entry['type'] == 'l' and dereference):
            answer = await self._backend.stat(remotepath, dereference=True)
            mode, size, mtime = int(answer['mode']), int(answer['size']), float(answer['mtime'])
        elif entry['type'] == 'l':
            target = entry.get('linkTarget') or (await self._backend.ls(remotepath))[0]['linkTarget']
            await asyncio.to_thread(local_archives.make_link, str(target), localpath)
            return
        else:
            attributes = attributes_of_entry(entry)
            mode, size, mtime = attributes['st_mode'], attributes['st_size'], attributes['st_mtime']
        if stat.S_ISDIR(mode):
            raise PathIsADirectoryError(errno.EISDIR, f'{remotepath} is a directory', remotepath)
        if server_carries(remotepath):
            await self._backend.download(remotepath, localpath, size)
        else:
            await self._routes.get_file(remotepath, localpath, size)
        if preserve:
            await asyncio.to_thread(local_archives.set_mode_and_time, localpath, mode, mtime)

    async def _put_in_place(self, localpath: str, remotepath: str, dereference: bool) -> bool:
        """Send a tree to a path known not to exist in two requests: upload its archive *as* that path, and extract
        it into the parent, where ``tar`` replaces the archive file by the directory of the same name (GNU tar removes
        a non-directory in the way of a directory; the archive stays open while it does). No ``mkdir``, no temporary
        file to remove.

        :return: False if the extraction failed (the archive is then removed and the caller takes the usual path).
        """
        destination = posixpath.normpath(remotepath)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            name = posixpath.basename(destination)
            await asyncio.to_thread(
                local_archives.create_archive, localpath, local_archive, arcname=name, dereference=dereference
            )
            await self._backend.upload(local_archive, destination)
        except PathIsADirectoryError:  # created behind this transport's back: take the usual path
            self._fresh.forget(posixpath.dirname(destination))
            return False
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)
        try:
            await self._routes.extract(destination, posixpath.dirname(destination), 'gzip')
        except FirecrestError as exc:
            self.logger.debug(f'extracting the archive in place of {destination} failed ({exc}); going the usual way')
            await self._routes.remove(destination)
            return False
        self._fresh.touched(destination)
        return True

    async def _tree_destination(self, localpath: str, remotepath: str) -> tuple[str, bool]:
        """Return where a tree goes (``remotepath``, or inside it if it is a directory) and whether that directory
        exists now (created here). One ``mkdir`` for a fresh destination."""
        try:
            await self._backend.mkdir(remotepath, parents=False)
            return posixpath.normpath(remotepath), True
        except PathNotFoundError:
            await self._backend.mkdir(remotepath, parents=True)
            return posixpath.normpath(remotepath), True
        except PathExistsError:
            if not await self._backend.is_dir(remotepath):
                raise PathNotADirectoryError(errno.ENOTDIR, 'Cannot copy a directory into a file', remotepath) from None
        # as ``core.local``: ``dir/`` (empty base name) goes into ``remotepath`` itself
        name = os.path.split(localpath)[1]
        return posixpath.normpath(posixpath.join(posixpath.normpath(remotepath), name)), False

    async def _put_tree_archive(self, localpath: str, destination: str, created: bool, dereference: bool) -> None:
        self._routes.refuse_uncarried_root(destination)
        # the archive holds the tree under its final name, extracted into an existing directory
        extract_into, arcname = (destination, '.') if created else (posixpath.dirname(destination), '')
        arcname = arcname or posixpath.basename(destination)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            await asyncio.to_thread(
                local_archives.create_archive, localpath, local_archive, arcname=arcname, dereference=dereference
            )
            await self._routes.extract_local_archive(local_archive, extract_into, beside=destination)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def _put_tree_files(
        self, localpath: str, destination: str, created: bool, directories: list[str], files: list[str], preserve: bool
    ) -> None:
        remote = {relative: posixpath.join(destination, *relative.split(os.sep)) for relative in directories}
        leaves = [path for path in directories if not any(other.startswith(path + os.sep) for other in directories)]
        needed = [remote[path] for path in leaves]
        if not created and not directories:
            needed = [destination]
        await gather(self._backend.mkdir(path, parents=True) for path in needed)

        def target(relative: str) -> str:
            return posixpath.join(destination, *relative.split(os.sep))

        await gather(self.put_file(os.path.join(localpath, relative), target(relative), preserve) for relative in files)

    async def _get_tree_archive(
        self, remotepath: str, localpath: str, dereference: bool, entries: list[dict[str, Any]]
    ) -> None:
        self._routes.refuse_uncarried_root(remotepath)
        remote_archive = self._routes.temporary_path(remotepath, '.tar.gz')
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            try:
                with translate_errors(remotepath):
                    await self._routes.compress_into_temporary(remotepath, remote_archive, dereference)
                await self._backend.download(
                    remote_archive, local_archive, await self._routes.archive_size(entries, dereference, remote_archive)
                )
            finally:
                await self._routes.remove_leftover(remote_archive)
            # the server archives the directory under its own name: strip it. Links are recreated from the listing
            # afterwards, so that no member can be written through one. Files reached through followed links come as
            # hard links (``tar --dereference``): they become files of their own, as ``shutil.copytree`` makes them.
            await asyncio.to_thread(
                local_archives.safe_extract,
                local_archive,
                localpath,
                strip_components=1,
                skip_symlinks=True,
                copy_hard_links=dereference,
            )
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def _get_tree_files(
        self, remotepath: str, localpath: str, entries: list[dict[str, Any]], dereference: bool, preserve: bool
    ) -> None:
        def local(entry: dict[str, Any]) -> str:
            return local_archives.local_path_of(localpath, str(entry['name']))

        directories = [entry for entry in entries if entry['type'] == 'd']
        for entry in directories:
            await asyncio.to_thread(os.makedirs, local(entry), exist_ok=True)
        links = [entry for entry in entries if entry['type'] == 'l']
        linked_dirs: set[str] = set()
        if links and dereference:
            flags = await gather(self._backend.is_dir(posixpath.join(remotepath, entry['name'])) for entry in links)
            linked_dirs = {entry['name'] for entry, is_dir in zip(links, flags, strict=True) if is_dir}
        downloads = [entry for entry in entries if entry['type'] == '-']
        if dereference:
            downloads += [entry for entry in links if entry['name'] not in linked_dirs]
        else:
            for entry in links:
                await asyncio.to_thread(local_archives.make_link, str(entry['linkTarget']), local(entry))
        await gather(
            self.get_listed_file(posixpath.join(remotepath, entry['name']), local(entry), entry, True, True, False)
            for entry in downloads
        )
        for name in sorted(linked_dirs):
            await self.get_tree(
                posixpath.join(remotepath, name),
                local_archives.local_path_of(localpath, name),
                dereference,
                True,
                preserve,
            )
        if preserve:
            await asyncio.to_thread(preserve_all, localpath, [entry for entry in entries if entry['type'] != 'l'])
