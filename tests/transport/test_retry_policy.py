"""The retry policy: which requests are repeated after which failures, the back-off, and the client that applies them.

The client is tested on :class:`httpx.MockTransport` (one behaviour per test, no server); the transport on the local
server's fault switches (seeded): answers lost after the server acted, and a restart that revokes every token.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiida_firecrest.client import firecrest_client
from aiida_firecrest.client.exceptions import FirecrestApiError, PathExistsError, translate_errors
from aiida_firecrest.client.firecrest_client import FirecrestClient
from aiida_firecrest.client.request_budget import RequestBudget
from aiida_firecrest.client.retry_policy import (
    Backoff,
    Failure,
    Repeat,
    failure_of_answer,
    failure_of_error,
    operation_of,
)
from aiida_firecrest.client.server_facts import FACTS
from aiida_firecrest.server import LocalFirecrest, ServerSettings
from aiida_firecrest.server.middleware import DROPPED
from tests.client_fakes import Auth, Budget

URL = 'https://firecrest.test'
FAST = Backoff(attempts=3, base=0.001, cap=0.001)
CHANNEL_CLOSED = "('Channel not open for sending',)"


def make_client(handler: Callable[[httpx.Request], httpx.Response], budget: RequestBudget | None = None) -> Any:
    return FirecrestClient(
        URL,
        Auth(),
        budget=budget or Budget(),
        timeout=5.0,
        verify=False,
        http_transport=httpx.MockTransport(handler),
        backoff=FAST,
        rng=random.Random(1),
    )


def scripted(*answers: httpx.Response | Exception) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A handler giving ``answers`` in turn (an exception is raised), and the list of requests it saw."""
    queue = list(answers)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f'{request.method} {request.url.path}')
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def dropped() -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError('Server disconnected without sending a response.')


def answer(status: int, message: str = '', **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json={'message': message}, **kwargs)


STAT = httpx.Response(200, json={'output': {'mode': 33188, 'size': 1, 'uid': 0, 'gid': 0, 'mtime': 0}})

# --- the policy (no I/O) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('method', 'endpoint', 'body', 'repeat'),
    [
        ('GET', '/filesystem/c/ops/ls', None, Repeat.AS_IS),
        ('GET', '/compute/c/jobs', None, Repeat.AS_IS),
        ('POST', '/filesystem/c/ops/mkdir', {'sourcePath': '/d', 'parent': True}, Repeat.AS_IS),
        ('POST', '/filesystem/c/ops/mkdir', {'sourcePath': '/d', 'parent': False}, Repeat.EXISTS_IS_DONE),
        ('PUT', '/filesystem/c/ops/chmod', None, Repeat.AS_IS),
        ('PUT', '/filesystem/c/ops/chown', None, Repeat.AS_IS),
        ('POST', '/filesystem/c/ops/upload', None, Repeat.AS_IS),
        ('POST', '/filesystem/c/ops/compress', None, Repeat.AS_IS),
        ('POST', '/filesystem/c/ops/extract', None, Repeat.AS_IS),
        ('DELETE', '/filesystem/c/ops/rm', None, Repeat.MISSING_IS_DONE),
        ('POST', '/filesystem/c/ops/symlink', None, Repeat.LINK_IS_DONE),
        ('DELETE', '/compute/c/jobs/12', None, Repeat.AS_IS),
        ('POST', '/compute/c/jobs', None, Repeat.NEVER),
        ('POST', '/filesystem/c/transfer/cp', None, Repeat.NEVER),
        ('POST', '/filesystem/c/transfer/mv', None, Repeat.NEVER),
        ('POST', '/filesystem/c/transfer/upload', None, Repeat.NEVER),
        ('DELETE', '/filesystem/c/transfer/rm', None, Repeat.NEVER),
        ('POST', '/filesystem/c/ops/unknown', None, Repeat.NEVER),
    ],
)
def test_operations(method: str, endpoint: str, body: dict[str, Any] | None, repeat: Repeat) -> None:
    assert operation_of(method, endpoint, body).repeat is repeat


@pytest.mark.parametrize(
    ('exc', 'failure'),
    [
        (httpx.ConnectError('refused'), Failure.NOT_ACTED),
        (httpx.ConnectTimeout('slow'), Failure.NOT_ACTED),
        (httpx.RemoteProtocolError('dropped'), Failure.UNCERTAIN),
        (httpx.ReadError('reset'), Failure.UNCERTAIN),
        (httpx.ReadTimeout('slow'), None),
    ],
)
def test_failure_of_error(exc: httpx.TransportError, failure: Failure | None) -> None:
    assert failure_of_error(exc) is failure


@pytest.mark.parametrize(
    ('endpoint', 'status', 'message', 'failure'),
    [
        ('/filesystem/c/ops/ls', 503, 'Service unavailable', Failure.UNCERTAIN),
        ('/filesystem/c/ops/ls', 502, 'Bad gateway', Failure.UNCERTAIN),
        ('/filesystem/c/ops/ls', 504, 'Gateway timeout', Failure.UNCERTAIN),
        ('/filesystem/c/ops/ls', 500, CHANNEL_CLOSED, Failure.UNCERTAIN),
        ('/filesystem/c/ops/ls', 500, 'Remote process failed with exit status:2 and error message:x', None),
        ('/filesystem/c/ops/ls', 500, "ls: cannot access '/x': Not a directory", None),
        ('/filesystem/c/ops/checksum', 500, 'Invalid output: abc  /a b\n ', None),
        ('/filesystem/c/ops/download', 500, CHANNEL_CLOSED, None),
        ('/filesystem/c/ops/download', 503, 'Service unavailable', Failure.UNCERTAIN),
        ('/filesystem/c/ops/ls', 404, 'No such file or directory', None),
        ('/filesystem/c/ops/ls', 408, 'Command execution timeout limit exceeded.', None),
    ],
)
def test_failure_of_answer(endpoint: str, status: int, message: str, failure: Failure | None) -> None:
    assert failure_of_answer(operation_of('GET', endpoint), status, message) is failure


@pytest.mark.parametrize(('failure', 'repeated'), [(Failure.NOT_ACTED, True), (Failure.UNCERTAIN, False)])
def test_submission_is_repeated_only_if_the_server_did_not_act(failure: Failure, repeated: bool) -> None:
    assert operation_of('POST', '/compute/c/jobs').may_repeat(failure) is repeated


@pytest.mark.parametrize('seed', range(5))
def test_backoff_is_bounded_jittered_and_honours_retry_after(seed: int) -> None:
    backoff = Backoff(attempts=6, base=0.5, cap=4.0)
    rng = random.Random(seed)
    delays = [backoff.delay(repeat, rng) for repeat in range(1, 7)]
    assert all(0 <= delay <= min(4.0, 0.5 * 2 ** (repeat - 1)) for repeat, delay in enumerate(delays, 1))
    assert backoff.delay(1, rng, retry_after=3.0) >= 3.0


# --- the client (httpx.MockTransport) ------------------------------------------------------------------------------


@pytest.mark.parametrize('failure', [dropped(), answer(503, 'Service unavailable'), answer(500, CHANNEL_CLOSED)])
async def test_get_repeated_after_a_transient_failure(failure: httpx.Response | Exception) -> None:
    handler, seen = scripted(failure, STAT)
    budget = Budget()
    client = make_client(handler, budget)
    assert (await client.stat('c', '/f'))['size'] == 1
    assert len(seen) == 2
    assert budget.acquired == 2  # the repeat waited for the budget too
    assert client.retries == 1
    await client.close_session()


class RotatingAuth:
    """Hands out a new token at every call, as an authority whose tokens expired in the meantime would."""

    def __init__(self) -> None:
        self.calls = 0

    async def auth_headers(self) -> dict[str, str]:
        self.calls += 1
        return {'Authorization': f'Bearer token-{self.calls}'}


class SlowBudget(Budget):
    """A budget whose wait lets the authority's token change (as a long wait lets a short-lived token expire)."""

    def __init__(self, auth: RotatingAuth) -> None:
        super().__init__()
        self.auth = auth

    async def acquire(self) -> str:
        slot = await super().acquire()
        await self.auth.auth_headers()
        return slot


async def test_token_is_taken_after_the_budget_wait() -> None:
    """The token a request carries is the one current when the budget lets it leave, not when it was built."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers['Authorization'])
        return STAT

    auth = RotatingAuth()
    client = FirecrestClient(
        URL,
        auth,
        budget=SlowBudget(auth),
        timeout=5.0,
        verify=False,
        http_transport=httpx.MockTransport(handler),
        backoff=FAST,
        rng=random.Random(1),
    )
    await client.stat('c', '/f')
    await client.close_session()
    assert sent == [f'Bearer token-{auth.calls}']


async def test_repeats_are_bounded() -> None:
    handler, seen = scripted(answer(503, 'Service unavailable'))
    client = make_client(handler)
    with pytest.raises(FirecrestApiError), translate_errors('/f'):
        await client.stat('c', '/f')
    assert len(seen) == 1 + FAST.attempts
    await client.close_session()


async def test_retry_after_of_a_503_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        """Record the client's wait before a repeat instead of waiting; let any other task sleep."""
        if sys._getframe(1).f_code is FirecrestClient._wait_before_repeat.__code__:
            waits.append(seconds)
        else:
            await real_sleep(seconds)

    monkeypatch.setattr(asyncio, 'sleep', sleep)
    handler, _ = scripted(answer(503, 'Service unavailable', headers={'Retry-After': '2'}), STAT)
    client = make_client(handler)
    await client.stat('c', '/f')
    assert waits == [2.0]
    await client.close_session()


@pytest.mark.parametrize('failure', [dropped(), answer(503, 'Service unavailable'), answer(500, CHANNEL_CLOSED)])
async def test_submission_not_repeated_when_the_server_may_have_acted(failure: httpx.Response | Exception) -> None:
    handler, seen = scripted(failure, httpx.Response(201, json={'jobId': '1'}))
    client = make_client(handler)
    with pytest.raises(OSError), translate_errors():
        await client.submit('c', working_dir='/w', script_remote_path='/w/job.sh')
    assert seen == ['POST /compute/c/jobs']
    await client.close_session()


async def test_submission_repeated_when_the_connection_was_never_made() -> None:
    handler, seen = scripted(httpx.ConnectError('refused'), httpx.Response(201, json={'jobId': '1'}))
    client = make_client(handler)
    assert (await client.submit('c', working_dir='/w', script_remote_path='/w/job.sh'))['jobId'] == '1'
    assert len(seen) == 2
    await client.close_session()


async def test_command_failure_is_not_repeated() -> None:
    handler, seen = scripted(answer(500, "mkdir: cannot create directory '/d/e': Not a directory"))
    client = make_client(handler)
    with pytest.raises(NotADirectoryError), translate_errors('/d/e'):
        await client.mkdir('c', '/d/e', create_parents=True)
    assert len(seen) == 1
    await client.close_session()


@pytest.mark.parametrize(
    ('call', 'already'),
    [
        (lambda client: client.rm('c', '/f'), answer(404, "rm: cannot remove '/f': No such file or directory")),
        (lambda client: client.mkdir('c', '/d'), answer(400, "mkdir: cannot create directory '/d': File exists")),
    ],
)
async def test_repeat_that_finds_the_work_done_succeeds(call: Any, already: httpx.Response) -> None:
    handler, seen = scripted(dropped(), already)
    client = make_client(handler)
    await call(client)
    assert len(seen) == 2
    await client.close_session()


async def test_first_try_that_finds_the_directory_is_an_error() -> None:
    handler, _ = scripted(answer(400, "mkdir: cannot create directory '/d': File exists"))
    client = make_client(handler)
    with pytest.raises(PathExistsError), translate_errors('/d'):
        await client.mkdir('c', '/d')
    await client.close_session()


@pytest.mark.parametrize(('target', 'succeeds'), [('/src', True), ('/elsewhere', False)])
async def test_repeated_symlink_checks_where_the_existing_link_points(target: str, succeeds: bool) -> None:
    listing = httpx.Response(200, json={'output': [{'name': 'link', 'type': 'l', 'linkTarget': target}]})
    exists = answer(400, "ln: failed to create symbolic link '/d/link': File exists")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith('/ls'):
            return listing
        return next(answers)

    answers = iter([httpx.Response(502), exists])
    client = make_client(handler)
    if succeeds:
        await client.symlink('c', '/src', '/d/link')
    else:
        with pytest.raises(PathExistsError), translate_errors('/d/link'):
            await client.symlink('c', '/src', '/d/link')
    await client.close_session()


# --- the transport on the local server's fault switches ------------------------------------------------------------


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeat at once: the tests count requests, not seconds."""
    monkeypatch.setattr(firecrest_client, 'DEFAULT_BACKOFF', Backoff(attempts=6, base=0.001, cap=0.001))


@pytest.fixture
def lost_answers(local_server: Any) -> Iterator[Callable[[float], None]]:
    """``lose(fraction)``: the local server acts on that fraction of requests, then drops the connection (seeded)."""

    def lose(fraction: float) -> None:
        local_server.faults.seed = 7
        local_server.faults.drop_after_acting_fraction = fraction

    yield lose
    local_server.faults.drop_after_acting_fraction = 0.0
    local_server.faults.seed = None


@pytest.mark.local_server(reason='switches on the fault that loses answers after acting')
@pytest.mark.usefixtures('fast_backoff')
async def test_file_operations_survive_lost_answers(
    firecrest_transport: Any,
    firecrest_config: dict[str, Any],
    local_server: Any,
    lost_answers: Callable[[float], None],
    tmp_path: Path,
) -> None:
    source = tmp_path / 'file.txt'
    source.write_text('content')
    mark = local_server.request_log.mark()
    async with firecrest_transport() as transport:
        base = f'{firecrest_config["workdir"]}/lost-{random.randrange(10**9)}'
        lost_answers(0.4)
        await transport.makedirs_async(f'{base}/a/b')
        await transport.mkdir_async(f'{base}/c')
        await transport.putfile_async(source, f'{base}/c/file.txt')
        await transport.chmod_async(f'{base}/c/file.txt', 0o640)
        await transport.symlink_async(f'{base}/c/file.txt', f'{base}/link')
        await transport.remove_async(f'{base}/c/file.txt')
        lost_answers(0.0)
        assert sorted(await transport.listdir_async(base)) == ['a', 'c', 'link']
        assert await transport.listdir_async(f'{base}/c') == []
        await transport.rmtree_async(base)
    assert local_server.request_log.statuses(mark)[DROPPED] > 0


def test_requests_continue_after_a_server_restart(tmp_path: Path, fast_backoff: None) -> None:
    from aiida_firecrest.transport import FirecrestTransport

    with LocalFirecrest(ServerSettings(roots=[tmp_path]), staging=False) as server:
        config = server.client_config()
        secret = tmp_path / 'secret'
        secret.touch(mode=0o600)
        secret.write_text(config['client_secret'])
        transport = FirecrestTransport(
            machine='localhost',
            url=config['url'],
            token_uri=config['token_uri'],
            client_id=config['client_id'],
            client_secret=str(secret),
            compute_resource=config['compute_resource'],
            temp_directory=config['temp_directory'],
            billing_account='',
            requests_per_second=100,
        )
        with transport:
            assert transport.path_exists(config['workdir'])
            server.restart(downtime=0.0)
            assert transport.path_exists(config['workdir'])
        assert server.app.state.restarts.count == 1
        statuses = server.request_log.statuses(0)
        assert statuses[401] == 1


# --- server facts refreshed when an answer contradicts them --------------------------------------------------------

UPLOAD_DIRECT = 'POST /filesystem/{system_name}/ops/upload'
UPLOAD_STAGED = 'POST /filesystem/{system_name}/transfer/upload'
SYSTEMS = 'GET /status/systems'


@pytest.mark.local_server(reason="lowers the local server's direct-transfer limit while a transport runs")
async def test_a_413_below_the_cached_limit_refreshes_it(
    firecrest_transport: Any,
    firecrest_config: dict[str, Any],
    local_server: Any,
    count_requests: Any,
    tmp_path: Path,
) -> None:
    FACTS.clear()
    limit = local_server.settings.max_ops_file_size
    size = limit + 1000
    source = tmp_path / 'f.bin'
    source.write_bytes(random.Random(0).randbytes(size))
    remote = f'{firecrest_config["workdir"]}/facts-{random.randrange(10**9)}'
    local_server.settings.max_ops_file_size = 2 * limit
    try:
        async with firecrest_transport() as transport:
            await transport.makedirs_async(remote)
            await transport.put_async(source, f'{remote}/first.bin')  # direct; the limit 2 x limit is cached
            local_server.settings.max_ops_file_size = limit
            async with count_requests() as counted:
                await transport.put_async(source, f'{remote}/second.bin')  # 413: the limit is asked again; staged
                await transport.put_async(source, f'{remote}/third.bin')  # staged at once
            await transport.rmtree_async(remote)
    finally:
        local_server.settings.max_ops_file_size = limit
        FACTS.clear()
    assert counted.counts[UPLOAD_DIRECT] == 1
    assert counted.counts[SYSTEMS] == 1
    assert counted.counts[UPLOAD_STAGED] == 2
