"""The AiiDA transport plugin ``firecrest``: files on an HPC cluster through the FirecREST v2 REST API.

Every method is asynchronous (``*_async``; the :class:`~aiida.transports.transport.AsyncTransport` base generates the
blocking twins) and behaves as ``core.local`` does for the same call. The design goal is few requests, because
FirecREST deployments throttle clients (CSCS: 10 per second, 120 per minute) and every request is a round trip plus an
SSH command on the cluster:

* one ``ls`` gives the names *and* attributes of a directory: nothing a listing told is asked again with ``stat``;
* existence and type checks are one ``stat``; ``makedirs`` is one ``mkdir -p``;
* a small file goes up in one upload request and comes down in one download request; the direct-transfer limit of the
  server (``/status/systems``) is asked only for a file of 1 MiB or more, or after a 413, and cached for the process;
* above the limit, files go through the S3 staging area of FirecREST and are checked with SHA-256 afterwards;
* a tree of more than ``archive_threshold`` entries travels as one archive (``tar`` here and the server's
  ``extract``, or the server's ``compress`` and a safe extraction here); smaller trees go file by file, concurrently.

Operations FirecREST runs as transfer jobs (``cp``, ``mv``, and the staged transfers) are billed to
``billing_account`` and take seconds at least. FirecREST offers no shell, so ``exec_command_wait_async`` raises
:class:`~aiida_firecrest.client.exceptions.FirecrestNotSupportedError` (a ``NotImplementedError``).

This module holds the contract: what each call means and which operations it takes. The operations themselves (one
request each, or one direct or staged file transfer) are those of
:class:`~aiida_firecrest.transport.backend.FirecrestBackend`;
:mod:`~aiida_firecrest.transport.listed_paths` resolves patterns and links from listings,
:mod:`~aiida_firecrest.transport.server_archives` covers the server's ``compress`` and ``extract``, and
:mod:`~aiida_firecrest.transport.options` describes the options.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import glob
import os
import posixpath
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from aiida.common.exceptions import InvalidOperation
from aiida.transports.transport import AsyncTransport, Transport, TransportPath, has_magic

from ..client.exceptions import (
    FirecrestConfigurationError,
    FirecrestError,
    FirecrestNotSupportedError,
    InvalidArgumentError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    UnsupportedPathError,
    translate_errors,
)
from ..client.firecrest_client import FirecrestClient, attributes_of_entry, attributes_of_stat
from ..client.request_budget import DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_SECOND
from ..migration import check_not_legacy
from . import local_archives
from .backend import (
    FirecrestBackend,
    check_commands_carry,
    commands_carry,
    gather,
    jobs_carry,
    server_carries,
    shell_word_safe,
)
from .known_directories import FreshDirectories
from .listed_paths import (
    entry_is_dir,
    entry_size,
    glob_entries,
    links_to_directories,
    matching,
    preserve_all,
    realpath,
)
from .options import AUTH_OPTIONS, DEFAULT_ARCHIVE_THRESHOLD, DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_CONCURRENCY
from .server_archives import COMPRESSION_OF_FORMAT, compression_of, move_stripped, single_file_pattern

__all__ = ('FirecrestTransport',)


class FirecrestTransport(AsyncTransport):
    """Files on an HPC cluster through the FirecREST v2 REST API (e.g. CSCS Alps), with OIDC client credentials.

    Opening the transport makes no request: it reads the client secret and prepares an HTTP client. Tokens, the
    request budget and the facts about the server (its direct-transfer limit, the user name) are shared by all
    transports of the process, so the many transports the engine opens cost nothing more than one.

    ``safe_interval`` defaults to 1 s, not AiiDA's 15 s: the engine waits that long before every open, to protect
    servers that limit *connections*; opening this transport connects nowhere, and FirecREST's limits are on
    *requests*, which the client-side budget (``requests_per_second``, ``requests_per_minute``) already paces for the
    whole process. A short interval still lets the engine gather the transport tasks of many CalcJobs into one open.
    """

    _DEFAULT_SAFE_OPEN_INTERVAL = 1.0

    _valid_auth_options = AUTH_OPTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Store the options; no I/O and no request (see :meth:`open_async`).

        :raises FirecrestConfigurationError: if a required option is missing or an option has an invalid value.
        """
        check_not_legacy(kwargs)  # a computer configured by aiida-firecrest 1.0.0: name the command that migrates it
        super().__init__(*args, **kwargs)
        url = self._option(kwargs, 'url').rstrip('/')
        token_uri = self._option(kwargs, 'token_uri')
        client_id = self._option(kwargs, 'client_id')
        client_secret = self._option(kwargs, 'client_secret')
        system = self._option(kwargs, 'compute_resource')
        self._temp_directory = str(kwargs.get('temp_directory') or '').rstrip('/')
        billing_account = str(kwargs.get('billing_account') or '') or None
        try:
            max_direct_size = int(kwargs.get('max_direct_size') or 0)
            self._archive_threshold = int(kwargs.get('archive_threshold', DEFAULT_ARCHIVE_THRESHOLD))
            max_concurrency = max(1, int(kwargs.get('max_concurrency') or DEFAULT_MAX_CONCURRENCY))
            requests_per_second = float(kwargs.get('requests_per_second', DEFAULT_REQUESTS_PER_SECOND))
            requests_per_minute = float(kwargs.get('requests_per_minute', DEFAULT_REQUESTS_PER_MINUTE))
            http_timeout = float(kwargs.get('http_timeout') or DEFAULT_HTTP_TIMEOUT)
        except (TypeError, ValueError) as exc:
            raise FirecrestConfigurationError(f'invalid option of the firecrest transport: {exc}') from exc
        if self._temp_directory and not self._temp_directory.startswith('/'):
            raise FirecrestConfigurationError(f'temp_directory {self._temp_directory!r} is not an absolute path')
        self._fresh = FreshDirectories()
        self._backend = FirecrestBackend(
            url=url,
            token_uri=token_uri,
            client_id=client_id,
            client_secret=client_secret,
            system=system,
            billing_account=billing_account,
            max_direct_size=max_direct_size,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            requests_per_minute=requests_per_minute,
            http_timeout=http_timeout,
            fresh=self._fresh,
        )

    @staticmethod
    def _option(kwargs: dict[str, Any], name: str) -> str:
        value = kwargs.get(name)
        if not value or not str(value).strip():
            raise FirecrestConfigurationError(
                f'the firecrest transport needs the option {name!r}: run `verdi computer configure firecrest`'
            )
        return str(value).strip()

    def __str__(self) -> str:
        return f'firecrest [{"OPEN" if self._is_open else "CLOSED"}] {self.compute_resource} at {self.url}'

    # --- what other parts of the plugin (the scheduler) use -----------------------------------------------------

    @property
    def client(self) -> FirecrestClient:
        """The pyfirecrest client of the open transport.

        :raises InvalidOperation: if the transport is not open.
        """
        return self._backend.client

    @property
    def compute_resource(self) -> str:
        """The FirecREST name of the system."""
        return self._backend.system

    @property
    def billing_account(self) -> str | None:
        """The account billed for transfer jobs, None for the user's default."""
        return self._backend.billing_account

    @property
    def url(self) -> str:
        """The FirecREST URL."""
        return self._backend.url

    # --- open and close ----------------------------------------------------------------------------------------

    async def open_async(self) -> FirecrestTransport:
        """Open the transport: read the client secret and prepare the HTTP client; no request to any server.

        :raises InvalidOperation: if the transport is already open.
        :raises FirecrestConfigurationError: if the client secret cannot be read or its file is not private.
        """
        if self._is_open:
            raise InvalidOperation('Cannot open the transport twice')
        await self._backend.open()
        self._is_open = True
        return self

    async def close_async(self) -> None:
        """Close the transport and its HTTP connections.

        :raises InvalidOperation: if the transport is already closed.
        """
        if not self._is_open:
            raise InvalidOperation('Cannot close the transport: it is already closed')
        self._is_open = False
        self._fresh.clear()
        await self._backend.close()

    # --- path helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _remote(path: TransportPath) -> str:
        path = str(path)
        if not path.startswith('/'):
            raise InvalidArgumentError(f'the remote path {path!r} is not absolute (relative paths are not supported)')
        return path

    @staticmethod
    def _local(path: TransportPath) -> str:
        path = str(path)
        if not os.path.isabs(path):
            raise InvalidArgumentError(f'the local path {path!r} is not absolute')
        return path

    def _temporary_remote_path(self, beside: str, suffix: str) -> str:
        name = f'aiida-firecrest-{uuid.uuid4().hex}{suffix}'
        if self._temp_directory:
            return f'{self._temp_directory}/{name}'
        return posixpath.join(posixpath.dirname(posixpath.normpath(beside)), f'.{name}')

    # --- identity -------------------------------------------------------------------------------------------------

    async def whoami_async(self) -> str:
        """Return the user name on the cluster.

        Taken from the ``preferred_username`` claim of the access token when the token is a JWT carrying it (the claim
        FirecREST maps to the cluster user; no FirecREST request), else from ``/status/{system}/userinfo``, asked once
        per process.

        :raises FirecrestAuthenticationError: if the credentials are refused.
        """
        return await self._backend.username()

    # --- queries --------------------------------------------------------------------------------------------------

    async def path_exists_async(self, path: TransportPath) -> bool:
        """Return whether ``path`` exists (following links, as :func:`os.path.exists`); one ``stat`` request.

        :raises FirecrestError: if the server cannot answer (anything but 'no such file').
        """
        return await self._mode(path) is not None

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
        return iter(self.glob(pathname))

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
        directories (see :meth:`_mkdir_through_archive`).

        :raises PathExistsError: if ``path`` exists and not ``ignore_existing``, or it exists as a file.
        :raises UnsupportedPathError: if ``path`` holds a ``'`` below an existing directory whose name holds one, and
            not ``ignore_existing`` (FirecREST cannot look inside such a directory).
        """
        path = self._remote(path)
        if not commands_carry(path):
            await self._mkdir_through_archive(path, parents=True, ignore_existing=ignore_existing)
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
            await self._mkdir_through_archive(path, parents=False, ignore_existing=ignore_existing)
            return
        try:
            await self._backend.mkdir(path, parents=False)
        except PathExistsError:
            if ignore_existing and await self.isdir_async(path):
                return
            raise

    async def _mkdir_through_archive(self, path: str, *, parents: bool, ignore_existing: bool) -> None:
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
                first['type'] == 'l' and await self.isdir_async(posixpath.join(base, levels[0]))
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
            await self._extract_local_archive(local_archive, base, beside=posixpath.join(base, 'directory'))
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

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
        await self._put_link(source, link)

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
            await self._archive_on_server_into(f'{posixpath.normpath(source)}/.', target, dereference)
            return
        directory, name = posixpath.split(target)
        if commands_carry(source) and commands_carry(directory) and posixpath.basename(source) == name:
            await self._archive_on_server_into(source, directory or '/', dereference)
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

    async def _archive_on_server_into(self, source: str, directory: str, dereference: bool) -> None:
        """Archive ``source`` on the server (``tar -C dirname basename``) and extract it into ``directory``: three
        requests (``compress``, ``extract``, removal of the temporary archive)."""
        remote_archive = self._temporary_remote_path(posixpath.join(directory, 'archive'), '.tar')
        try:
            await self._compress_into_temporary(source, remote_archive, dereference, compression='none')
            await self._backend.extract(remote_archive, directory, 'none', path=directory)
        finally:
            await self.rmtree_async(remote_archive)

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

    async def copy_from_remote_to_remote_async(
        self,
        transportdestination: Transport,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        **kwargs: Any,
    ) -> None:
        """Copy from this computer to another one through a local sandbox (``get`` here, ``put`` there).

        :param kwargs: ``dereference`` for the ``get``; ``overwrite`` and ``ignore_nonexisting`` for the ``put``.
        """
        from aiida.common.folders import SandboxFolder

        dereference = kwargs.pop('dereference', True)
        put_options = {
            'dereference': True,
            'overwrite': kwargs.pop('overwrite', True),
            'ignore_nonexisting': kwargs.pop('ignore_nonexisting', False),
        }
        kwargs.pop('callback', None)
        if kwargs:
            self.logger.error(f'Unknown parameters passed to copy_from_remote_to_remote: {sorted(kwargs)}')
        with SandboxFolder() as sandbox:
            await self.get_async(remotesource, str(sandbox.abspath), dereference=dereference, overwrite=True)
            for name in sandbox.get_content_list():
                source = os.path.join(sandbox.abspath, name)
                if isinstance(transportdestination, AsyncTransport):
                    await transportdestination.put_async(source, remotedestination, **put_options)
                else:
                    transportdestination.put(source, remotedestination, **put_options)

    # --- put ------------------------------------------------------------------------------------------------------

    async def put_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        ignore_nonexisting: bool = False,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Send a local file or directory (or the matches of a glob pattern) to the server.

        A file onto an existing directory lands inside it; so does a directory (``cp -r``). A single file costs one
        request (plus a ``stat`` without ``overwrite``).

        :param localpath: an absolute local path, possibly with glob patterns.
        :param remotepath: an absolute remote path.
        :param dereference: send what local links point to (else recreate the links).
        :param overwrite: replace existing remote files; if False, an existing destination is an error.
        :param ignore_nonexisting: do nothing if ``localpath`` does not exist.
        :param preserve: also set the remote permissions to the local ones (FirecREST cannot set times).
        :raises InvalidArgumentError: if a path is not absolute or the destination has a pattern.
        :raises PathNotFoundError: if ``localpath`` does not exist (and not ``ignore_nonexisting``), or several matches
            go to a missing directory.
        :raises PathNotADirectoryError: if several matches go to a file.
        """
        localpath, remotepath = self._local(localpath), self._remote(remotepath)
        if has_magic(localpath):
            if has_magic(remotepath):
                raise InvalidArgumentError('Pathname patterns are not allowed in the destination')
            matches = glob.glob(localpath)
            mode = await self._backend.mode(remotepath)
            remote_is_dir = mode is not None and stat.S_ISDIR(mode)
            if len(matches) > 1 and mode is None:
                raise PathNotFoundError(errno.ENOENT, 'Remote directory does not exist', remotepath)
            if len(matches) > 1 and not remote_is_dir:
                raise PathNotADirectoryError(errno.ENOTDIR, 'Remote destination is not a directory', remotepath)
            files = [match for match in matches if os.path.isfile(match)]
            await gather(
                self.putfile_async(
                    match,
                    posixpath.join(remotepath, os.path.basename(match)) if remote_is_dir else remotepath,
                    dereference,
                    overwrite,
                    preserve,
                )
                for match in files
            )
            for match in matches:
                if match not in files:
                    await self.puttree_async(match, remotepath, dereference, overwrite, preserve)
        elif os.path.isdir(localpath):
            await self.puttree_async(localpath, remotepath, dereference, overwrite, preserve)
        elif os.path.isfile(localpath):
            await self._put_file_or_into(localpath, remotepath, dereference, overwrite, preserve)
        elif not ignore_nonexisting:
            raise PathNotFoundError(errno.ENOENT, 'The local path does not exist', localpath)

    async def _put_file_or_into(
        self, localpath: str, remotepath: str, dereference: bool, overwrite: bool, preserve: bool
    ) -> None:
        """Put a file at ``remotepath``, or inside it if it is a directory (learnt from the upload's answer)."""
        if not overwrite:
            if await self.isdir_async(remotepath):
                remotepath = posixpath.join(remotepath, os.path.basename(localpath))
            await self.putfile_async(localpath, remotepath, dereference, overwrite, preserve)
            return
        try:
            await self.putfile_async(localpath, remotepath, dereference, overwrite, preserve)
        except PathIsADirectoryError:
            inside = posixpath.join(remotepath, os.path.basename(localpath))
            await self.putfile_async(localpath, inside, dereference, overwrite, preserve)

    async def putfile_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Send a local file to the remote path ``remotepath``; one request below the direct-transfer limit.

        An empty file (FirecREST's direct upload of no content hangs until the command timeout) or one whose name
        FirecREST cannot carry (see :func:`~aiida_firecrest.transport.backend.server_carries`) goes inside an archive,
        extracted by the server: two requests when the name is safe (the archive is uploaded in the file's place), three
        otherwise (uploaded to the temporary directory and removed after).

        :param dereference: if False and ``localpath`` is a link, create a remote link with the same target.
        :param overwrite: if False, an existing remote path is an error (checked with a ``stat``).
        :param preserve: also set the remote permissions to the local ones (one more request).
        :raises InvalidArgumentError: if a path is not absolute.
        :raises PathNotFoundError: if ``localpath`` does not exist, or the remote directory does not.
        :raises PathExistsError: if ``remotepath`` exists and not ``overwrite``.
        :raises PathIsADirectoryError: if ``remotepath`` is a directory.
        :raises UnsupportedPathError: if FirecREST cannot carry the path of the remote directory.
        :raises ChecksumMismatchError: if a staged transfer corrupted the file.
        """
        localpath, remotepath = self._local(localpath), self._remote(remotepath)
        if not os.path.lexists(localpath):
            raise PathNotFoundError(errno.ENOENT, 'The local file does not exist', localpath)
        if not overwrite and await self.path_exists_async(remotepath):
            raise PathExistsError(errno.EEXIST, 'Destination already exists: not overwriting it', remotepath)
        if not dereference and os.path.islink(localpath):
            await self._put_link(os.readlink(localpath), remotepath)
            return
        if os.path.isdir(localpath):
            raise PathIsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), localpath)
        if os.path.getsize(localpath) and server_carries(remotepath):
            await self._backend.upload(localpath, remotepath)
        else:
            await self._put_through_archive(localpath, remotepath)
        if preserve:
            await self.chmod_async(remotepath, stat.S_IMODE(os.stat(localpath).st_mode))

    async def _put_through_archive(self, localpath: str, remotepath: str) -> None:
        """Send a file inside a one-member archive that the server extracts into the remote directory: an archive
        carries any name and any content. A safely named archive is uploaded in the file's place and replaced by the
        extraction (two requests, and an upload onto a directory fails as a direct upload does); else it goes through
        the temporary directory (three requests, after a listing to refuse a directory in the way).

        :raises UnsupportedPathError: if FirecREST cannot carry the path of the remote directory.
        :raises PathIsADirectoryError: if ``remotepath`` is a directory.
        """
        directory, name = posixpath.split(remotepath)
        directory = directory or '/'
        self._refuse_uncarried_root(directory)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            await asyncio.to_thread(local_archives.create_file_archive, localpath, local_archive, name=name)
            if not server_carries(name):
                entry = await self._backend.entry(remotepath)
                if entry is not None and entry['type'] == 'd':
                    raise PathIsADirectoryError(errno.EISDIR, f'{remotepath} is a directory', remotepath)
                await self._extract_local_archive(local_archive, directory, beside=remotepath)
                return
            await self._backend.upload(local_archive, remotepath)
            try:
                await self._extract(remotepath, directory, 'gzip')
            except FirecrestError:
                await self.rmtree_async(remotepath)  # the archive, not the file: leave nothing half done
                raise
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def _put_link(self, target: str, remotepath: str) -> None:
        """Create the remote link ``remotepath`` to ``target`` exactly (relative, absolute or dangling), replacing a
        file there: through a one-member archive, since FirecREST's ``symlink`` only takes absolute paths inside its
        file systems."""
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            name = posixpath.basename(remotepath)
            await asyncio.to_thread(local_archives.create_link_archive, local_archive, name=name, target=target)
            await self._extract_local_archive(local_archive, posixpath.dirname(remotepath) or '/', beside=remotepath)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def _extract_local_archive(self, local_archive: str, directory: str, *, beside: str) -> None:
        """Upload a local gzip archive to the temporary directory, extract it into the remote ``directory`` and
        remove it: three requests."""
        remote_archive = self._temporary_remote_path(beside, '.tar.gz')
        await self._upload_temporary(local_archive, remote_archive)
        try:
            await self._backend.extract(remote_archive, directory, 'gzip', path=directory)
        finally:
            await self._backend.rm(remote_archive)

    async def puttree_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Send a local directory to ``remotepath`` (created with its parents), or into it if it exists (``cp -r``).

        A destination known not to exist (in a directory this transport just created, as the engine's CalcJob folder)
        costs two requests whatever the tree: its archive is uploaded in its place and extracted. Otherwise a tree of
        more than ``archive_threshold`` entries (or with links to keep) goes as one archive: upload, ``extract`` on the
        server and removal of the archive; a smaller one file by file, concurrently. A destination's ``mkdir`` tells
        whether it existed, so no check precedes it.

        :param dereference: send what local links point to (else recreate the links).
        :param overwrite: if False, an existing ``remotepath`` is an error; if True, existing files are replaced.
        :param preserve: keep the permissions (the archive path also keeps modification times).
        :raises InvalidArgumentError: if a path is not absolute or ``localpath`` is not a directory.
        :raises PathNotFoundError: if ``localpath`` does not exist.
        :raises PathExistsError: if ``remotepath`` exists and not ``overwrite``.
        :raises PathNotADirectoryError: if ``remotepath`` is a file.
        :raises UnsupportedPathError: if FirecREST cannot carry ``remotepath``.
        """
        localpath, remotepath = self._local(localpath), self._remote(remotepath)
        if not os.path.exists(localpath):
            raise PathNotFoundError(errno.ENOENT, 'The local path does not exist', localpath)
        if not os.path.isdir(localpath):
            raise InvalidArgumentError(f'Input localpath is not a folder: {localpath}')
        if not overwrite and await self.path_exists_async(remotepath):
            raise PathExistsError(errno.EEXIST, "Can't overwrite existing files", remotepath)
        self._refuse_uncarried_root(remotepath)
        if self._fresh.absent(remotepath) and await self._puttree_in_place(localpath, remotepath, dereference):
            return
        destination, created = await self._tree_destination(localpath, remotepath)
        directories, files, links = await asyncio.to_thread(local_archives.walk_tree, localpath, dereference)
        awkward = any(
            not server_carries(posixpath.join(destination, *relative.split(os.sep))) for relative in directories + files
        ) or any(os.path.getsize(os.path.join(localpath, relative)) == 0 for relative in files)
        if links or awkward or len(directories) + len(files) > self._archive_threshold:
            # links go in the archive too: FirecREST's ``symlink`` cannot recreate relative or dangling ones; so do
            # empty files and names FirecREST cannot carry
            await self._puttree_archive(localpath, destination, created, dereference)
        else:
            await self._puttree_files(localpath, destination, created, directories, files, preserve)

    async def _puttree_in_place(self, localpath: str, remotepath: str, dereference: bool) -> bool:
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
            await self._extract(destination, posixpath.dirname(destination), 'gzip')
        except FirecrestError as exc:
            self.logger.debug(f'extracting the archive in place of {destination} failed ({exc}); going the usual way')
            await self.rmtree_async(destination)
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
            if not await self.isdir_async(remotepath):
                raise PathNotADirectoryError(errno.ENOTDIR, 'Cannot copy a directory into a file', remotepath) from None
        # as ``core.local``: ``dir/`` (empty base name) goes into ``remotepath`` itself
        name = os.path.split(localpath)[1]
        return posixpath.normpath(posixpath.join(posixpath.normpath(remotepath), name)), False

    async def _puttree_archive(self, localpath: str, destination: str, created: bool, dereference: bool) -> None:
        self._refuse_uncarried_root(destination)
        # the archive holds the tree under its final name, extracted into an existing directory
        extract_into, arcname = (destination, '.') if created else (posixpath.dirname(destination), '')
        arcname = arcname or posixpath.basename(destination)
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            await asyncio.to_thread(
                local_archives.create_archive, localpath, local_archive, arcname=arcname, dereference=dereference
            )
            await self._extract_local_archive(local_archive, extract_into, beside=destination)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def _upload_temporary(self, localpath: str, remotepath: str) -> None:
        """Upload to the temporary directory, creating it on first use."""
        try:
            await self._backend.upload(localpath, remotepath)
        except PathNotFoundError:
            await self._backend.mkdir(posixpath.dirname(remotepath), parents=True)
            await self._backend.upload(localpath, remotepath)

    async def _puttree_files(
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

        await gather(
            self.putfile_async(os.path.join(localpath, relative), target(relative), True, True, preserve)
            for relative in files
        )

    # --- get ------------------------------------------------------------------------------------------------------

    async def get_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        ignore_nonexisting: bool = False,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Fetch a remote file or directory (or the matches of a glob pattern) to the local ``localpath``.

        A file costs ONE request: it is downloaded at once; only if the server answers that it is a directory does
        the tree transfer start (and a missing path is ignored with ``ignore_nonexisting``).

        :param remotepath: an absolute remote path, possibly with glob patterns.
        :param localpath: an absolute local path; a file into an existing directory lands inside it.
        :param dereference: fetch what remote links point to (else recreate the links).
        :param overwrite: if False, an existing local destination is an error.
        :param ignore_nonexisting: do nothing if ``remotepath`` does not exist.
        :param preserve: also set the local permissions and modification times to the remote ones.
        :raises InvalidArgumentError: if a path is not absolute or the local path has a pattern.
        :raises PathNotFoundError: if ``remotepath`` does not exist (and not ``ignore_nonexisting``).
        """
        remotepath, localpath = self._remote(remotepath), self._local(localpath)
        if has_magic(remotepath):
            if has_magic(localpath):
                raise InvalidArgumentError('Pathname patterns are not allowed in the localpath')
            matches = await glob_entries(self._backend, remotepath)
            if len(matches) > 1 and os.path.isfile(localpath):
                raise PathNotADirectoryError(errno.ENOTDIR, 'Local destination is not a directory', localpath)
            if len(matches) > 1 and not os.path.exists(localpath):
                raise PathNotFoundError(errno.ENOENT, 'Local directory does not exist', localpath)
            into = len(matches) > 1 or os.path.isdir(localpath)
            flags = await gather(entry_is_dir(self._backend, path, entry) for path, entry in matches)
            await gather(
                self._get_listed_file(
                    path,
                    os.path.join(localpath, posixpath.basename(path)) if into else localpath,
                    entry,
                    dereference,
                    overwrite,
                    preserve,
                )
                for (path, entry), is_dir in zip(matches, flags, strict=True)
                if not is_dir
            )
            for (path, _), is_dir in zip(matches, flags, strict=True):
                if is_dir:
                    await self.gettree_async(path, localpath, dereference, overwrite, preserve)
            return
        entry = await self._backend.entry(remotepath)
        if entry is None:
            if ignore_nonexisting:
                return
            raise PathNotFoundError(errno.ENOENT, f'{remotepath} does not exist', remotepath)
        if (dereference or entry['type'] != 'l') and await entry_is_dir(self._backend, remotepath, entry):
            await self.gettree_async(remotepath, localpath, dereference, overwrite, preserve)
            return
        target = os.path.join(localpath, posixpath.basename(remotepath)) if os.path.isdir(localpath) else localpath
        await self._get_listed_file(remotepath, target, entry, dereference, overwrite, preserve)

    async def getfile_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Fetch the remote file ``remotepath`` into the local file ``localpath``.

        The size decides the way (see :meth:`~aiida_firecrest.transport.backend.FirecrestBackend.download`): it comes
        from one ``ls`` of the directory, shared by the ``get`` s there for a few seconds (the engine retrieves a
        CalcJob's files one after the other, giving no size). Then an empty file costs nothing more, a small one a
        download, a large one a staged transfer and a checksum; a file whose name FirecREST cannot carry comes inside an
        archive (``compress``, a download and the removal of the archive).

        :param dereference: if False and ``remotepath`` is a link, create a local link with the same target.
        :param overwrite: if False, an existing ``localpath`` is an error.
        :param preserve: also set the local permissions and modification time (from the listing).
        :raises InvalidArgumentError: if a path is not absolute.
        :raises PathExistsError: if ``localpath`` exists and not ``overwrite``.
        :raises PathNotFoundError: if ``remotepath`` does not exist.
        :raises PathIsADirectoryError: if it is a directory.
        :raises UnsupportedPathError: if FirecREST cannot carry the name of its directory.
        :raises ChecksumMismatchError: if a staged transfer corrupted the file.
        """
        remotepath, localpath = self._remote(remotepath), self._local(localpath)
        entry = await self._backend.entry(remotepath)
        if entry is None:
            raise PathNotFoundError(errno.ENOENT, f'{remotepath} does not exist', remotepath)
        await self._get_listed_file(remotepath, localpath, entry, dereference, overwrite, preserve)

    async def _get_listed_file(
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
            await self._get_through_archive(remotepath, localpath, size)
        if preserve:
            await asyncio.to_thread(local_archives.set_mode_and_time, localpath, mode, mtime)

    async def _get_through_archive(self, remotepath: str, localpath: str, size: int) -> None:
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
        remote_archive = self._temporary_remote_path(remotepath, '.tar.gz')
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            try:
                await self._compress_into_temporary(
                    remotepath, remote_archive, dereference=True, match_pattern=single_file_pattern(name)
                )
                await self._backend.download(remote_archive, local_archive, local_archives.archive_size_bound([size]))
            finally:
                await self.rmtree_async(remote_archive)
            if not await asyncio.to_thread(local_archives.extract_member, local_archive, name, localpath):
                raise PathNotFoundError(errno.ENOENT, f'{remotepath} is not a regular file the server archives', name)
        finally:
            await asyncio.to_thread(local_archives.unlink_quietly, local_archive)

    async def gettree_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        preserve: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Fetch a remote directory to ``localpath`` (created), or into it if it exists (``cp -r``).

        One recursive ``ls`` tells the tree; more than ``archive_threshold`` entries, or names FirecREST cannot carry
        (see :func:`~aiida_firecrest.transport.backend.server_carries`), come as one archive (the server's ``compress``,
        a download, removal of the archive, and a safe extraction here), fewer file by file, concurrently, with no
        further ``stat``.

        :param dereference: fetch what remote links point to (else recreate the links).
        :param overwrite: if False, an existing ``localpath`` is an error.
        :param preserve: also set the local permissions and modification times.
        :raises InvalidArgumentError: if a path is not absolute.
        :raises PathNotFoundError: if ``remotepath`` does not exist.
        :raises PathNotADirectoryError: if it is not a directory, or ``localpath`` is a file.
        :raises PathExistsError: if ``localpath`` exists and not ``overwrite``.
        :raises UnsafeArchiveError: if the archive would write outside ``localpath``.
        """
        remotepath, localpath = self._remote(remotepath), self._local(localpath)
        entries = await self._backend.list_directory(remotepath, recursive=True)
        if os.path.exists(localpath) and not overwrite:
            raise PathExistsError(errno.EEXIST, "Can't overwrite existing files", localpath)
        if os.path.isfile(localpath):
            raise PathNotADirectoryError(errno.ENOTDIR, 'Cannot copy a directory into a file', localpath)
        if os.path.isdir(localpath):
            localpath = os.path.join(localpath, posixpath.basename(remotepath))
        await asyncio.to_thread(os.makedirs, localpath, exist_ok=True)
        uncarried = any(not server_carries(str(entry['name'])) for entry in entries)
        if len(entries) > self._archive_threshold or uncarried:
            await self._gettree_archive(remotepath, localpath, dereference, entries)
            if not dereference:
                for entry in entries:
                    if entry['type'] == 'l':
                        target = os.path.join(localpath, *str(entry['name']).split('/'))
                        await asyncio.to_thread(local_archives.make_link, str(entry['linkTarget']), target)
            if preserve:
                await asyncio.to_thread(preserve_all, localpath, entries)
        else:
            await self._gettree_files(remotepath, localpath, entries, dereference, preserve)

    async def _gettree_archive(
        self, remotepath: str, localpath: str, dereference: bool, entries: list[dict[str, Any]]
    ) -> None:
        self._refuse_uncarried_root(remotepath)
        remote_archive = self._temporary_remote_path(remotepath, '.tar.gz')
        handle, local_archive = tempfile.mkstemp(prefix='aiida-firecrest-', suffix='.tar.gz')
        os.close(handle)
        try:
            try:
                with translate_errors(remotepath):
                    await self._compress_into_temporary(remotepath, remote_archive, dereference)
                await self._backend.download(
                    remote_archive, local_archive, await self._archive_size(entries, dereference, remote_archive)
                )
            finally:
                await self.rmtree_async(remote_archive)
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

    async def _archive_size(self, entries: list[dict[str, Any]], dereference: bool, remote_archive: str) -> int:
        """The size to plan the download of the server's archive of a listed tree by: a bound from the listing (no
        request), or the archive's ``stat`` when links followed make the listing's sizes incomplete."""
        if not (dereference and any(entry['type'] == 'l' for entry in entries)):
            return local_archives.archive_size_bound([entry_size(entry) or 0 for entry in entries])
        return int((await self._backend.stat(remote_archive, dereference=True))['size'])

    def _refuse_uncarried_root(self, path: str) -> None:
        """Refuse a tree whose own path FirecREST cannot carry (its archive is made or unpacked there by a command).

        :raises UnsupportedPathError: if so.
        """
        if not server_carries(path):
            raise UnsupportedPathError(
                f'FirecREST cannot carry the path {path!r} in its commands (it quotes no path for the shell and '
                'HTML-escapes them in transfer jobs), so no tree can travel there; rename it'
            )

    async def _compress_into_temporary(
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
            if not self._temp_directory or await self.isdir_async(self._temp_directory):
                raise
            await self._backend.mkdir(self._temp_directory, parents=True)
            await compress()

    async def _gettree_files(
        self, remotepath: str, localpath: str, entries: list[dict[str, Any]], dereference: bool, preserve: bool
    ) -> None:
        def local(entry: dict[str, Any]) -> str:
            return os.path.join(localpath, *str(entry['name']).split('/'))

        directories = [entry for entry in entries if entry['type'] == 'd']
        for entry in directories:
            await asyncio.to_thread(os.makedirs, local(entry), exist_ok=True)
        links = [entry for entry in entries if entry['type'] == 'l']
        linked_dirs: set[str] = set()
        if links and dereference:
            flags = await gather(self.isdir_async(posixpath.join(remotepath, entry['name'])) for entry in links)
            linked_dirs = {entry['name'] for entry, is_dir in zip(links, flags, strict=True) if is_dir}
        downloads = [entry for entry in entries if entry['type'] == '-']
        if dereference:
            downloads += [entry for entry in links if entry['name'] not in linked_dirs]
        else:
            for entry in links:
                await asyncio.to_thread(local_archives.make_link, str(entry['linkTarget']), local(entry))
        await gather(
            self._get_listed_file(posixpath.join(remotepath, entry['name']), local(entry), entry, True, True, False)
            for entry in downloads
        )
        for name in sorted(linked_dirs):
            await self.gettree_async(
                posixpath.join(remotepath, name), os.path.join(localpath, *name.split('/')), dereference, True, preserve
            )
        if preserve:
            await asyncio.to_thread(preserve_all, localpath, [entry for entry in entries if entry['type'] != 'l'])

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
            await self._compress_copies(root, relative, destination, compression, dereference)

    async def _compress_copies(
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
            self._refuse_uncarried_root(posixpath.join(root, name))
        staging = self._temporary_remote_path(destination, '')
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
            await self.rmtree_async(staging)

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
            await self._extract(source, destination, compression)
            return
        temporary = posixpath.join(posixpath.dirname(destination), f'.aiida-firecrest-extract-{uuid.uuid4().hex}')
        await self.makedirs_async(temporary, ignore_existing=True)
        try:
            await self._extract(source, temporary, compression)
            await move_stripped(self._backend, temporary, destination, strip_components)
        finally:
            await self.rmtree_async(temporary)

    async def _extract(self, source: str, destination: str, compression: str) -> None:
        """Extract the remote archive ``source`` into the existing remote directory ``destination``: one request."""
        await self._backend.extract(source, destination, compression, path=source)

    # --- what FirecREST cannot do ---------------------------------------------------------------------------------

    async def exec_command_wait_async(
        self,
        command: str,
        stdin: str | None = None,
        encoding: str = 'utf-8',
        workdir: TransportPath | None = None,
        **kwargs: Any,
    ) -> tuple[int, str, str]:
        """Not possible: FirecREST runs no arbitrary commands.

        :raises FirecrestNotSupportedError: always (a ``NotImplementedError``, which ``verdi computer test`` reports
            as skipped).
        """
        raise FirecrestNotSupportedError(
            'FirecREST offers no remote shell, so the firecrest transport cannot run commands '
            f'(asked: {command!r}). Nothing on the CalcJob path needs one: files go through the transport, jobs '
            'through the `firecrest` scheduler. To run a command on the cluster, submit it as a job or log in with ssh.'
        )

    def gotocomputer_command(self, remotedir: TransportPath | None = None) -> str:
        """Not possible: FirecREST offers no interactive shell.

        :raises FirecrestNotSupportedError: always.
        """
        raise FirecrestNotSupportedError(
            'FirecREST offers no interactive shell, so `verdi calcjob gotocomputer` cannot work with the firecrest '
            'transport. Log in to the cluster with ssh and cd to '
            f'{remotedir if remotedir else "the working directory"}, or use `verdi calcjob remotecat`.'
        )
