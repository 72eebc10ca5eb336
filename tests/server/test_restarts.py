"""Restarts of the local server: tokens revoked, the API unavailable for a while; on a server of their own.

A restart revokes every token of its server, so these tests do not restart the session's server, whose tokens other
tests hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aiida_firecrest.server import FaultSettings, LocalFirecrest, ServerSettings
from aiida_firecrest.server.middleware import RESTARTING_BODY, ServerRestarts
from tests.server.test_rate_limit import Clock, fresh_token, get_systems


class Revocations:
    """Counts the revocations asked for."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFirecrest]:
    """A server of this module alone, without S3 staging."""
    with LocalFirecrest(ServerSettings(roots=[tmp_path_factory.mktemp('restarts')]), staging=False) as server:
        yield server


@pytest.mark.local_server
def test_a_restart_revokes_every_token_issued_before(server: LocalFirecrest) -> None:
    token = fresh_token(server)
    assert [answer.status_code for answer in get_systems(server, token, 1)] == [200]
    server.restart()
    [refused] = get_systems(server, token, 1)
    assert (refused.status_code, refused.json()['message']) == (401, 'Access token is invalid.')
    assert [answer.status_code for answer in get_systems(server, fresh_token(server), 1)] == [200]


@pytest.mark.local_server
def test_the_api_is_unavailable_while_restarting(server: LocalFirecrest) -> None:
    server.restart(downtime=60)
    try:
        token = fresh_token(server)  # the token endpoint keeps answering
        [answer] = get_systems(server, token, 1)
        assert (answer.status_code, answer.json()) == (503, RESTARTING_BODY)
    finally:
        server.restart(downtime=0)


@pytest.mark.local_server
def test_restart_interval_is_read_while_the_server_runs(server: LocalFirecrest) -> None:
    server.faults.restart_interval = 0.2
    token = fresh_token(server)  # the first request to see the interval: restarts are counted from it
    try:
        time.sleep(0.3)
        assert [answer.status_code for answer in get_systems(server, token, 1)] == [401]
    finally:
        server.faults.restart_interval = 0.0
    assert server.app.state.restarts.count >= 1


def test_restart_interval_restarts_periodically_from_when_it_is_set() -> None:
    clock, revocations = Clock(), Revocations()
    restarts = ServerRestarts(revocations, clock)
    faults = FaultSettings()
    restarts.restart_if_due(faults)
    clock.now += 100
    faults.restart_interval = 10.0
    restarts.restart_if_due(faults)
    assert revocations.count == 0
    for expected in (0, 1, 1, 2):
        clock.now += 5
        restarts.restart_if_due(faults)
        assert (revocations.count, restarts.count) == (expected, expected)
    faults.restart_interval = 0.0
    clock.now += 100
    restarts.restart_if_due(faults)
    assert revocations.count == 2


@pytest.mark.parametrize(('elapsed', 'down'), [(0.0, True), (2.9, True), (3.0, False)])
def test_restart_downtime(elapsed: float, down: bool) -> None:
    clock = Clock()
    restarts = ServerRestarts(Revocations(), clock)
    faults = FaultSettings(restart_interval=1.0, restart_downtime=3.0)
    restarts.restart_if_due(faults)
    clock.now += 1.0
    restarts.restart_if_due(faults)
    clock.now += elapsed
    assert restarts.down is down
