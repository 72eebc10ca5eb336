"""Fixtures of the scheduler tests: a FirecREST scheduler with an open FirecREST transport, for each job backend.

``firecrest_scheduler`` is a :class:`~aiida_firecrest.scheduler.FirecrestScheduler` whose transport is open on the
server under test: the local server with each job backend in turn (``local``, and ``slurm`` where a Slurm controller
answers), or once the deployment of ``--firecrest-config``. ``scheduler_workdir`` is a fresh directory inside that
server's work directory, whose files the tests read through ``remote_files``. ``log_server`` is the local server whose
request log a test reads, or None against a deployment (which has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aiida_firecrest.scheduler import FirecrestScheduler
from aiida_firecrest.server import LocalFirecrest
from tests.remote_files import RemoteFiles, RemotePath

REQUESTS_PER_SECOND = 100.0
"""The client-side request budget of the test transports (the local server does not throttle)."""


@pytest.fixture
def scheduler_server(any_backend_server: LocalFirecrest) -> LocalFirecrest:
    """The local server under test, with each job backend in turn (skips against ``--firecrest-config``)."""
    return any_backend_server


@pytest.fixture
def log_server(external_config: dict[str, Any] | None, request: pytest.FixtureRequest) -> LocalFirecrest | None:
    """The local server under test, whose request log pins the requests of a test; None against a deployment of
    ``--firecrest-config``, where only what the test observes on the deployment is checked."""
    if external_config is not None:
        return None
    server: LocalFirecrest = request.getfixturevalue('scheduler_server')
    return server


@pytest.fixture
def transport_params(server_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The options of a FirecREST transport of the server under test, the secret in an owner-only file."""
    config = server_config
    secret = tmp_path_factory.mktemp('scheduler-secret') / 'client_secret'
    secret.touch(mode=0o600)
    secret.chmod(0o600)
    secret.write_text(config['client_secret'])
    return {
        'machine': 'localhost',
        'url': config['url'],
        'token_uri': config['token_uri'],
        'client_id': config['client_id'],
        'client_secret': str(secret),
        'compute_resource': config['compute_resource'],
        'temp_directory': config['temp_directory'],
        'billing_account': config.get('billing_account') or '',
        'requests_per_second': REQUESTS_PER_SECOND,
    }


@pytest.fixture
def firecrest_scheduler(aiida_profile: Any, transport_params: dict[str, Any]) -> Iterator[FirecrestScheduler]:
    """A FirecREST scheduler whose FirecREST transport is open on the server under test."""
    from aiida_firecrest.transport import FirecrestTransport

    transport = FirecrestTransport(**transport_params)
    with transport:
        scheduler = FirecrestScheduler()
        scheduler.set_transport(transport)
        yield scheduler


@pytest.fixture
def scheduler_workdir(server_config: dict[str, Any], remote_files: RemoteFiles) -> Iterator[RemotePath]:
    """A fresh directory inside the work directory of the server under test, removed afterwards."""
    path = remote_files.scratch(server_config['workdir'], prefix='sched')
    yield path
    remote_files.remove(path)
