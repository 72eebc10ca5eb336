"""The AiiDA transport plugin ``firecrest``: files on an HPC cluster through the FirecREST v2 REST API.

Every method is asynchronous (``*_async``; the :class:`~aiida.transports.transport.AsyncTransport` base generates the
blocking twins) and behaves as ``core.local`` does for the same call. The design goal is few requests, because
FirecREST deployments throttle clients (CSCS: 10 per second, 120 per minute) and every request is a round trip plus an
SSH command on the cluster:

* one ``ls`` gives the names *and* attributes of a directory: nothing a listing told is asked again with ``stat``;
* existence and type checks are one ``stat``; ``makedirs`` is one ``mkdir -p``;
* a small file goes up in one upload request and comes down in one download request; the direct-transfer limit of the
  server (``/status/systems``) is asked only for a file of 1 MiB or more, or after a 413, and cached for the process;
* above the limit, files go through the S3 staging area of FirecREST and are checked afterwards: downloads with
  SHA-256, uploads by size (with SHA-256 too under ``checksum_uploads``);
* a tree of more than ``archive_threshold`` entries travels as one archive (``tar`` here and the server's
  ``extract``, or the server's ``compress`` and a safe extraction here); smaller trees go file by file, concurrently.

Operations FirecREST runs as transfer jobs (``cp``, ``mv``, and the staged transfers) are billed to
``billing_account`` and take seconds at least. FirecREST offers no shell, so ``exec_command_wait_async`` raises
:class:`~aiida_firecrest.client.exceptions.FirecrestNotSupportedError` (a ``NotImplementedError``).

This module holds the connection (options, open and close), the transfers between here and the cluster (``put`` and
``get``) and what FirecREST cannot do; the half of the contract that acts on the cluster alone (queries, directories,
removal, links, copies, archives) is :class:`~aiida_firecrest.transport.cluster_files.ClusterFiles`, its base. The
requests themselves are those of :class:`~aiida_firecrest.transport.backend.FirecrestBackend`; how files and trees
travel is decided by :class:`~aiida_firecrest.transport.tree_transfers.TreeTransfers`, and what FirecREST cannot carry
goes through :class:`~aiida_firecrest.transport.archive_routes.ArchiveRoutes`. See ``ARCHITECTURE.md``.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import posixpath
import stat
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiida.common.exceptions import InvalidOperation
from aiida.transports.transport import AsyncTransport, Transport, TransportPath, has_magic

from ..client.exceptions import (
    FirecrestConfigurationError,
    FirecrestNotSupportedError,
    InvalidArgumentError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
)
from ..client.firecrest_client import FirecrestClient
from ..migration import check_not_legacy
from .archive_routes import ArchiveRoutes
from .backend import FirecrestBackend, gather
from .cluster_files import ClusterFiles
from .known_directories import FreshDirectories
from .listed_paths import (
    entry_is_dir,
    glob_entries,
)
from .options import (
    AUTH_OPTIONS,
    COMMON_AUTH_OPTIONS,
    DEFAULT_ARCHIVE_THRESHOLD,
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    request_limits,
)
from .tree_transfers import TreeTransfers

__all__ = ('FirecrestTransport',)


_T = TypeVar('_T')

try:  # plumpy >= 0.26 (aiida-core >= 2.8): waits on a running loop through the greenback portal of its runner
    from plumpy.greenback_bridge import run_until_complete
except ImportError:  # plumpy 0.25 (aiida-core 2.7): its event loops are reentrant (nest_asyncio)

    def run_until_complete(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[_T]) -> _T:
        """Run ``awaitable`` to completion on ``loop``, which plumpy 0.25 made reentrant."""
        return loop.run_until_complete(awaitable)


class FirecrestTransport(ClusterFiles):
    """Files on an HPC cluster through the FirecREST v2 REST API (e.g. CSCS Alps), with OIDC client credentials.

    Opening the transport makes no request: it reads the client secret and prepares an HTTP client. Tokens and the
    facts about the server (its direct-transfer limit, the user name) are shared by all transports of the process, so
    the many transports the engine opens cost nothing more than one; the request budget by every process of the
    machine.

    ``safe_interval`` defaults to 0.1 s, not AiiDA's 15 s: the engine waits that long before every open, to protect
    servers that limit *connections*; opening this transport connects nowhere, and FirecREST's limits are on
    *requests*, which the client-side budget (``requests_per_second``, ``requests_per_minute``) already paces for
    every process of the machine. The value is measured (``benchmarks/calcjob.py --safe-interval``: one
    ``ArithmeticAddCalculation`` on the local server, median of 5, on a busy machine): 11.4 s at 1 s, 9.6 s at 0.5 s,
    7.3 s at 0.2 s, 7.2 s at 0.1 s, 6.7 s at 0 (13 to 14 requests each). Below 0.2 s the wait no longer shows; 0.1 s
    keeps a short window in which the engine gathers the transport tasks of many CalcJobs into one open.
    """

    _DEFAULT_SAFE_OPEN_INTERVAL = 0.1

    _valid_auth_options = AUTH_OPTIONS
    _common_auth_options = COMMON_AUTH_OPTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Store the options; no I/O and no request (see :meth:`open_async`).

        :raises FirecrestConfigurationError: if a required option is missing or an option has an invalid value.
        """
        check_not_legacy(kwargs)  # a computer configured by aiida-firecrest 1.0.0: name the command that migrates it
        base_init: Callable[..., None] = super().__init__  # aiida-core's is unannotated
        base_init(*args, **kwargs)
        url = self._option(kwargs, 'url').rstrip('/')
        token_uri = self._option(kwargs, 'token_uri')
        client_id = self._option(kwargs, 'client_id')
        client_secret = self._option(kwargs, 'client_secret')
        system = self._option(kwargs, 'compute_resource')
        temp_directory = str(kwargs.get('temp_directory') or '').rstrip('/')
        billing_account = str(kwargs.get('billing_account') or '') or None
        checksum_uploads = bool(kwargs.get('checksum_uploads', False))
        try:
            max_direct_size = int(kwargs.get('max_direct_size') or 0)
            archive_threshold = int(kwargs.get('archive_threshold', DEFAULT_ARCHIVE_THRESHOLD))
            max_concurrency = max(1, int(kwargs.get('max_concurrency') or DEFAULT_MAX_CONCURRENCY))
            requests_per_second, requests_per_minute = request_limits(kwargs)
            http_timeout = float(kwargs.get('http_timeout') or DEFAULT_HTTP_TIMEOUT)
        except (TypeError, ValueError) as exc:
            raise FirecrestConfigurationError(f'invalid option of the firecrest transport: {exc}') from exc
        if temp_directory and not temp_directory.startswith('/'):
            raise FirecrestConfigurationError(f'temp_directory {temp_directory!r} is not an absolute path')
        self._fresh = FreshDirectories()
        self._backend = FirecrestBackend(
            url=url,
            token_uri=token_uri,
            client_id=client_id,
            client_secret=client_secret,
            system=system,
            billing_account=billing_account,
            max_direct_size=max_direct_size,
            checksum_uploads=checksum_uploads,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            requests_per_minute=requests_per_minute,
            http_timeout=http_timeout,
            fresh=self._fresh,
        )
        self._routes = ArchiveRoutes(self._backend, temp_directory)
        self._trees = TreeTransfers(self._backend, self._routes, self._fresh, archive_threshold, self.logger)

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

    def run_command_blocking(self, func: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        """Run the coroutine ``func(*args, **kwargs)`` to completion and return its result.

        On the event loop running in this thread, if there is one: the loop of the runner stepping the CalcJob, whose
        greenback portal lets a blocking call (the scheduler's) wait on it. aiida-core's wrapper always takes the loop
        of the *global* runner, which is another loop when the CalcJob runs in a local runner created while another
        event loop was current (``aiida.engine.run`` after a notebook cell or a test made its own loop): the call
        then fails with "Cannot run the event loop while another loop is running", at every retry of the step.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            blocking: Callable[..., _T] = super().run_command_blocking  # aiida-core's is unannotated
            return blocking(func, *args, **kwargs)
        return run_until_complete(loop, func(*args, **kwargs))

    # --- open and close ----------------------------------------------------------------------------------------

    if not hasattr(AsyncTransport, '__aenter__'):  # aiida-core 2.7: ``async with transport`` came in 2.8

        async def __aenter__(self) -> FirecrestTransport:
            """Open the transport unless it is open (nested blocks open it once), as ``with`` does."""
            if self._enters == 0:
                if self.is_open:
                    self._enters += 1  # opened outside: the last exit leaves it open
                else:
                    await self.open_async()
            self._enters += 1
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            """Close the transport when the outermost block that opened it ends."""
            self._enters -= 1
            if self._enters == 0:
                await self.close_async()

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
    def _local(path: TransportPath) -> str:
        path = str(path)
        if not os.path.isabs(path):
            raise InvalidArgumentError(f'the local path {path!r} is not absolute')
        return path

    # --- identity -------------------------------------------------------------------------------------------------

    async def whoami_async(self) -> str:
        """Return the user name on the cluster.

        Taken from the ``preferred_username`` claim of the access token when the token is a JWT carrying it (the claim
        FirecREST maps to the cluster user; no FirecREST request), else from ``/status/{system}/userinfo``, asked once
        per process.

        :raises FirecrestAuthenticationError: if the credentials are refused.
        """
        return await self._backend.username()

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
        FirecREST cannot carry (see :func:`~aiida_firecrest.transport.carried_names.server_carries`) goes inside an
        archive, extracted by the server: two requests when the name is safe (the archive is uploaded in the file's
        place), three otherwise (uploaded to the temporary directory and removed after).

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
            await self._routes.put_link(os.readlink(localpath), remotepath)
            return
        if os.path.isdir(localpath):
            raise PathIsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), localpath)
        await self._trees.put_file(localpath, remotepath, preserve)

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
        self._routes.refuse_uncarried_root(remotepath)
        await self._trees.put_tree(localpath, remotepath, dereference, preserve)

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
                self._trees.get_listed_file(
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
        await self._trees.get_listed_file(remotepath, target, entry, dereference, overwrite, preserve)

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
        await self._trees.get_listed_file(remotepath, localpath, entry, dereference, overwrite, preserve)

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
        (see :func:`~aiida_firecrest.transport.carried_names.server_carries`), come as one archive (the server's
        ``compress``, a download, removal of the archive, and a safe extraction here), fewer file by file, concurrently,
        with no further ``stat``.

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
        await self._trees.get_tree(remotepath, localpath, dereference, overwrite, preserve)

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
