"""ASGI middleware of the local server: the version header, the request log and fault injection."""

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


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One answered request."""

    method: str
    path: str
    """The path as requested, e.g. ``/filesystem/cluster/ops/ls``."""
    route: str
    """The route template that served it, e.g. ``/filesystem/{system_name}/ops/ls`` (the path if none matched)."""
    status: int
    duration: float
    """Seconds from the request to the end of the answer."""

    @property
    def endpoint(self) -> str:
        """The method and route, e.g. ``GET /filesystem/{system_name}/ops/ls``."""
        return f'{self.method} {self.route}'

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
        start = time.monotonic()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = scope.get('route')
                path = scope['path']
                self.log.append(
                    RequestRecord(
                        scope['method'], path, str(getattr(route, 'path', path)), status, time.monotonic() - start
                    )
                )

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
        finally:
            record()


class DroppedConnectionError(Exception):
    """Raised by the fault middleware after a partial answer, so that the server closes the connection."""


class FaultMiddleware:
    """Inject the faults of :class:`~aiida_firecrest.server.settings.FaultSettings` into API requests."""

    def __init__(self, app: ASGIApp, faults: Callable[[], FaultSettings]) -> None:
        self.app = app
        self.faults = faults
        self._random = random.Random()
        self._seed: int | None = None

    def _draw(self, fraction: float) -> bool:
        return fraction > 0 and self._random.random() < fraction

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http' or scope['path'].startswith(AUTH_PREFIX):
            await self.app(scope, receive, send)
            return
        faults = self.faults()
        if faults.seed != self._seed:
            self._seed = faults.seed
            self._random.seed(faults.seed)
        if self._draw(faults.delay_fraction):
            await asyncio.sleep(faults.delay)
        if self._draw(faults.rate_limit_fraction):
            await _answer(send, 429, 'Rate limit exceeded.', [(b'retry-after', str(faults.retry_after).encode())])
            return
        if self._draw(faults.server_error_fraction):
            await _answer(send, faults.server_error_status, 'Injected server error.', [])
            return
        if self._draw(faults.drop_fraction):
            await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-length', b'1024')]})
            raise DroppedConnectionError('connection dropped by fault injection')
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(envelope(message, None)).encode()
    await send(
        {
            'type': 'http.response.start',
            'status': status,
            'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()), *headers],
        }
    )
    await send({'type': 'http.response.body', 'body': body})
