"""Fixtures of the server's tests: clients of each job backend's server, job directories and polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import firecrest
import pytest
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import LocalFirecrest
from tests.conftest import make_sync_client
from tests.openapi_contract import ResponseValidator

POLL_INTERVAL = 0.2
WAIT_TIMEOUT = 60.0
"""Seconds a test waits for a job state, a file... before failing (Slurm takes a few seconds per job)."""

T = TypeVar('T')


def make_async_client(server: LocalFirecrest) -> AsyncFirecrest:
    """Return a pyfirecrest v2 async client of ``server`` whose every JSON answer is validated against the spec."""
    config = server.client_config()
    auth = firecrest.ClientCredentialsAuth(
        config['client_id'], config['client_secret'], config['token_uri'], min_token_validity=60
    )
    client = AsyncFirecrest(config['url'], authorization=auth)
    client.timeout = 60
    client.num_retries_rate_limit = 3
    ResponseValidator(config['url']).install(client._session)
    return client


@pytest.fixture
def backend_sync_client(any_backend_server: LocalFirecrest) -> Iterator[Firecrest]:
    """A validated pyfirecrest sync client of the server of each job backend in turn."""
    client = make_sync_client(any_backend_server.client_config(), ResponseValidator(any_backend_server.url))
    yield client
    client.close_session()


@pytest.fixture
async def backend_async_client(any_backend_server: LocalFirecrest) -> AsyncIterator[AsyncFirecrest]:
    """A validated pyfirecrest async client of the server of each job backend in turn."""
    client = make_async_client(any_backend_server)
    yield client
    await client.close_session()


@pytest.fixture
def slurm_sync_client(slurm_server: LocalFirecrest) -> Iterator[Firecrest]:
    """A validated pyfirecrest sync client of the server with the Slurm backend."""
    client = make_sync_client(slurm_server.client_config(), ResponseValidator(slurm_server.url))
    yield client
    client.close_session()


@pytest.fixture
def job_dir(any_backend_server: LocalFirecrest) -> Iterator[Path]:
    """A fresh directory in the work directory of the server of each job backend, removed afterwards."""
    path = Path(any_backend_server.client_config()['workdir']) / f'test-{uuid.uuid4().hex[:12]}'
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def staged_client(local_server: LocalFirecrest) -> Iterator[Firecrest]:
    """A pyfirecrest client of the session's server that stages every upload."""
    client = make_sync_client(local_server.client_config())
    client.MAX_DIRECT_UPLOAD_SIZE = 0
    yield client
    client.close_session()


@pytest.fixture
def local_dir(local_server: LocalFirecrest) -> Iterator[Path]:
    """A fresh directory in the work directory of the local server, removed afterwards."""
    path = Path(local_server.client_config()['workdir']) / f'test-{uuid.uuid4().hex[:12]}'
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def realism(server: LocalFirecrest, **changes: Any) -> Iterator[None]:
    """Change fields of the ``RealismSettings`` of a running server (e.g. ``jobs_list_gap=0.0``) within the block."""
    previous = server.settings.realism
    server.settings.realism = dataclasses.replace(previous, **changes)
    try:
        yield
    finally:
        server.settings.realism = previous


def wait_until(condition: Callable[[], T | None], timeout: float = WAIT_TIMEOUT, what: str = 'the condition') -> T:
    """Poll ``condition`` until it returns something other than None or False, and return that; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout} s waiting for {what}')
        time.sleep(POLL_INTERVAL)


async def async_wait_until(
    condition: Callable[[], Awaitable[T | None]], timeout: float = WAIT_TIMEOUT, what: str = 'the condition'
) -> T:
    """The async twin of :func:`wait_until`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout} s waiting for {what}')
        await asyncio.sleep(POLL_INTERVAL)


def job_in_state(client: Firecrest, job_id: str, *states: str) -> Callable[[], dict[str, Any] | None]:
    """Return a condition for :func:`wait_until`: the job, once its state starts with one of ``states``."""

    def condition() -> dict[str, Any] | None:
        job: dict[str, Any] = client.job_info('cluster', job_id)[0]
        return job if job['status']['state'].startswith(states) else None

    return condition


def async_job_in_state(
    client: AsyncFirecrest, job_id: str, *states: str
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """The async twin of :func:`job_in_state`."""

    async def condition() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.job_info('cluster', job_id))[0]
        return job if job['status']['state'].startswith(states) else None

    return condition
