"""The client-side request budget, its hooks in the HTTP client, and the bounded retries."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiida_firecrest.client import request_budget as ratelimit
from aiida_firecrest.client.exceptions import FirecrestApiError, RateLimitedError, translate_errors
from aiida_firecrest.client.firecrest_client import FirecrestClient
from aiida_firecrest.client.request_budget import LoopLocalLock, RequestBudget, shared_budget
from aiida_firecrest.transport.options import request_limits

URL = 'https://firecrest.test/api'


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A frozen clock of the request budget; advance it with ``clock[0] += seconds``."""
    now = [1000.0]
    monkeypatch.setattr(time, 'time', lambda: now[0])
    return now


@pytest.fixture
def budget_file(tmp_path: Path) -> Path:
    """A budget file of this test alone."""
    return tmp_path / 'budgets' / 'client.json'


def most_in_any_window(moments: list[float], window: float) -> int:
    """The most moments that any window of ``window`` seconds holds (windows closed on both ends: the strictest)."""
    return max(sum(1 for other in moments if start <= other <= start + window) for start in moments)


def test_burst_then_pace_per_second(clock: list[float], budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=10)
    assert [budget.take() for _ in range(10)] == [0.0] * 10
    assert budget.take() == pytest.approx(1 + ratelimit.WINDOW_MARGIN)
    assert budget.take() == pytest.approx(1 + ratelimit.WINDOW_MARGIN)  # a refused caller takes nothing


@pytest.mark.parametrize(('per_second', 'per_minute'), [(10, 120), (10, 0), (0, 30), (3.5, 25)])
def test_no_window_over_the_limits(clock: list[float], budget_file: Path, per_second: float, per_minute: float) -> None:
    """However often callers ask (every 20 ms for a minute), the slots taken keep every 1 s and 60 s window within the
    limits, and use them."""
    budget = RequestBudget(budget_file, per_second, per_minute)
    moments = []
    for _ in range(3000):
        if budget.take() == 0:
            moments.append(clock[0])
        clock[0] += 0.02
    if per_second:
        assert most_in_any_window(moments, 1.0) == int(per_second)
    if per_minute:
        assert most_in_any_window(moments, 60.0) == int(per_minute)


def test_budget_file_is_private(budget_file: Path) -> None:
    RequestBudget(budget_file, per_second=10).take()
    assert stat.S_IMODE(budget_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(budget_file.parent.stat().st_mode) == 0o700


def test_damaged_file_is_an_empty_log(clock: list[float], budget_file: Path) -> None:
    budget_file.parent.mkdir(parents=True)
    budget_file.write_text('{"sent": [1000.0, 10')
    assert RequestBudget(budget_file, per_second=1).take() == 0.0


def test_budgets_of_one_file_share_the_limit(clock: list[float], budget_file: Path) -> None:
    """Two budgets on one file (as two processes have) hand out one sequence of slots."""
    first, second = RequestBudget(budget_file, per_second=2), RequestBudget(budget_file, per_second=2)
    assert [first.take(), second.take()] == [0.0, 0.0]
    assert second.take() == pytest.approx(1 + ratelimit.WINDOW_MARGIN)


def test_no_limit(clock: list[float], budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=0, per_minute=0)
    assert all(budget.take() == 0 for _ in range(1000))


def test_pause_holds_back_everything(clock: list[float], budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=100)
    budget.pause(2.0)
    assert RequestBudget(budget_file, per_second=0).take() == pytest.approx(2.0)
    assert budget.take() == pytest.approx(2.0)
    clock[0] += 2.0
    assert budget.take() == 0.0


def test_shared_per_url_and_client_and_reconfigured(tmp_path: Path) -> None:
    one = shared_budget(URL, 'client', 10, 120, directory=tmp_path)
    assert shared_budget(URL + '/', 'client', 10, 120, directory=tmp_path) is one
    other = shared_budget(URL, 'other', 10, 120, directory=tmp_path)
    assert other is not one
    assert other.path != one.path
    shared_budget(URL, 'client', 5, 0, directory=tmp_path)
    assert one.limits == (5.0, 0.0)


@pytest.mark.parametrize(
    ('options', 'limits'),
    [
        ({}, (10.0, 120.0)),
        ({'budget_share': 0.25}, (2.5, 30.0)),
        ({'requests_per_second': 4, 'requests_per_minute': 0, 'budget_share': 0.5}, (2.0, 0.0)),
    ],
)
def test_request_limits_take_the_share_of_this_machine(options: dict[str, Any], limits: tuple[float, float]) -> None:
    assert request_limits(options) == limits


@pytest.mark.parametrize('share', [0, -0.5, 1.5])
def test_request_limits_refuse_a_share_outside_0_1(share: float) -> None:
    with pytest.raises(ValueError, match='budget_share'):
        request_limits({'budget_share': share})


async def test_acquire_sleeps_on_the_loop(budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=20)
    start = time.monotonic()
    await asyncio.gather(*(budget.acquire() for _ in range(30)))
    assert time.monotonic() - start >= 1.0


def test_loop_local_lock_serves_several_loops() -> None:
    lock = LoopLocalLock()
    results: list[int] = []

    async def use(value: int) -> None:
        async with lock:
            await asyncio.sleep(0.01)
            results.append(value)

    async def many(base: int) -> None:
        await asyncio.gather(*(use(base + index) for index in range(5)))

    def in_a_loop_of_its_own(base: int) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(many(base))
        finally:
            loop.close()

    threads = [threading.Thread(target=in_a_loop_of_its_own, args=(base,)) for base in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [*range(5), *range(100, 105)]


# --- the hooks and retries of the HTTP client ---------------------------------------------------------------------


class CountingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(Path('/nonexistent/budget.json'), per_second=0)
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


async def test_idempotent_get_retried_after_503_but_not_a_submission() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3 or request.method == 'POST':
            return httpx.Response(503, json={'message': 'Injected server error.'})
        return httpx.Response(200, json=STAT)

    client = make_client(handler)
    await client.stat('cluster', '/f')
    assert calls == ['GET', 'GET', 'GET']
    with pytest.raises(FirecrestApiError), translate_errors():
        await client.submit('cluster', working_dir='/w', script_remote_path='/w/job.sh')
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
