"""The client-side request budget, its hooks in the HTTP client, and the bounded retries."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from aiida_firecrest.client import request_budget as ratelimit
from aiida_firecrest.client.exceptions import FirecrestApiError, RateLimitedError, translate_errors
from aiida_firecrest.client.firecrest_client import FirecrestClient
from aiida_firecrest.client.request_budget import LoopLocalLock, RequestBudget, shared_budget

URL = 'https://firecrest.test/api'


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A frozen monotonic clock of the rate limiter; advance it with ``clock[0] += seconds``."""
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, 'monotonic', lambda: now[0])
    return now


def test_burst_then_pace_per_second(clock: list[float]) -> None:
    budget = RequestBudget(per_second=10)
    assert [budget.reserve() for _ in range(10)] == [0.0] * 10
    assert budget.reserve() == pytest.approx(0.1)
    assert budget.reserve() == pytest.approx(0.2)
    clock[0] += 1.3  # the two reserved slots, then ten more tokens... capped at the burst of 10
    assert [budget.reserve() for _ in range(10)] == [0.0] * 10


def test_per_minute_limit(clock: list[float]) -> None:
    """CSCS: 10 per second and 120 per minute; sustained, the minute limit (refilled at 2 per second) wins.

    A caller sending 10 per second has 120 + 2 t tokens after t seconds and has used 10 t: they run out at 15 s.
    """
    budget = RequestBudget(per_second=10, per_minute=120)
    delays = []
    for _ in range(200):
        delays.append(budget.reserve())
        clock[0] += 0.1
    assert max(delays[:148]) == pytest.approx(0.0)
    assert delays[-1] > 3.0


def test_no_limit(clock: list[float]) -> None:
    budget = RequestBudget(per_second=0, per_minute=0)
    assert all(budget.reserve() == 0 for _ in range(10_000))


def test_pause_holds_back_everything(clock: list[float]) -> None:
    budget = RequestBudget(per_second=100)
    budget.pause(2.0)
    assert budget.reserve() == pytest.approx(2.0)
    clock[0] += 2.0
    assert budget.reserve() == 0.0


def test_shared_per_url_and_client_and_reconfigured() -> None:
    one = shared_budget(URL, 'client', 10, 120)
    assert shared_budget(URL + '/', 'client', 10, 120) is one
    assert shared_budget(URL, 'other', 10, 120) is not one
    shared_budget(URL, 'client', 5, 0)
    assert one.limits == (5.0, 0.0)


async def test_acquire_sleeps_on_the_loop() -> None:
    budget = RequestBudget(per_second=20)
    start = time.monotonic()
    await asyncio.gather(*(budget.acquire() for _ in range(30)))
    assert time.monotonic() - start >= 0.45


def test_loop_local_lock_serves_several_loops() -> None:
    lock = LoopLocalLock()
    results: list[int] = []

    async def use(value: int) -> None:
        async with lock:
            await asyncio.sleep(0.01)
            results.append(value)

    async def many(base: int) -> None:
        await asyncio.gather(*(use(base + index) for index in range(5)))

    threads = [threading.Thread(target=asyncio.run, args=(many(base),)) for base in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [*range(5), *range(100, 105)]


# --- the hooks and retries of the HTTP client ---------------------------------------------------------------------


class CountingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(per_second=0)
        self.acquired = 0
        self.paused: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


class FakeAuth:
    def __init__(self) -> None:
        self.tokens = ['first', 'second']
        self.invalidated: list[str] = []

    async def auth_headers(self) -> dict[str, str]:
        return {'Authorization': f'Bearer {self.tokens[0]}'}

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        self.tokens.pop(0)


def make_client(handler: Any, budget: RequestBudget | None = None, auth: Any = None) -> FirecrestClient:
    return FirecrestClient(
        URL,
        auth or FakeAuth(),
        budget=budget or CountingBudget(),
        timeout=7.0,
        verify=False,
        http_transport=httpx.MockTransport(handler),
    )


STAT = {'output': {'mode': 33188, 'size': 1, 'uid': 0, 'gid': 0, 'atime': 0, 'mtime': 0, 'ctime': 0}}


async def test_budget_applies_to_api_urls_only() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions['timeout'])
        return httpx.Response(200, json=STAT)

    budget = CountingBudget()
    client = make_client(handler, budget)
    await client.stat('cluster', '/f')
    await client._session.get('https://s3.test/bucket/object?X-Amz-Signature=x', timeout=None)
    assert budget.acquired == 1
    # pyfirecrest passes timeout=None (S3 parts) or its own; neither may mean 'wait forever'
    assert all(value == 7.0 for timeout in seen for value in timeout.values())
    await client.close_session()


async def test_429_is_retried_a_bounded_number_of_times_honouring_retry_after() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, json={'message': 'Rate limit exceeded.'}, headers={'Retry-After': '0'})

    budget = CountingBudget()
    client = make_client(handler, budget)
    with pytest.raises(RateLimitedError), translate_errors('/f'):
        await client.stat('cluster', '/f')
    assert len(calls) == 1 + 3
    assert budget.paused == [0, 0, 0, 0]
    await client.close_session()


async def test_429_then_success() -> None:
    answers = [httpx.Response(429, headers={'Retry-After': '0'}), httpx.Response(200, json=STAT)]
    client = make_client(lambda request: answers.pop(0))
    assert (await client.stat('cluster', '/f'))['size'] == 1
    await client.close_session()


async def test_401_is_retried_once_with_a_fresh_token() -> None:
    tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers['Authorization'])
        if request.headers['Authorization'] == 'Bearer first':
            return httpx.Response(401, json={'message': 'Access token expires too soon.'})
        return httpx.Response(200, json=STAT)

    authority = FakeAuth()
    client = make_client(handler, auth=authority)
    await client.stat('cluster', '/f')
    assert tokens == ['Bearer first', 'Bearer second']
    assert authority.invalidated == ['first']
    await client.close_session()


async def test_idempotent_get_retried_after_503_but_not_post() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3 or request.method == 'POST':
            return httpx.Response(503, json={'message': 'Injected server error.'})
        return httpx.Response(200, json=STAT)

    client = make_client(handler)
    await client.stat('cluster', '/f')
    assert calls == ['GET', 'GET', 'GET']
    with pytest.raises(FirecrestApiError), translate_errors('/d'):
        await client.mkdir('cluster', '/d')
    assert calls[3:] == ['POST']
    await client.close_session()


# --- with the local server -----------------------------------------------------------------------------------------


async def test_transport_requests_are_paced(firecrest_transport: Any, firecrest_config: dict[str, Any]) -> None:
    async with firecrest_transport(requests_per_second=5, requests_per_minute=0) as transport:
        workdir = firecrest_config['workdir']
        await transport.path_exists_async(workdir)
        start = time.monotonic()
        await asyncio.gather(*(transport.path_exists_async(workdir) for _ in range(10)))
        elapsed = time.monotonic() - start
    assert elapsed >= 0.9  # the burst of 5 was mostly spent; 10 more at 5 per second


@pytest.mark.local_server(reason='switches on the rate-limit fault of the local server')
async def test_server_429_ends_in_rate_limited_error(
    firecrest_transport: Any, firecrest_config: dict[str, Any], local_server: Any, count_requests: Any
) -> None:
    async with firecrest_transport() as transport:
        await transport.whoami_async()
        local_server.faults.retry_after = 0
        local_server.faults.rate_limit_fraction = 1.0
        try:
            async with count_requests() as counted:
                with pytest.raises(RateLimitedError):
                    await transport.path_exists_async(firecrest_config['workdir'])
        finally:
            local_server.faults.rate_limit_fraction = 0.0
            local_server.faults.retry_after = 1
    assert counted.total == 4
