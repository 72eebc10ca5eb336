"""The requests of the ``firecrest`` transport: everything it asks FirecREST, about one system.

:class:`FirecrestBackend` holds the connection (the token, the request budget and the pyfirecrest client), the facts
about the server (its direct-transfer limit, the user name, cached for the process) and one coroutine per operation,
with the errors translated to those of :mod:`aiida_firecrest.client.exceptions` and their effect on the directories the
transport created noted in its :class:`~aiida_firecrest.transport.known_directories.FreshDirectories`. A file goes up in
one request below the direct-transfer limit, down in one request below the usable direct-download size (3/4 of that
limit: the server checks the size of the base64 text), and through the staging area (checked with SHA-256) above them.
The transport checks the arguments of the AiiDA transport contract and composes these operations, as aiida-core's
``ssh_async`` does with its backends; it routes the files that these direct and staged paths cannot carry (see
:func:`~aiida_firecrest.transport.carried_names.server_carries`) through archives.
"""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
import stat
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiida.common.exceptions import InvalidOperation
from aiida.common.log import AIIDA_LOGGER

from ..client.client_credentials import (
    DEFAULT_MIN_TOKEN_VALIDITY,
    ClientCredentialsAuth,
    read_client_secret,
    shared_auth,
)
from ..client.exceptions import (
    DIRECT_TRANSFER_REFUSALS,
    AccessDeniedError,
    DirectTransferTooLargeError,
    FirecrestConfigurationError,
    PathExistsError,
    PathNotADirectoryError,
    PathNotFoundError,
    UnsupportedPathError,
    translate_errors,
)
from ..client.firecrest_client import PYFIRECREST_DIRECT_LIMIT, FirecrestClient, ssl_context
from ..client.request_budget import shared_budget
from ..client.server_facts import FACTS
from .carried_names import check_commands_carry, check_jobs_carry, commands_carry, jobs_carry, shell_word_safe
from .file_attributes import decode_listed_name, entry_type, mode_of_entry
from .known_directories import FreshDirectories
from .staged_transfers import ChecksumReach, staged_download, staged_upload

__all__ = (
    'MISSING',
    'FirecrestBackend',
    'gather',
    'usable_direct_download',
)

LOGGER = AIIDA_LOGGER.getChild('transport.FirecrestTransport')

T = TypeVar('T')

MISSING = (PathNotFoundError, PathNotADirectoryError)
"""What a ``stat`` or ``ls`` raises for a path that does not exist (a component may be a file)."""

_MAX_LINKS = 40
"""Links followed while resolving a path before it counts as a cycle (as the kernel's ``ELOOP``)."""


def usable_direct_download(limit: int) -> int:
    """The largest file the server sends in one direct download, for its direct-transfer limit ``limit``: it checks
    the size of the base64 text (4 characters per 3 bytes), and a file above answers only after the command timeout.
    One base64 quantum is kept as a margin (an output that fills the server's buffer exactly counts as too large)."""
    return max(0, limit // 4 - 1) * 3


async def gather(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Await the coroutines concurrently; on the first failure, cancel the others and raise it."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class FirecrestBackend:
    """The FirecREST requests of one transport, about the system ``system``.

    Creating one makes no request and does no I/O; :meth:`open` reads the client secret and prepares the HTTP client.
    Tokens, the request budget and the facts about the server are shared by all backends of the process.

    :param fresh: what the transport knows about the directories it created; the operations here keep it up to date.
    :param max_direct_size: the size from which files go through the staging area; 0 for the server's limit.
    :param checksum_uploads: compare staged uploads with their sources by SHA-256, not only by size.
    :param max_concurrency: file transfers in flight at once.
    """

    def __init__(
        self,
        *,
        url: str,
        token_uri: str,
        client_id: str,
        client_secret: str,
        system: str,
        billing_account: str | None,
        max_direct_size: int,
        checksum_uploads: bool,
        max_concurrency: int,
        requests_per_second: float,
        requests_per_minute: float,
        http_timeout: float,
        fresh: FreshDirectories,
    ) -> None:
        self.url = url
        self.system = system
        self.billing_account = billing_account
        self._token_uri = token_uri
        self._client_id = client_id
        self._client_secret_source = client_secret
        self._max_direct_size = max_direct_size
        self._checksum_uploads = checksum_uploads
        self._requests_per_second = requests_per_second
        self._requests_per_minute = requests_per_minute
        self._http_timeout = http_timeout
        self._fresh = fresh
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._client: FirecrestClient | None = None
        self._auth: ClientCredentialsAuth | None = None

    @property
    def client(self) -> FirecrestClient:
        """The pyfirecrest client, while open.

        :raises InvalidOperation: if the backend is not open.
        """
        if self._client is None:
            raise InvalidOperation('the firecrest transport is not open')
        return self._client

    # --- open and close -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Read the client secret and prepare the HTTP client; no request to any server.

        :raises FirecrestConfigurationError: if the client secret cannot be read or its file is not private.
        """
        secret = await asyncio.to_thread(read_client_secret, self._client_secret_source)
        self._auth = shared_auth(self._token_uri, self._client_id, min_validity=DEFAULT_MIN_TOKEN_VALIDITY)
        self._auth.set_secret(secret)
        budget = shared_budget(self.url, self._client_id, self._requests_per_second, self._requests_per_minute)
        self._client = FirecrestClient(
            self.url, self._auth, budget=budget, timeout=self._http_timeout, verify=await ssl_context()
        )
        limit = self._known_direct_limit()
        if limit is not None:
            self._client.MAX_DIRECT_UPLOAD_SIZE = limit

    async def close(self) -> None:
        """Close the HTTP connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close_session()

    # --- facts about the server, cached process-wide -----------------------------------------------------------

    def _facts_key(self, kind: str) -> tuple[str, ...]:
        return (kind, self.url, self._client_id, self.system)

    @property
    def _checksum_reach(self) -> ChecksumReach:
        """Which files the server hashes before its command timeout (learnt from its 408s, process-wide)."""
        return ChecksumReach(self._facts_key('checksum_reach'))

    async def _system_description(self) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            with translate_errors():
                systems = await self.client.systems()
            for system in systems:
                if str(system.get('name', '')).lower() == self.system.lower():
                    return dict(system)
            names = ', '.join(str(system.get('name')) for system in systems)
            raise FirecrestConfigurationError(
                f'FirecREST at {self.url} has no system {self.system!r} (it has: {names})'
            )

        return await FACTS.get(self._facts_key('system'), fetch)

    def _known_direct_limit(self) -> int | None:
        if self._max_direct_size > 0:
            return self._max_direct_size
        limit = FACTS.peek(self._facts_key('direct_limit'))
        return None if limit is None else int(limit)

    async def _server_direct_limit(self) -> int:
        """The direct-transfer limit the server reports (``/status/systems``, asked once per process)."""

        async def fetch() -> int:
            operations = (await self._system_description()).get('dataOperation') or {}
            limit = operations.get('max_ops_file_size', operations.get('maxOpsFileSize'))
            return int(limit) if limit else PYFIRECREST_DIRECT_LIMIT

        limit = await FACTS.get(self._facts_key('direct_limit'), fetch)
        return limit

    async def _direct_limit(self) -> int:
        """The size from which files go through the staging area: the option, else the server's limit."""
        limit = self._max_direct_size or await self._server_direct_limit()
        self.client.MAX_DIRECT_UPLOAD_SIZE = limit
        return limit

    async def _direct_limit_after_413(self) -> int:
        """The server's own limit, asked again after it refused a direct transfer below the limit believed (the cached
        one is stale, or the ``max_direct_size`` option was too high)."""
        FACTS.forget(self._facts_key('system'), self._facts_key('direct_limit'))
        limit = await self._server_direct_limit()
        self.client.MAX_DIRECT_UPLOAD_SIZE = limit
        return limit

    async def username(self) -> str:
        """The user name on the cluster: the ``preferred_username`` claim of the access token when it has one, else
        ``/status/{system}/userinfo``, asked once per process.

        :raises InvalidOperation: if the backend was never opened.
        """
        if self._auth is None:
            raise InvalidOperation('the firecrest transport is not open')
        await self._auth.access_token()
        username = self._auth.claims.get('preferred_username')
        if isinstance(username, str) and username:
            return username

        async def fetch() -> str:
            with translate_errors():
                info = await self.client.userinfo(self.system)
            return str(info['user']['name'])

        return await FACTS.get(self._facts_key('user'), fetch)

    # --- queries --------------------------------------------------------------------------------------------------

    async def stat(self, path: str, *, dereference: bool) -> dict[str, Any]:
        """The ``stat`` of ``path`` (of what it links to, if ``dereference``).

        :raises UnsupportedPathError: if ``path`` holds a ``'`` (see :meth:`mode`, which lists the parent instead).
        """
        check_commands_carry('stat', path)
        with translate_errors(path):
            attributes: dict[str, Any] = await self.client.stat(self.system, path, dereference=dereference)
            return attributes

    async def stat_or_none(self, path: str, *, dereference: bool = True) -> dict[str, Any] | None:
        """The ``stat`` of ``path``, None if it does not exist."""
        try:
            return await self.stat(path, dereference=dereference)
        except MISSING:
            return None

    async def mode(self, path: str, *, dereference: bool = True) -> int | None:
        """The ``st_mode`` of ``path`` (of what it links to, if ``dereference``), None if it does not exist.

        A path holding a ``'`` (which the server's ``stat`` cannot carry) is looked up in the listing of its directory,
        and a link there is followed through its target.
        """
        if not commands_carry(path):
            return await self._mode_from_listing(path, dereference=dereference)
        answer = await self.stat_or_none(path, dereference=dereference)
        return None if answer is None else int(answer['mode'])

    async def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory or a link to one (False if it does not exist); one ``stat``."""
        mode = await self.mode(path)
        return mode is not None and stat.S_ISDIR(mode)

    async def _mode_from_listing(self, path: str, *, dereference: bool, links_followed: int = 0) -> int | None:
        entry = await self.entry(path)
        if entry is None:
            return None
        if entry['type'] != 'l' or not dereference:
            return mode_of_entry(entry)
        if links_followed >= _MAX_LINKS:
            raise PathNotFoundError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), str(entry['linkTarget'])))
        if commands_carry(target):
            return await self.mode(target, dereference=True)
        return await self._mode_from_listing(target, dereference=True, links_followed=links_followed + 1)

    async def ls(self, path: str, *, recursive: bool = False, dereference: bool = False) -> list[dict[str, Any]]:
        """The ``ls`` of ``path`` as the server answers it: hidden entries included, numeric user and group ids.

        :raises UnsupportedPathError: if ``path`` holds a ``'``.
        """
        check_commands_carry('list', path)
        with translate_errors(path):
            entries: list[dict[str, Any]] = await self.client.list_files(
                self.system, path, show_hidden=True, recursive=recursive, numeric_uid=True, dereference=dereference
            )
        for entry in entries:
            entry['name'] = decode_listed_name(str(entry['name']))
            if entry.get('linkTarget') is not None:
                entry['linkTarget'] = decode_listed_name(str(entry['linkTarget']))
        return entries

    async def list_directory(
        self, path: str, *, recursive: bool = False, dereference: bool = False
    ) -> list[dict[str, Any]]:
        """The entries of the directory ``path`` (of what it links to, if it is a link), in one request.

        :raises PathNotADirectoryError: if ``path`` is not a directory.
        :raises PathNotFoundError: if it does not exist.
        """
        entries = await self.ls(path, recursive=recursive, dereference=dereference)
        if len(entries) == 1 and str(entries[0]['name']).startswith('/'):
            # ``ls`` of anything but a directory lists that thing itself, named by its full path
            if entries[0]['type'] == 'l' and not dereference:
                return await self.list_directory(path, recursive=recursive, dereference=True)
            if entries[0]['type'] != 'd':
                raise PathNotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return [entry for entry in entries if entry['name'] not in ('.', '..')]

    async def list_or_empty(self, directory: str) -> tuple[bool, list[dict[str, Any]]]:
        """Whether ``directory`` exists, and its entries."""
        try:
            return True, await self.list_directory(directory)
        except MISSING:
            return False, []

    async def entry(self, path: str) -> dict[str, Any] | None:
        """The listing entry of ``path`` (None if it does not exist), from a recent listing of its directory shared
        with the other operations there (see :class:`~aiida_firecrest.transport.known_directories.RecentListings`): one
        ``ls`` for all the files of a directory. Where the directory cannot be listed, one ``stat`` of ``path`` (its
        entry then has no ``linkTarget``).
        """
        directory, name = posixpath.split(path.rstrip('/') or '/')
        if name in ('', '.', '..') or path.endswith('/'):
            return await self._entry_from_stat(path)
        try:
            entries = await self._fresh.listings.get(directory, lambda: self.list_directory(directory))
        except MISSING:
            return None
        except AccessDeniedError:  # a directory one may not read but pass through
            return await self._entry_from_stat(path)
        return next((entry for entry in entries if entry['name'] == name), None)

    async def _entry_from_stat(self, path: str) -> dict[str, Any] | None:
        answer = await self.stat_or_none(path, dereference=False)
        if answer is None:
            return None
        return {'name': path, 'type': entry_type(int(answer['mode'])), 'size': str(answer['size'])}

    async def file_type(self, path: str) -> str:
        """What ``file`` says of ``path``."""
        check_commands_carry('inspect', path)
        with translate_errors(path):
            return str(await self.client.file_type(self.system, path))

    # --- changes --------------------------------------------------------------------------------------------------

    async def mkdir(self, path: str, *, parents: bool) -> None:
        """Create the directory ``path`` (``mkdir``, or ``mkdir -p`` with ``parents``).

        :raises UnsupportedPathError: if ``path`` holds a ``'`` (``mkdir`` would create a directory of another name).
        """
        check_commands_carry('create', path)
        with translate_errors(path):
            await self.client.mkdir(self.system, path, create_parents=parents)
        if parents:
            self._fresh.touched(path)
        else:
            self._fresh.created(path)

    async def rm(self, path: str) -> None:
        """Remove ``path`` and everything below it (``rm -R``); if the command outlasts the server's timeout, in a
        transfer job, but only for a path that the job's script carries.

        :raises UnsupportedPathError: if ``path`` holds a ``'``.
        """
        check_commands_carry('remove', path)
        self._fresh.forget(path)
        with translate_errors(path):
            if jobs_carry(path):
                await self.client.rm(self.system, path, account=self.billing_account)
            else:
                await self.client.ops_only('rm', self.system, path=path)

    async def chmod(self, path: str, mode: int) -> None:
        """Set the permissions of ``path`` (of what it links to)."""
        check_commands_carry('change the permissions of', path)
        with translate_errors(path):
            await self.client.chmod(self.system, path, format(mode, 'o'))

    async def chown(self, path: str, uid: int, gid: int) -> None:
        """Set the owner and group of ``path``."""
        check_commands_carry('change the owner of', path)
        with translate_errors(path):
            await self.client.chown(self.system, path, str(uid), str(gid))

    async def symlink(self, source: str, link: str) -> None:
        """Create the link ``link`` to ``source``: a ``stat`` to refuse an existing path, then ``symlink``.

        :raises PathExistsError: if ``link`` exists.
        :raises UnsupportedPathError: if a path holds a ``'``.
        """
        check_commands_carry('link', source, link)
        if await self.stat_or_none(link, dereference=False) is not None:
            raise PathExistsError(errno.EEXIST, os.strerror(errno.EEXIST), link)
        with translate_errors(link):
            await self.client.symlink(self.system, source, link)
        self._fresh.touched(link)

    async def cp(self, source: str, destination: str, dereference: bool) -> None:
        """Copy with ``cp -R``: a transfer job, awaited.

        :raises UnsupportedPathError: if the job's script would HTML-escape a path.
        """
        check_jobs_carry('copy', source, destination)
        self._fresh.touched(destination)
        self._fresh.touched(posixpath.join(destination, posixpath.basename(source)))
        with translate_errors(source):
            job = await self.client.cp(
                self.system,
                source,
                destination,
                dereference=dereference,
                account=self.billing_account,
                blocking=False,
            )
            await self.client.wait_for_transfer(job, destination)

    async def mv(self, source: str, destination: str) -> None:
        """Move with ``mv``: a transfer job, awaited.

        :raises UnsupportedPathError: if the job's script would HTML-escape a path.
        """
        check_jobs_carry('move', source, destination)
        self._fresh.forget(source)
        self._fresh.touched(destination)
        self._fresh.touched(posixpath.join(destination, posixpath.basename(source)))
        with translate_errors(source):
            job = await self.client.mv(self.system, source, destination, account=self.billing_account, blocking=False)
            await self.client.wait_for_transfer(job, destination)

    async def compress(
        self,
        source: str,
        target: str,
        *,
        dereference: bool,
        compression: str = 'gzip',
        match_pattern: str | None = None,
        path: str,
    ) -> None:
        """Archive ``source`` into ``target`` with FirecREST's ``compress``; if the command outlasts the server's
        timeout, in a transfer job, but only for paths that the job's script carries.

        :param match_pattern: a ``find -regex`` selecting the members; the server runs ``find`` in the directory of
            ``source`` (named unquoted), so only that directory is given to the server, not ``source``'s own name.
        :param path: the path the errors name.
        :raises UnsupportedPathError: if a path given to the server holds a ``'`` (or, with a pattern, the directory
            is not one shell word).
        """
        given = [posixpath.dirname(source)] if match_pattern else [source]
        if match_pattern and not shell_word_safe(given[0]):
            raise UnsupportedPathError(
                f'FirecREST cannot select files by a pattern in {given[0]!r}: its compress command names that '
                'directory without quotes, so the shell would split or expand it; nothing was sent'
            )
        check_commands_carry('archive', *given, target)
        fields = {'source_path': source, 'target_path': target, 'dereference': dereference}
        fields |= {'compression': compression, 'match_pattern': match_pattern}
        with translate_errors(path):
            if all(jobs_carry(given_path) for given_path in [*given, target]):
                await self.client.compress(self.system, **fields, account=self.billing_account)
            else:
                await self.client.ops_only('compress', self.system, **fields)

    async def extract(self, source: str, destination: str, compression: str, *, path: str) -> None:
        """Extract the archive ``source`` into the directory ``destination`` with FirecREST's ``extract``.

        Without a transfer job (when the command outlasts the server's timeout) for a path that the job's script would
        HTML-escape. The members of the archive may have any name.

        :param path: the path the errors name.
        :raises UnsupportedPathError: if a path holds a ``'``.
        """
        check_commands_carry('extract into', source, destination)
        self._fresh.forget(destination)
        fields = {'source_path': source, 'target_path': destination, 'compression': compression}
        with translate_errors(path):
            if jobs_carry(source) and jobs_carry(destination):
                await self.client.extract(self.system, **fields, account=self.billing_account)
            else:
                await self.client.ops_only('extract', self.system, **fields)

    # --- single files up and down ---------------------------------------------------------------------------------

    async def upload(self, localpath: str, remotepath: str) -> None:
        """Send the local file ``localpath`` to ``remotepath``: directly in one request below the direct limit, else
        through the staging area, verified by size (and SHA-256, with ``checksum_uploads``).

        The caller routes through an archive what this cannot carry: an empty file (the server's direct upload of no
        content waits for the command timeout) and a name that :func:`server_carries` refuses.

        :raises PathIsADirectoryError: if ``remotepath`` is a directory.
        :raises PathNotFoundError: if its parent directory does not exist.
        :raises UnsupportedPathError: if ``remotepath`` holds a ``'`` (or, for a staged upload, a character that the
            transfer job HTML-escapes).
        """
        check_commands_carry('upload to', remotepath)
        directory, filename = posixpath.split(remotepath)
        directory = directory or '/'
        size = os.stat(localpath).st_size
        self._fresh.touched(remotepath)
        limit = self._known_direct_limit() or PYFIRECREST_DIRECT_LIMIT
        if size >= limit:
            limit = await self._direct_limit()
        async with self._semaphore:
            if size < limit:
                try:
                    with translate_errors(remotepath):
                        await self.client.upload(self.system, localpath, directory, filename)
                    return
                except DirectTransferTooLargeError:
                    limit = await self._direct_limit_after_413()
                    if size < limit:
                        raise
            check_jobs_carry('upload to', remotepath)
            await staged_upload(
                self.client,
                self.system,
                localpath,
                remotepath,
                account=self.billing_account,
                reach=self._checksum_reach,
                checksum=self._checksum_uploads,
            )

    async def fits_direct_download(self, size: int) -> bool:
        """Whether a file of ``size`` bytes comes down in one direct download (asks the server's limit, once per
        process, only above pyfirecrest's 1 MiB)."""
        if size <= usable_direct_download(self._known_direct_limit() or PYFIRECREST_DIRECT_LIMIT):
            return True
        return size <= usable_direct_download(await self._direct_limit())

    async def download(self, remotepath: str, localpath: str, size: int) -> None:
        """Fetch the remote file ``remotepath`` of ``size`` bytes into ``localpath``: nothing to ask for an empty
        file; one request up to the usable direct-download size (:func:`usable_direct_download`); through the staging
        area, verified with SHA-256, above it, or when the server refuses the direct download anyway (413, a timeout
        or a 500: the file may have grown since it was listed).

        The caller routes through an archive a name that :func:`server_carries` refuses.

        :param size: the size a listing or a ``stat`` told.
        :raises PathIsADirectoryError: if ``remotepath`` is a directory.
        :raises PathNotFoundError: if it does not exist.
        :raises UnsupportedPathError: if ``remotepath`` holds a ``'`` (or, for a staged download, a character that the
            transfer job HTML-escapes).
        """
        check_commands_carry('download', remotepath)
        if size == 0:
            await asyncio.to_thread(Path(localpath).write_bytes, b'')
            return
        direct = await self.fits_direct_download(size)
        async with self._semaphore:
            if direct:
                try:
                    with translate_errors(remotepath):
                        content = await self.client.download_direct(self.system, remotepath)
                    await asyncio.to_thread(Path(localpath).write_bytes, content)
                    return
                except DIRECT_TRANSFER_REFUSALS as exc:
                    LOGGER.debug(f'direct download of {remotepath} refused ({exc}); taking the staged path')
            check_jobs_carry('download', remotepath)
            await staged_download(
                self.client,
                self.system,
                remotepath,
                localpath,
                size,
                account=self.billing_account,
                reach=self._checksum_reach,
            )
