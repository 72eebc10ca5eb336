"""Fault injection and the request log of the local server, seen through pyfirecrest's v2 clients.

The server is the session's: the ``faults`` fixture switches every fault off again after each test.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import FaultSettings, LocalFirecrest
from aiida_firecrest.server.middleware import DROPPED, RequestRecord
from tests.conftest import make_sync_client
from tests.server.conftest import wait_until

DROPPED_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError)
"""What a client sees of a dropped connection: a closed one, or one reset by the peer (as on a loaded machine)."""

pytestmark = pytest.mark.local_server

SYSTEMS = 'GET /status/systems'
SETTLE_TIMEOUT = 5.0


def settled(server: LocalFirecrest, mark: int, count: int, *, api_only: bool = True) -> list[RequestRecord]:
    """Return the records since ``mark`` once there are ``count`` of them.

    The server logs a request once its answer is sent, so the client may hold the answer a moment before the record.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while len(records := server.request_log.since(mark, api_only=api_only)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return records


@pytest.fixture
def faults(local_server: LocalFirecrest) -> Iterator[FaultSettings]:
    """The fault switches of the session's server, all off again after the test."""
    yield local_server.faults
    for field in dataclasses.fields(FaultSettings):
        setattr(local_server.faults, field.name, field.default)


@pytest.fixture
def mark(local_server: LocalFirecrest, sync_client: Firecrest) -> int:
    """A mark of the request log, taken once ``sync_client`` holds a token and its first request is logged."""
    before = local_server.request_log.mark()
    sync_client.systems()
    settled(local_server, before, 1)
    return local_server.request_log.mark()


def statuses(local_server: LocalFirecrest, mark: int, count: int) -> list[int]:
    """Return the statuses of the ``count`` requests since ``mark``, oldest first."""
    return [record.status for record in settled(local_server, mark, count)]


def refusal(sync_client: Firecrest) -> httpx.Response:
    """Return the answer of ``/status/systems``, which must fail."""
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.systems()
    return info.value.responses[-1]


def test_rate_limit_is_retried_after_retry_after(
    faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int
) -> None:
    """pyfirecrest sleeps ``Retry-After`` seconds after a 429 and tries again."""
    faults.rate_limit_fraction, faults.retry_after = 1.0, 1
    threading.Timer(0.3, setattr, args=(faults, 'rate_limit_fraction', 0.0)).start()
    start = time.monotonic()
    sync_client.systems()
    assert time.monotonic() - start >= faults.retry_after
    assert statuses(local_server, mark, 2) == [429, 200]


async def test_rate_limit_retries_are_bounded(
    faults: FaultSettings, local_server: LocalFirecrest, async_client: AsyncFirecrest, mark: int
) -> None:
    faults.rate_limit_fraction, faults.retry_after = 1.0, 0
    async_client.num_retries_rate_limit = 2
    with pytest.raises(UnexpectedStatusException) as info:
        await async_client.systems()
    response = info.value.responses[-1]
    assert (response.status_code, response.headers['Retry-After']) == (429, '0')
    assert response.json() == {
        'errorType': 'error',
        'message': 'Rate limit exceeded.',
        'causedBy': None,
        'data': None,
        'user': None,
    }
    assert statuses(local_server, mark, 3) == [429, 429, 429]


@pytest.mark.parametrize('status', [500, 503])
def test_server_error(
    faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int, status: int
) -> None:
    """Server errors are answered once: pyfirecrest does not retry them."""
    faults.server_error_fraction, faults.server_error_status = 1.0, status
    response = refusal(sync_client)
    assert (response.status_code, response.json()['message']) == (status, 'Injected server error.')
    assert statuses(local_server, mark, 1) == [status]


def test_server_error_statuses_drawn_from_several(
    faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int
) -> None:
    """With several statuses, each injected error draws one of them (seeded: both come in 20 errors)."""
    faults.server_error_fraction, faults.server_error_status, faults.seed = 1.0, (500, 503), 1
    for _ in range(20):
        refusal(sync_client)
    assert set(statuses(local_server, mark, 20)) == {500, 503}


def test_dropped_connection(faults: FaultSettings, sync_client: Firecrest, mark: int) -> None:
    faults.drop_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        sync_client.systems()
    faults.drop_fraction = 0.0
    assert sync_client.systems(), 'the client recovers on a new connection'


def test_dropped_connection_is_logged_as_dropped(
    faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int
) -> None:
    faults.drop_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        sync_client.systems()
    [record] = settled(local_server, mark, 1)
    assert (record.status, record.dropped) == (DROPPED, True)
    assert local_server.request_log.statuses(mark) == Counter({DROPPED: 1})


def test_drop_before_acting_does_nothing(faults: FaultSettings, sync_client: Firecrest, local_dir: Path) -> None:
    faults.drop_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        sync_client.mkdir('cluster', str(local_dir / 'made'))
    assert not (local_dir / 'made').exists()


def test_drop_after_acting_acts(
    faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int, local_dir: Path
) -> None:
    faults.drop_after_acting_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        sync_client.mkdir('cluster', str(local_dir / 'made'))
    assert (local_dir / 'made').is_dir()
    [record] = settled(local_server, mark, 1)
    assert (record.endpoint, record.status) == ('POST /filesystem/{system_name}/ops/mkdir', DROPPED)


def test_submit_whose_answer_is_lost_runs_its_job(
    faults: FaultSettings, sync_client: Firecrest, local_dir: Path
) -> None:
    """The client sees a dropped connection, and the job exists all the same: submitting again would double it."""
    faults.drop_after_acting_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        sync_client.submit('cluster', str(local_dir), script_str=f'#!/bin/bash\ntouch {local_dir}/ran\n')
    wait_until((local_dir / 'ran').exists, what='the job whose submission answer was lost')


async def test_dropped_connection_async(faults: FaultSettings, async_client: AsyncFirecrest) -> None:
    await async_client.systems()  # the token request first: the token endpoint is never faulted anyway
    faults.drop_fraction = 1.0
    with pytest.raises(DROPPED_CONNECTION):
        await async_client.systems()


def test_delay(faults: FaultSettings, local_server: LocalFirecrest, sync_client: Firecrest, mark: int) -> None:
    faults.delay_fraction, faults.delay = 1.0, 0.3
    start = time.monotonic()
    sync_client.systems()
    assert time.monotonic() - start >= 0.3
    [record] = settled(local_server, mark, 1)
    assert record.duration >= 0.3


def test_token_endpoint_is_never_faulted(
    faults: FaultSettings, local_server: LocalFirecrest, firecrest_config: dict[str, Any]
) -> None:
    faults.server_error_fraction = 1.0
    mark = local_server.request_log.mark()
    client = make_sync_client(firecrest_config)
    assert refusal(client).status_code == 503
    records = settled(local_server, mark, 2, api_only=False)
    assert [(record.endpoint, record.status) for record in records] == [('POST /auth/token', 200), (SYSTEMS, 503)]
    client.close_session()


def outcomes(sync_client: Firecrest, count: int) -> list[bool]:
    """Call ``/status/systems`` ``count`` times; return which calls failed."""
    failed = []
    for _ in range(count):
        try:
            sync_client.systems()
        except UnexpectedStatusException:
            failed.append(True)
        else:
            failed.append(False)
    return failed


def test_seed_makes_faults_reproducible(faults: FaultSettings, sync_client: Firecrest, mark: int) -> None:
    """With a seed, the same requests meet the same faults: one draw per switched-on fault and request."""
    faults.server_error_fraction, faults.seed = 0.5, 1234
    first = outcomes(sync_client, 16)
    faults.seed = 4321
    other = outcomes(sync_client, 16)
    faults.seed = 1234
    assert outcomes(sync_client, 16) == first != other
    draws = random.Random(1234)
    assert first == [draws.random() < 0.5 for _ in range(16)]


def test_request_log(
    local_server: LocalFirecrest, sync_client: Firecrest, firecrest_config: dict[str, Any], mark: int
) -> None:
    """The log counts requests per route template, and records each one's path, status and duration."""
    system, workdir = firecrest_config['compute_resource'], firecrest_config['workdir']
    for _ in range(3):
        sync_client.list_files(system, workdir)
    with pytest.raises(UnexpectedStatusException):
        sync_client.stat(system, f'{workdir}/missing')
    records = settled(local_server, mark, 4)
    assert [(record.path, record.status) for record in records] == [(f'/filesystem/{system}/ops/ls', 200)] * 3 + [
        (f'/filesystem/{system}/ops/stat', 404)
    ]
    assert all(record.duration > 0 and record.is_api for record in records)
    log = local_server.request_log
    assert log.counts(mark) == Counter(
        {'GET /filesystem/{system_name}/ops/ls': 3, 'GET /filesystem/{system_name}/ops/stat': 1}
    )
    assert log.since(log.mark()) == []


def test_request_log_of_unmatched_paths(local_server: LocalFirecrest, firecrest_config: dict[str, Any]) -> None:
    """A path that no route serves is logged under the path itself (and answered with the error envelope)."""
    mark = local_server.request_log.mark()
    response = httpx.get(f'{firecrest_config["url"]}/no/such/route')
    assert (response.status_code, response.json()['errorType']) == (404, 'error')
    [record] = settled(local_server, mark, 1)
    assert (record.route, record.endpoint) == ('/no/such/route', 'GET /no/such/route')
