"""Fixtures shared by the test suite: the FirecREST server under test and clients of it.

By default the tests run against the embedded local server (a fresh one per session). ``pytest --firecrest-config
FILE`` runs them against any FirecREST v2 deployment instead, described by a JSON file with the keys that
``firecrest_demo.py serve --config-out`` writes. Tests that need the local server's internals then skip, with a
reason: those that ask for ``local_server`` (or ``slurm_server``, ``any_backend_server``) and those marked
``@pytest.mark.local_server(reason=...)``. Everything else reaches the server under test only through
``firecrest_config``/``server_config`` and looks at its files through ``remote_files``, and so runs against either.

The option and the generic fixtures come from aiida-firecrest's pytest plugin (:mod:`aiida_firecrest.pytest_plugin`,
loaded through its ``pytest11`` entry point): ``firecrest_external_config``, ``firecrest_server``,
``firecrest_slurm_server``, ``firecrest_config`` and ``firecrest_computer``. This conftest names the first three as
the suite has always called them (``external_config``, ``local_server``, ``slurm_server``) and adds what only this
suite needs.
"""

from __future__ import annotations

import os
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import firecrest
import pytest
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.pytest_plugin import CONFIG_OPTION
from aiida_firecrest.server import LocalFirecrest
from tests.openapi_contract import ResponseValidator
from tests.remote_files import ClientFiles, DiskFiles, RemoteFiles

pytest_plugins = ['aiida.tools.pytest_fixtures', 'pytester']

REQUIRE_RABBITMQ_ENV = 'FIRECREST_REQUIRE_RABBITMQ'
RABBITMQ_ADDRESS = ('127.0.0.1', 5672)

LOCAL_SERVER_REASON = 'needs the local server (fault switches, request log, backend choice)'
"""Why a test that needs the embedded local server skips against ``--firecrest-config``, unless it says more."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against ``--firecrest-config``, skip the tests marked ``local_server``, with the reason of the marker if any."""
    if config.getoption(CONFIG_OPTION) is None:
        return
    for item in items:
        marker = item.get_closest_marker('local_server')
        if marker is not None:
            reason = marker.kwargs.get('reason') or (marker.args[0] if marker.args else LOCAL_SERVER_REASON)
            item.add_marker(pytest.mark.skip(reason=f'{CONFIG_OPTION}: {reason}'))


def rabbitmq_available() -> bool:
    """Whether a RabbitMQ broker listens on its default local port."""
    try:
        socket.create_connection(RABBITMQ_ADDRESS, timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope='session')
def aiida_profile(aiida_config: Any, aiida_profile_factory: Any) -> Iterator[Any]:
    """The session's AiiDA profile (SQLite), with the local RabbitMQ as its broker when one is running.

    Overrides aiida-core's fixture of the same name, whose profile never has a broker, so that the daemon tests can run.
    """
    broker = 'core.rabbitmq' if rabbitmq_available() else None
    aiida_config.set_option('warnings.rabbitmq_version', False)  # Debian's RabbitMQ 3.10, set up for AiiDA by .ci/
    with aiida_profile_factory(aiida_config, broker_backend=broker) as profile:
        yield profile


@pytest.fixture
def broker_profile(aiida_profile: Any) -> Any:
    """The profile, if it has a broker: skips without RabbitMQ, or fails if ``$FIRECREST_REQUIRE_RABBITMQ`` is set."""
    if aiida_profile.process_control_backend is None:
        if os.environ.get(REQUIRE_RABBITMQ_ENV):
            pytest.fail(f'${REQUIRE_RABBITMQ_ENV} is set but no RabbitMQ listens on {RABBITMQ_ADDRESS}')
        pytest.skip('no RabbitMQ broker is running: the daemon needs one')
    return aiida_profile


@pytest.fixture(scope='session')
def external_config(firecrest_external_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The client configuration given with ``--firecrest-config``, or None for the local server."""
    return firecrest_external_config


@pytest.fixture(scope='session')
def local_server(firecrest_server: LocalFirecrest) -> LocalFirecrest:
    """The embedded local server with the ``local`` job backend and S3 staging; skips against a real deployment.

    It behaves like the real server (:class:`~aiida_firecrest.server.RealismSettings`), with a command timeout of
    :data:`~aiida_firecrest.pytest_plugin.COMMAND_TIMEOUT`.
    """
    return firecrest_server


@pytest.fixture
def upload_job_fails_at_part_two(local_server: LocalFirecrest) -> Iterator[None]:
    """The local server's staged-upload jobs fail at the second part of their object, as the real ones do when a
    part cannot be fetched (``Download failed: part 2``)."""
    local_server.faults.staged_upload_fails_at_part = 2
    try:
        yield
    finally:
        local_server.faults.staged_upload_fails_at_part = None


@pytest.fixture(scope='session')
def slurm_server(firecrest_slurm_server: LocalFirecrest) -> LocalFirecrest:
    """A local server whose job backend is the machine's real Slurm (skips without one, fails instead if
    ``$FIRECREST_REQUIRE_SLURM`` is set)."""
    return firecrest_slurm_server


@pytest.fixture(params=['local', pytest.param('slurm', marks=pytest.mark.slurm)])
def job_backend(request: pytest.FixtureRequest, external_config: dict[str, Any] | None) -> str:
    """Each job backend of the local server in turn: ``local`` (processes), and ``slurm`` where Slurm answers.

    A deployment given with ``--firecrest-config`` has a single scheduler, whatever it is: the tests run against it
    once, as their ``[local]`` parameter, and skip the other.
    """
    if external_config is not None and request.param != 'local':
        pytest.skip(
            f'--firecrest-config: the deployment has a single scheduler, tested once as [local]; '
            f'the {request.param} backend of the local server does not apply'
        )
    return str(request.param)


@pytest.fixture
def any_backend_server(job_backend: str, request: pytest.FixtureRequest) -> LocalFirecrest:
    """The local server with each job backend in turn (skips against ``--firecrest-config``)."""
    return request.getfixturevalue(f'{job_backend}_server')


@pytest.fixture
def server_config(
    job_backend: str, external_config: dict[str, Any] | None, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """What a client needs to reach the server under test with each job backend in turn (the keys of ``serve
    --config-out``): the local server of ``job_backend``, or, once, the deployment of ``--firecrest-config``."""
    if external_config is not None:
        return external_config
    server: LocalFirecrest = request.getfixturevalue(f'{job_backend}_server')
    return server.client_config()


@pytest.fixture(scope='session')
def response_validator(firecrest_config: dict[str, Any]) -> ResponseValidator:
    """Checks every JSON answer of the server under test against the v2 OpenAPI specification."""
    return ResponseValidator(firecrest_config['url'])


SSL_CONTEXT = ssl.create_default_context()
"""One context for all the test clients: building one loads the CA bundle, about 60 ms."""


def _auth(config: dict[str, Any]) -> firecrest.ClientCredentialsAuth:
    return firecrest.ClientCredentialsAuth(
        config['client_id'], config['client_secret'], config['token_uri'], min_token_validity=60
    )


def make_sync_client(config: dict[str, Any], validator: ResponseValidator | None = None) -> Firecrest:
    """Return a pyfirecrest v2 sync client of the server ``config`` describes."""
    client = Firecrest(config['url'], authorization=_auth(config), verify=SSL_CONTEXT)
    client.timeout = 60
    client.num_retries_rate_limit = 3
    if validator is not None:
        validator.install(client._session)
    return client


@pytest.fixture
def sync_client(firecrest_config: dict[str, Any], response_validator: ResponseValidator) -> Iterator[Firecrest]:
    """A pyfirecrest v2 sync client whose every JSON answer is validated against the spec."""
    client = make_sync_client(firecrest_config, response_validator)
    yield client
    client.close_session()


@pytest.fixture
async def async_client(
    firecrest_config: dict[str, Any], response_validator: ResponseValidator
) -> AsyncIterator[AsyncFirecrest]:
    """A pyfirecrest v2 async client whose every JSON answer is validated against the spec."""
    client = AsyncFirecrest(firecrest_config['url'], authorization=_auth(firecrest_config), verify=SSL_CONTEXT)
    client.timeout = 60
    client.num_retries_rate_limit = 3
    response_validator.install(client._session)
    yield client
    await client.close_session()


@pytest.fixture(scope='session')
def remote_files(external_config: dict[str, Any] | None) -> Iterator[RemoteFiles]:
    """The files of the server under test, for tests to build inputs and check results independently of the code under
    test: on this machine's disk for the local server (whatever its backend), through pyfirecrest for a deployment."""
    if external_config is None:
        yield DiskFiles()
        return
    client = make_sync_client(external_config)
    files = ClientFiles(client, external_config)
    yield files
    files.close()
    client.close_session()


@pytest.fixture
def remote_dir(firecrest_config: dict[str, Any], sync_client: Firecrest) -> Iterator[str]:
    """A fresh directory on the server under test, inside its work directory, removed afterwards."""
    path = f'{firecrest_config["workdir"]}/test-{uuid.uuid4().hex[:12]}'
    sync_client.mkdir(firecrest_config['compute_resource'], path, create_parents=True)
    yield path
    sync_client.rm(firecrest_config['compute_resource'], path)
