"""The request budget of each client, enforced as an API gateway in front of FirecREST enforces it.

CSCS's gateway allows each FirecREST client 10 requests per second and 120 per minute and answers 429 beyond. The
local server does the same when :attr:`ServerSettings.rate_limit <aiida_firecrest.server.settings.ServerSettings>` is
set, with these choices:

- **Who**: the client of the request's token (its ``azp`` claim, the OAuth2 client id), so every process using the same
  client credentials shares one budget. A request without a valid token is not counted: it is answered 401 behind the
  gateway, as the gateway authenticates before it counts.
- **What**: every API request; the token endpoint is neither limited nor counted (at CSCS it is another service, the
  identity provider, outside the gateway).
- **How**: sliding windows over the requests accepted so far: a request is accepted only if, for every window, fewer
  than its budget were accepted in the window's length before it, so no window placed anywhere in time holds more than
  the budget (a fixed-window counter lets through twice the budget around a window's edge). A refused request does
  not use the budget.
- **Answer**: 429 with the gateway's body ``{"message": "API rate limit exceeded"}`` (not FirecREST's envelope: the
  request never reaches FirecREST) and ``Retry-After``, the whole seconds until the request would be accepted. Every
  answer of a counted request carries the headers of Kong's rate-limiting plugin (the gateway of FirecREST's reference
  deployment; those of CSCS's gateway are not published): ``RateLimit-Limit``, ``RateLimit-Remaining`` and
  ``RateLimit-Reset`` for the window closest to its budget, and ``X-RateLimit-Limit-<Window>`` and
  ``X-RateLimit-Remaining-<Window>`` for each window (``Second``, ``Minute``, ``Hour``, ``Day``). pyfirecrest waits
  ``Retry-After``, else ``RateLimit-Reset``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .middleware import AUTH_PREFIX, CLIENT_STATE_KEY, answer_json
from .settings import RateLimit, RateWindow

RATE_LIMITED_BODY = {'message': 'API rate limit exceeded'}
"""The body of the gateway's 429 answer."""
WINDOW_NAMES = {1: 'Second', 60: 'Minute', 3600: 'Hour', 86400: 'Day'}
"""The names of the windows in the ``X-RateLimit-*-<Window>`` headers."""


@dataclasses.dataclass(frozen=True)
class WindowUsage:
    """How much of one window's budget a client has left."""

    window: RateWindow
    remaining: int
    """Requests the window still accepts now."""
    reset: float
    """Seconds until the window accepts one more request than now."""


@dataclasses.dataclass(frozen=True)
class Admission:
    """The limiter's decision on one request."""

    accepted: bool
    usage: tuple[WindowUsage, ...]

    @property
    def retry_after(self) -> float:
        """Seconds until a refused request would be accepted (0 for an accepted one)."""
        return max((usage.reset for usage in self.usage if usage.remaining == 0), default=0.0)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Return the rate-limit headers of the answer."""
        tightest = min(self.usage, key=lambda usage: (usage.remaining, -usage.reset))
        headers = {
            'RateLimit-Limit': tightest.window.requests,
            'RateLimit-Remaining': tightest.remaining,
            'RateLimit-Reset': math.ceil(tightest.reset),
        }
        for usage in self.usage:
            name = WINDOW_NAMES[usage.window.seconds]
            headers[f'X-RateLimit-Limit-{name}'] = usage.window.requests
            headers[f'X-RateLimit-Remaining-{name}'] = usage.remaining
        if not self.accepted:
            headers['Retry-After'] = max(1, math.ceil(self.retry_after))
        return [(name.lower().encode(), str(value).encode()) for name, value in headers.items()]


class SlidingWindowLimiter:
    """The budget of every client under one :class:`~aiida_firecrest.server.settings.RateLimit`.

    :param limit: the windows every client's requests must fit in.
    :param clock: the monotonic clock, in seconds.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._accepted: dict[str, list[float]] = {}
        """The times of each client's accepted requests within the longest window, oldest first."""

    def admit(self, client: str) -> Admission:
        """Accept the request of ``client`` if every window has room for it, and record it; return the decision."""
        now = self._clock()
        accepted = self._accepted.setdefault(client, [])
        del accepted[: bisect.bisect_right(accepted, now - self.limit.windows[-1].seconds)]
        admitted = all(self._used(accepted, now, window) < window.requests for window in self.limit.windows)
        if admitted:
            accepted.append(now)
        usage = tuple(self._usage(accepted, now, window) for window in self.limit.windows)
        return Admission(admitted, usage)

    @staticmethod
    def _used(accepted: list[float], now: float, window: RateWindow) -> int:
        return len(accepted) - bisect.bisect_right(accepted, now - window.seconds)

    def _usage(self, accepted: list[float], now: float, window: RateWindow) -> WindowUsage:
        used = self._used(accepted, now, window)  # never above the budget: a request is accepted only below it
        if not used:
            return WindowUsage(window, window.requests, 0.0)
        oldest = accepted[len(accepted) - used]  # one more request fits once it leaves the window
        return WindowUsage(window, window.requests - used, oldest + window.seconds - now)


class RateLimitMiddleware:
    """Name the client of every API request, and answer 429 to those over its budget when a limit is set.

    :param app: the application behind the gateway.
    :param limit: returns the limit in force (None for none), read on every request.
    :param identify: returns the client of a bearer token, or None if the token is not valid.
    """

    def __init__(
        self, app: ASGIApp, limit: Callable[[], RateLimit | None], identify: Callable[[str], str | None]
    ) -> None:
        self.app = app
        self.limit = limit
        self.identify = identify
        self._limiter: SlidingWindowLimiter | None = None

    def _client(self, scope: Scope) -> str | None:
        authorization = dict(scope['headers']).get(b'authorization', b'').decode('latin-1')
        scheme, _, token = authorization.partition(' ')
        return self.identify(token.strip()) if scheme.lower() == 'bearer' and token else None

    def _limiter_for(self, limit: RateLimit) -> SlidingWindowLimiter:
        if self._limiter is None or self._limiter.limit is not limit:
            self._limiter = SlidingWindowLimiter(limit)
        return self._limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http' or scope['path'].startswith(AUTH_PREFIX):
            await self.app(scope, receive, send)
            return
        client = self._client(scope)
        scope.setdefault('state', {})[CLIENT_STATE_KEY] = client
        limit = self.limit()
        if limit is None or client is None:
            await self.app(scope, receive, send)
            return
        admission = self._limiter_for(limit).admit(client)
        headers = admission.headers()
        if not admission.accepted:
            await answer_json(send, 429, RATE_LIMITED_BODY, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message['type'] == 'http.response.start':
                message['headers'] = [*message.get('headers', []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
