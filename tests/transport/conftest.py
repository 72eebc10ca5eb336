"""Fixtures of the transport tests: FirecREST transports of the server under test, and a factory of any transport kind.

``firecrest_transport(**overrides)`` returns a new, *unopened* :class:`~aiida_firecrest.transport.FirecrestTransport`
configured for the server under test (the client secret is written to an owner-only file, as a user would store it);
open it with ``async with transport:`` in async tests or ``with transport:`` in sync ones (sync use needs an AiiDA
profile, whose runner loop drives the coroutines). ``transport_factory(kind, **overrides)`` does the same for
``'firecrest'`` and ``'core.local'``, for suites that compare the two. ``transport_scratch(kind)`` returns a fresh
empty directory that the transport of that kind can use, removed afterwards. ``count_requests()`` counts the requests
the local server answers during an ``async with`` block (it skips against ``--firecrest-config``).
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.remote_files import RemoteFiles, RemotePath

if TYPE_CHECKING:
    from aiida.transports import Transport

    from aiida_firecrest.transport import FirecrestTransport

TRANSPORT_KINDS = ('core.local', 'firecrest')
"""The transport kinds that ``transport_factory`` builds."""

TEST_REQUESTS_PER_SECOND = 50.0
"""The client-side request budget of test transports: above CSCS's 10/s and without the per-minute limit, so that the
suite runs quickly against the local server (which does not throttle); pass ``requests_per_second=`` and
``requests_per_minute=`` to test the real figures."""


@pytest.fixture(scope='session')
def firecrest_secret_file(firecrest_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client secret of the server under test, in a file readable by its owner alone (mode 0600)."""
    path = tmp_path_factory.mktemp('firecrest-secret') / 'client_secret'
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(firecrest_config['client_secret'])
    return path


@pytest.fixture(scope='session')
def firecrest_transport_params(firecrest_config: dict[str, Any], firecrest_secret_file: Path) -> dict[str, Any]:
    """The keyword arguments of a FirecREST transport of the server under test, as ``verdi computer configure`` stores
    them (plus ``machine``)."""
    return {
        'machine': 'localhost',
        'url': firecrest_config['url'],
        'token_uri': firecrest_config['token_uri'],
        'client_id': firecrest_config['client_id'],
        'client_secret': str(firecrest_secret_file),
        'compute_resource': firecrest_config['compute_resource'],
        'temp_directory': firecrest_config['temp_directory'],
        'billing_account': firecrest_config.get('billing_account') or '',
        'requests_per_second': TEST_REQUESTS_PER_SECOND,
        'requests_per_minute': 0,
    }


@pytest.fixture(scope='session')
def firecrest_transport(firecrest_transport_params: dict[str, Any]) -> Callable[..., FirecrestTransport]:
    """A factory: ``firecrest_transport(**overrides)`` returns a new unopened FirecREST transport of the server under
    test; ``overrides`` replace or add constructor options (e.g. ``archive_threshold=10``)."""
    from aiida_firecrest.transport import FirecrestTransport

    def factory(**overrides: Any) -> FirecrestTransport:
        return FirecrestTransport(**{**firecrest_transport_params, **overrides})

    return factory


@pytest.fixture(scope='session')
def transport_factory(firecrest_transport: Callable[..., FirecrestTransport]) -> Callable[..., Transport]:
    """A factory: ``transport_factory(kind, **overrides)`` returns a new unopened transport, ``kind`` being one of
    :data:`TRANSPORT_KINDS` (``'core.local'`` or ``'firecrest'``)."""
    from aiida.transports.plugins.local import LocalTransport

    def factory(kind: str, **overrides: Any) -> Transport:
        if kind == 'firecrest':
            return firecrest_transport(**overrides)
        if kind == 'core.local':
            return LocalTransport(**{'machine': 'localhost', **overrides})
        raise ValueError(f'unknown transport kind {kind!r}; expected one of {TRANSPORT_KINDS}')

    return factory


@pytest.fixture
def transport_scratch(
    firecrest_config: dict[str, Any], remote_files: RemoteFiles, tmp_path: Path
) -> Iterator[Callable[[str], RemotePath]]:
    """A factory: ``transport_scratch(kind)`` returns a fresh empty directory for a transport of ``kind`` to work in.

    For ``'firecrest'`` it lies inside the server's work directory (the server only accepts its own file systems),
    created and removed through ``remote_files``: a :class:`Path` on the local server, which shares this machine's file
    system, and a :class:`~pathlib.PurePosixPath` on a deployment of ``--firecrest-config``. Removed afterwards.
    """
    created: list[Path] = []
    remote: list[RemotePath] = []

    def factory(kind: str) -> RemotePath:
        if kind == 'core.local':
            path = tmp_path / f'local-{uuid.uuid4().hex[:8]}'
            path.mkdir(parents=True)
            created.append(path)
            return path
        if kind == 'firecrest':
            scratch = remote_files.scratch(firecrest_config['workdir'])
            remote.append(scratch)
            return scratch
        raise ValueError(f'unknown transport kind {kind!r}; expected one of {TRANSPORT_KINDS}')

    yield factory
    for path in created:
        shutil.rmtree(path, ignore_errors=True)
    for scratch in remote:
        remote_files.remove(scratch)


@pytest.fixture
def staged_size(local_server: Any) -> int:
    """A size that always takes the staged path, in two parts of the multipart upload."""
    return max(int(local_server.settings.max_ops_file_size), int(local_server.settings.s3.max_part_size)) + 1


async def settle(server: Any) -> None:
    """Wait until the local server has logged the answers the client already received (it logs each one right after
    sending it, so a count taken at once may miss the last)."""
    seen = -1
    while (now := server.request_log.mark()) != seen:
        seen = now
        await asyncio.sleep(0.05)


class RequestCounter:
    """``async with counter as counted:`` puts in ``counted.counts`` the requests per endpoint (e.g.
    ``'GET /status/systems'``) that the local server answered during the block, token requests excluded;
    ``counted.total`` is their sum."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._mark = 0
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_requests(self) -> list[Any]:
        """Every request of the block, token requests included."""
        return self._server.request_log.since(self._mark, api_only=False)

    async def __aenter__(self) -> RequestCounter:
        await settle(self._server)
        self._mark = self._server.request_log.mark()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await settle(self._server)
        self.counts = self._server.request_log.counts(self._mark)


@pytest.fixture
def count_requests(local_server: Any) -> Callable[[], RequestCounter]:
    """A factory of :class:`RequestCounter` for the local server: ``async with count_requests() as counted: ...``."""
    return lambda: RequestCounter(local_server)
