"""The client-side request budget, its hooks in the HTTP client, and the bounded retries."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
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
from tests.client_fakes import Budget

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


def take_answered(budget: RequestBudget, clock: list[float], slot: str, latency: float = 0.0) -> float:
    """Take a slot; if it was given, answer its request ``latency`` seconds later (the clock moves on)."""
    delay = budget.take(slot)
    if delay == 0:
        clock[0] += latency
        budget.settle(slot, answered=True)
    return delay


def test_burst_then_pace_per_second(clock: list[float], budget_file: Path) -> None:
    """Ten requests at once; the eleventh may leave a second after the first answers, not a second after it left."""
    budget = RequestBudget(budget_file, per_second=10)
    assert [take_answered(budget, clock, f'{index}', latency=0.002) for index in range(10)] == [0.0] * 10
    assert budget.take('next') == pytest.approx(1.0 - 9 * 0.002)  # the first answer came 2 ms after it left
    assert budget.take('next') == pytest.approx(1.0 - 9 * 0.002)  # a refused caller takes nothing


def test_unanswered_request_counts_until_answered(clock: list[float], budget_file: Path) -> None:
    """The server counts a request when it arrives, which an unanswered request may not have done yet."""
    budget = RequestBudget(budget_file, per_second=1)
    assert budget.take('slow') == 0.0
    clock[0] += 30.0
    assert budget.take('next') == pytest.approx(1.0)
    budget.settle('slow', answered=True)
    assert budget.take('next') == pytest.approx(1.0)  # it may have arrived just now
    clock[0] += 1.0
    assert budget.take('next') == 0.0


def test_request_ended_without_answer_counts_longer(clock: list[float], budget_file: Path) -> None:
    """A request that lost its connection may still reach a busy server a little later."""
    budget = RequestBudget(budget_file, per_second=1)
    budget.take('lost')
    budget.settle('lost', answered=False)
    assert budget.take('next') == pytest.approx(1.0 + ratelimit.UNANSWERED_ARRIVAL)
    budget.settle('lost', answered=True)  # a slot keeps its first end
    assert budget.take('next') == pytest.approx(1.0 + ratelimit.UNANSWERED_ARRIVAL)


def test_unanswered_request_of_an_ended_process_ends(clock: list[float], budget_file: Path) -> None:
    ended = subprocess.Popen(['true'])
    ended.wait()
    budget_file.parent.mkdir(parents=True)
    budget_file.write_text(json.dumps({'sent': [[clock[0], None, ended.pid, 'left']], 'paused_until': 0.0}))
    budget = RequestBudget(budget_file, per_second=1)
    assert budget.take('next') == pytest.approx(1.0 + ratelimit.UNANSWERED_ARRIVAL)


@pytest.mark.parametrize(('per_second', 'per_minute'), [(10, 120), (10, 0), (0, 30), (3.5, 25)])
@pytest.mark.parametrize('latency', [0.0, 0.05, 0.7])
def test_no_window_over_the_limits(
    clock: list[float], budget_file: Path, per_second: float, per_minute: float, latency: float
) -> None:
    """However often callers ask (every 20 ms for a minute) and however late answers come, no window of the server
    can hold more than the limits, whether the requests arrived when they left or when they were answered; and the
    limits are used."""
    budget = RequestBudget(budget_file, per_second, per_minute)
    sent: list[float] = []
    answered: list[float] = []
    for _ in range(3000):
        while len(answered) < len(sent) and clock[0] >= sent[len(answered)] + latency:
            budget.settle(f'{len(answered)}', answered=True)
            answered.append(clock[0])
        if budget.take(f'{len(sent)}') == 0:
            sent.append(clock[0])
        clock[0] += 0.02
    for arrivals in (sent, answered):
        if per_second:
            assert most_in_any_window(arrivals, 1.0) <= int(per_second)
        if per_minute:
            assert most_in_any_window(arrivals, 60.0) <= int(per_minute)
    if per_second:
        assert most_in_any_window(sent, 1.0) == int(per_second)
    if per_minute:
        assert most_in_any_window(sent, 60.0) == int(per_minute)


def test_budget_file_is_private(budget_file: Path) -> None:
    RequestBudget(budget_file, per_second=10).take('one')
    assert stat.S_IMODE(budget_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(budget_file.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize('content', ['{"sent": [1000.0, 10', '{"sent": [999.5, 999.6], "paused_until": 0.0}'])
def test_damaged_or_older_file_is_an_empty_log(clock: list[float], budget_file: Path, content: str) -> None:
    budget_file.parent.mkdir(parents=True)
    budget_file.write_text(content)
    assert RequestBudget(budget_file, per_second=1).take('one') == 0.0


def test_budgets_of_one_file_share_the_limit(clock: list[float], budget_file: Path) -> None:
    """Two budgets on one file (as two processes have) hand out one sequence of slots."""
    first, second = RequestBudget(budget_file, per_second=2), RequestBudget(budget_file, per_second=2)
    assert [take_answered(first, clock, 'a'), take_answered(second, clock, 'b')] == [0.0, 0.0]
    assert second.take('c') == pytest.approx(1.0)


def test_no_limit(clock: list[float], budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=0, per_minute=0)
    assert all(budget.take(f'{index}') == 0 for index in range(1000))


def test_pause_holds_back_everything(clock: list[float], budget_file: Path) -> None:
    budget = RequestBudget(budget_file, per_second=100)
    budget.pause(2.0)
    assert RequestBudget(budget_file, per_second=0).take('a') == pytest.approx(2.0)
    assert budget.take('a') == pytest.approx(2.0)
    clock[0] += 2.0
    assert budget.take('a') == 0.0


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

    async def request() -> None:
        budget.settle(await budget.acquire(), answered=True)

    start = time.monotonic()
    await asyncio.gather(*(request() for _ in range(30)))
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


class CountingBudget(Budget):
    def __init__(self) -> None:
        super().__init__()
        self.paused: list[float] = []

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


class SettlingBudget(Budget):
    """Records how the client settled each slot."""

    def __init__(self) -> None:
        super().__init__()
        self.settled: list[tuple[str, bool]] = []

    def settle(self, slot: str, *, answered: bool) -> None:
        self.settled.append((slot, answered))


async def test_client_settles_every_slot_once_answered_or_not() -> None:
    """The budget learns when each request reached the server by: its answer, or its end without one (a lost
    connection, then a repeat that is answered; a request cancelled while the server works)."""
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError('connection refused', request=request)
        if len(calls) == 3:
            await asyncio.sleep(60)
        return httpx.Response(200, json=STAT)

    budget = SettlingBudget()
    client = make_client(handler, budget)
    await client.stat('cluster', '/f')
    assert budget.settled == [('slot-1', False), ('slot-2', True)]
    request = asyncio.ensure_future(client.stat('cluster', '/f'))
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert budget.settled[2:] == [('slot-3', False)]
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
