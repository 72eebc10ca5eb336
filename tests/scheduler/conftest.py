"""Fixtures of the scheduler tests: a FirecREST scheduler with an open FirecREST transport, for each job backend.

``firecrest_scheduler`` is a :class:`~aiida_firecrest.scheduler.FirecrestScheduler` whose transport is open on the
local server with each job backend in turn (``local``, and ``slurm`` where a Slurm controller answers).
``scheduler_workdir`` is a fresh directory inside that server's work directory (the local server shares this
machine's file system, so tests may also look at it directly).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.scheduler import FirecrestScheduler
from aiida_firecrest.server import LocalFirecrest

REQUESTS_PER_SECOND = 100.0
"""The client-side request budget of the test transports (the local server does not throttle)."""


@pytest.fixture
def scheduler_server(any_backend_server: LocalFirecrest) -> LocalFirecrest:
    """The local server under test, with each job backend in turn."""
    return any_backend_server


@pytest.fixture
def transport_params(scheduler_server: LocalFirecrest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The options of a FirecREST transport of ``scheduler_server``, the secret in an owner-only file."""
    config = scheduler_server.client_config()
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
    """A FirecREST scheduler whose FirecREST transport is open on ``scheduler_server``."""
    from aiida_firecrest.transport import FirecrestTransport

    transport = FirecrestTransport(**transport_params)
    with transport:
        scheduler = FirecrestScheduler()
        scheduler.set_transport(transport)
        yield scheduler


@pytest.fixture
def scheduler_workdir(scheduler_server: LocalFirecrest) -> Iterator[Path]:
    """A fresh directory inside the work directory of ``scheduler_server``, removed afterwards."""
    path = Path(scheduler_server.client_config()['workdir']) / f'sched-{uuid.uuid4().hex[:12]}'
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
