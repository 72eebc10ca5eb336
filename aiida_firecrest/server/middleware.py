"""ASGI middleware of the local server: the version header, the request log, fault injection and restarts.

The rate limit of the gateway is in :mod:`~aiida_firecrest.server.ratelimit`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import envelope
from .settings import APP_VERSION, FaultSettings

AUTH_PREFIX = '/auth/'
"""Paths of the token endpoint: not part of the FirecREST API, never faulted, logged apart."""
CLIENT_STATE_KEY = 'client_id'
"""The key of the request's client in the ASGI scope's ``state`` (``request.state.client_id`` in a route), set by
:class:`~aiida_firecrest.server.ratelimit.RateLimitMiddleware`."""
DROPPED = 0
"""The status recorded for a request whose connection was dropped: the client received no complete answer."""
RESTARTING_STATUS = 503
RESTARTING_BODY = {'message': 'Service unavailable: the server is restarting.'}
"""The answer of the gateway to API requests while the server restarts."""


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One answered request."""

    method: str
    path: str
    """The path as requested, e.g. ``/filesystem/cluster/ops/ls``."""
    route: str
    """The route template that served it, e.g. ``/filesystem/{system_name}/ops/ls`` (the path if none matched)."""
    status: int
    """The status of the answer, or :data:`DROPPED` if its connection was dropped before it was complete."""
    duration: float
    """Seconds from the request to the end of the answer."""
    arrival: float
    """The Unix time at which the request arrived (when a rate limit counts it)."""
    client: str | None = None
    """The client (OAuth2 client id) of the request's valid bearer token, if any; None for the token endpoint."""

    @property
    def endpoint(self) -> str:
        """The method and route, e.g. ``GET /filesystem/{system_name}/ops/ls``."""
        return f'{self.method} {self.route}'

    @property
    def dropped(self) -> bool:
        """Whether the connection was dropped before the answer was complete."""
        return self.status == DROPPED

    @property
    def is_api(self) -> bool:
        """Whether the request was to the FirecREST API, not to the token endpoint."""
        return not self.path.startswith(AUTH_PREFIX)


class RequestLog:
    """The requests the server answered, for tests and benchmarks to count. Safe to read from any thread."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        """A copy of the records so far, oldest first."""
        with self._lock:
            return list(self._records)

    def mark(self) -> int:
        """Return a mark to pass to :meth:`since`."""
        with self._lock:
            return len(self._records)

    def since(self, mark: int = 0, *, api_only: bool = True) -> list[RequestRecord]:
        """Return the records after ``mark``, only those to the API unless ``api_only`` is false."""
        with self._lock:
            records = self._records[mark:]
        return [record for record in records if record.is_api or not api_only]

    def counts(self, mark: int = 0, *, api_only: bool = True) -> collections.Counter[str]:
        """Return the number of requests per endpoint after ``mark``."""
        return collections.Counter(record.endpoint for record in self.since(mark, api_only=api_only))

    def statuses(self, mark: int = 0, *, api_only: bool = True) -> collections.Counter[int]:
        """Return the number of answers per status after ``mark`` (:data:`DROPPED` for dropped connections), e.g.
        ``log.statuses(mark)[429]``, the requests refused for the rate limit or a fault."""
        return collections.Counter(record.status for record in self.since(mark, api_only=api_only))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class RequestLogMiddleware:
    """Record every request with its status and duration, and add the ``F7T-AppVersion`` header to every answer."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        start, arrival = time.monotonic(), time.time()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = scope.get('route')
                path = scope['path']
                client = scope.get('state', {}).get(CLIENT_STATE_KEY)
                route_path = str(getattr(route, 'path', path))
                duration = time.monotonic() - start
                self.log.append(RequestRecord(scope['method'], path, route_path, status, duration, arrival, client))

        async def send_with_version(message: Message) -> None:
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
                message['headers'] = [*message.get('headers', []), (b'f7t-appversion', APP_VERSION.encode())]
            elif message['type'] == 'http.response.body' and not message.get('more_body', False):
                record()  # before the client can see the end of the answer, so that the log is never behind it
            await send(message)

        try:
            await self.app(scope, receive, send_with_version)
        except DroppedConnectionError:
            status = DROPPED
            raise
        finally:
            record()


class DroppedConnectionError(Exception):
    """Raised by the fault middleware after a partial answer, so that the server closes the connection."""


class ServerRestarts:
    """Simulated restarts of the server: each one revokes every token issued before it and makes the API unavailable
    for a while, as a restart of the identity provider and the gateway in front of FirecREST would.

    :param revoke: invalidates every token issued so far.
    :param clock: the monotonic clock, in seconds.
    """

    def __init__(self, revoke: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._revoke = revoke
        self._clock = clock
        self._interval = 0.0
        self._next: float | None = None
        self._down_until = 0.0
        self.count = 0
        """The number of restarts so far."""

    def restart(self, downtime: float = 0.0) -> None:
        """Restart now: revoke every token, and answer API requests 503 during ``downtime`` seconds."""
        self._revoke()
        self.count += 1
        self._down_until = self._clock() + downtime

    def restart_if_due(self, faults: FaultSettings) -> None:
        """Restart if ``faults.restart_interval`` seconds passed since the last restart, or since this was first
        called with the interval's value."""
        now = self._clock()
        if faults.restart_interval != self._interval:
            self._interval = faults.restart_interval
            self._next = now + self._interval if self._interval > 0 else None
        if self._next is not None and now >= self._next:
            self.restart(faults.restart_downtime)
            self._next = now + self._interval

    @property
    def down(self) -> bool:
        """Whether the server is still restarting."""
        return self._clock() < self._down_until


class FaultMiddleware:
    """Inject the faults of :class:`~aiida_firecrest.server.settings.FaultSettings` into API requests, and restart
    the server when they say so."""

    def __init__(self, app: ASGIApp, faults: Callable[[], FaultSettings], restarts: ServerRestarts) -> None:
        self.app = app
        self.faults = faults
        self.restarts = restarts
        self._random = random.Random()
        self._seed: int | None = None

    def _draw(self, fraction: float) -> bool:
        return fraction > 0 and self._random.random() < fraction

    def _server_error_status(self, faults: FaultSettings) -> int:
        status = faults.server_error_status
        return status if isinstance(status, int) else self._random.choice(status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        faults = self.faults()
        self.restarts.restart_if_due(faults)  # for token requests too: a token issued after a restart is valid
        if scope['path'].startswith(AUTH_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.restarts.down:
            await answer_json(send, RESTARTING_STATUS, RESTARTING_BODY, [])
            return
        if faults.seed != self._seed:
            self._seed = faults.seed
            self._random.seed(faults.seed)
        if self._draw(faults.delay_fraction):
            await asyncio.sleep(faults.delay)
        if self._draw(faults.rate_limit_fraction):
            await _answer(send, 429, 'Rate limit exceeded.', [(b'retry-after', str(faults.retry_after).encode())])
            return
        if self._draw(faults.server_error_fraction):
            await _answer(send, self._server_error_status(faults), 'Injected server error.', [])
            return
        if self._draw(faults.drop_fraction):
            await _drop(send)
        if self._draw(faults.drop_after_acting_fraction):
            await self.app(scope, receive, _discard)
            await _drop(send)
        await self.app(scope, receive, send)


async def _discard(message: Message) -> None:
    """A ``send`` that loses the answer."""


async def _drop(send: Send) -> None:
    """Start an answer and raise :class:`DroppedConnectionError` before its end: the server closes the connection."""
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-length', b'1024')]})
    raise DroppedConnectionError('connection dropped by fault injection')


async def _answer(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    await answer_json(send, status, envelope(message, None), headers)


async def answer_json(send: Send, status: int, data: object, headers: list[tuple[bytes, bytes]]) -> None:
    """Send a whole JSON answer."""
    body = json.dumps(data).encode()
    await send(
        {
            'type': 'http.response.start',
            'status': status,
            'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()), *headers],
        }
    )
    await send({'type': 'http.response.body', 'body': body})
