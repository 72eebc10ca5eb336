"""The gateway's rate limit of the local server: the limiter on a clock of its own, then through HTTP.

The HTTP tests use the session's server, switching a limit on for the test alone (``rate_limit`` fixture); a new
limit starts counting anew.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from firecrest.v2 import Firecrest

from aiida_firecrest.server import LocalFirecrest
from aiida_firecrest.server.cli import serve
from aiida_firecrest.server.ratelimit import RATE_LIMITED_BODY, SlidingWindowLimiter
from aiida_firecrest.server.settings import CSCS_RATE_LIMIT, RateLimit, RateWindow
from tests.server.test_faults_and_log import settled

SYSTEMS = '/status/systems'


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ('text', 'windows'),
    [
        ('10/s,120/min', (RateWindow(10, 1), RateWindow(120, 60))),
        ('120/min, 10/s', (RateWindow(10, 1), RateWindow(120, 60))),
        ('1000/h,5000/day', (RateWindow(1000, 3600), RateWindow(5000, 86400))),
    ],
)
def test_rate_limit_parse(text: str, windows: tuple[RateWindow, ...]) -> None:
    limit = RateLimit.parse(text)
    assert limit.windows == windows
    assert RateLimit.parse(str(limit)) == limit


@pytest.mark.parametrize('text', ['', '10', '10/parsec', '0/s', '-1/s', '10/s,', 'ten/s'])
def test_rate_limit_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match='rate limit'):
        RateLimit.parse(text)


def test_cscs_rate_limit() -> None:
    assert str(CSCS_RATE_LIMIT) == '10/s,120/min'


def test_limiter_refuses_over_the_budget_until_the_oldest_request_leaves() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(RateLimit.parse('3/s'), clock)
    for _ in range(3):
        assert limiter.admit('client').accepted
        clock.now += 0.1
    refused = limiter.admit('client')
    assert not refused.accepted
    assert refused.retry_after == pytest.approx(0.7)
    clock.now += 0.7
    assert limiter.admit('client').accepted


def test_refused_requests_do_not_use_the_budget() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(RateLimit.parse('2/s'), clock)
    assert [limiter.admit('client').accepted for _ in range(5)] == [True, True, False, False, False]
    clock.now += 1.0
    assert [limiter.admit('client').accepted for _ in range(3)] == [True, True, False]


def test_clients_have_budgets_of_their_own() -> None:
    limiter = SlidingWindowLimiter(RateLimit.parse('1/min'), Clock())
    assert [limiter.admit(client).accepted for client in ('a', 'b', 'a', 'b')] == [True, True, False, False]


@pytest.mark.parametrize('seed', range(3))
def test_no_window_anywhere_holds_more_than_its_budget(seed: int) -> None:
    """Requests at random times, many over the budget: whatever instant a window starts at, it holds at most its
    budget of accepted requests (a fixed-window counter would let through up to twice the budget around an edge)."""
    limit = RateLimit.parse('10/s,30/min')
    clock = Clock()
    limiter = SlidingWindowLimiter(limit, clock)
    draws = random.Random(seed)
    accepted = []
    for _ in range(3000):
        clock.now += draws.expovariate(40.0)  # 40 requests per second on average
        if limiter.admit('client').accepted:
            accepted.append(clock.now)
    for window in limit.windows:
        most = max(sum(start <= time < start + window.seconds for time in accepted) for start in accepted)
        assert most == window.requests


def test_headers_of_a_refused_request() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(RateLimit.parse('2/s,3/min'), clock)
    limiter.admit('client')
    clock.now += 0.25
    limiter.admit('client')
    clock.now += 0.5
    headers = dict(limiter.admit('client').headers())
    assert headers == {
        b'ratelimit-limit': b'2',
        b'ratelimit-remaining': b'0',
        b'ratelimit-reset': b'1',
        b'x-ratelimit-limit-second': b'2',
        b'x-ratelimit-remaining-second': b'0',
        b'x-ratelimit-limit-minute': b'3',
        b'x-ratelimit-remaining-minute': b'1',
        b'retry-after': b'1',
    }


def test_retry_after_is_whole_seconds_up() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(RateLimit.parse('1/min'), clock)
    limiter.admit('client')
    clock.now += 10.5
    assert dict(limiter.admit('client').headers())[b'retry-after'] == b'50'


@pytest.fixture
def rate_limit(local_server: LocalFirecrest) -> Iterator[Any]:
    """Set the rate limit of the session's server for the test: call it with the limit's text."""

    def set_limit(text: str) -> RateLimit:
        local_server.settings.rate_limit = RateLimit.parse(text)
        return local_server.settings.rate_limit

    yield set_limit
    local_server.settings.rate_limit = None


def fresh_token(server: LocalFirecrest) -> str:
    """Return a new access token of the server's client."""
    config = server.client_config()
    answer = httpx.post(
        config['token_uri'],
        data={'grant_type': 'client_credentials'},
        auth=(config['client_id'], config['client_secret']),
    )
    answer.raise_for_status()
    return str(answer.json()['access_token'])


@pytest.fixture
def token(local_server: LocalFirecrest) -> str:
    """A new access token of the session server's client."""
    return fresh_token(local_server)


def get_systems(server: LocalFirecrest, token: str, count: int) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url, headers={'Authorization': f'Bearer {token}'}) as client:
        return [client.get(SYSTEMS) for _ in range(count)]


@pytest.mark.local_server
def test_requests_over_the_budget_are_answered_429(local_server: LocalFirecrest, rate_limit: Any, token: str) -> None:
    rate_limit('3/min')
    mark = local_server.request_log.mark()
    answers = get_systems(local_server, token, 4)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].json() == RATE_LIMITED_BODY
    assert 55 <= int(answers[-1].headers['Retry-After']) <= 60
    assert [answer.headers['X-RateLimit-Remaining-Minute'] for answer in answers] == ['2', '1', '0', '0']
    records = settled(local_server, mark, 4)
    assert local_server.request_log.statuses(mark)[429] == 1
    assert {record.client for record in records} == {local_server.settings.client_id}


@pytest.mark.local_server
def test_the_token_endpoint_is_not_limited(local_server: LocalFirecrest, rate_limit: Any) -> None:
    rate_limit('1/min')
    tokens = [fresh_token(local_server) for _ in range(3)]
    assert [answer.status_code for answer in get_systems(local_server, tokens[-1], 2)] == [200, 429]


@pytest.mark.local_server
def test_requests_without_a_valid_token_are_not_counted(
    local_server: LocalFirecrest, rate_limit: Any, token: str
) -> None:
    rate_limit('1/min')
    assert [answer.status_code for answer in get_systems(local_server, 'not-a-token', 2)] == [401, 401]
    assert [answer.status_code for answer in get_systems(local_server, token, 2)] == [200, 429]


@pytest.mark.local_server
def test_without_a_limit_nothing_is_refused_and_no_header_is_sent(local_server: LocalFirecrest, token: str) -> None:
    answers = get_systems(local_server, token, 3)
    assert [answer.status_code for answer in answers] == [200] * 3
    assert not any('RateLimit-Limit' in answer.headers for answer in answers)


@pytest.mark.local_server
def test_pyfirecrest_waits_retry_after(local_server: LocalFirecrest, rate_limit: Any, sync_client: Firecrest) -> None:
    sync_client.systems()  # the token first
    rate_limit('1/s')
    mark = local_server.request_log.mark()
    start = time.monotonic()
    for _ in range(2):
        sync_client.systems()
    assert time.monotonic() - start >= 1.0
    assert [record.status for record in settled(local_server, mark, 3)] == [200, 429, 200]


def test_serve_refuses_a_malformed_rate_limit() -> None:
    result = CliRunner().invoke(serve, ['--rate-limit', '10/parsec'])
    assert result.exit_code == 2
    assert "Invalid value for '--rate-limit'" in result.output
