"""The client-side request budget, shared process-wide, and the lock that such shared state needs.

FirecREST deployments throttle each client (CSCS publishes 10 requests per second and 120 per minute) and answer 429
beyond that. The engine opens a new transport for every open/close cycle and runs many of them at once, so the budget
belongs to the client identity, not to a transport instance: :func:`shared_budget` returns one
:class:`RequestBudget` per ``(url, client_id)`` for the whole process.

The budget is a pair of token buckets (per second and per minute) that hand out *reservations*: taking a token never
blocks the caller's thread, it returns how long to wait, and the caller sleeps on its own event loop. That makes the
budget safe for several event loops and threads at once (AiiDA runs the sync transport API on its runner's loop, tests
on theirs) with only a :class:`threading.Lock` held for a few arithmetic operations.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref

__all__ = (
    'DEFAULT_REQUESTS_PER_MINUTE',
    'DEFAULT_REQUESTS_PER_SECOND',
    'LoopLocalLock',
    'RequestBudget',
    'shared_budget',
)

DEFAULT_REQUESTS_PER_SECOND = 10.0
"""CSCS's published per-second limit of FirecREST requests per client."""

DEFAULT_REQUESTS_PER_MINUTE = 120.0
"""CSCS's published per-minute limit of FirecREST requests per client."""


class _Bucket:
    """A token bucket of ``capacity`` tokens refilled at ``rate`` per second; tokens may go negative (reservations)."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = time.monotonic()

    def reserve(self, now: float) -> float:
        """Take one token and return the seconds until it is really available (0 if now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RequestBudget:
    """At most ``per_second`` requests in any second and ``per_minute`` in any minute, with bursts up to those numbers.

    :param per_second: requests per second; 0 or less disables this limit.
    :param per_minute: requests per minute; 0 or less disables this limit.
    """

    def __init__(self, per_second: float = DEFAULT_REQUESTS_PER_SECOND, per_minute: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._buckets: list[_Bucket] = []
        self._limits: tuple[float, float] | None = None
        self._paused_until = 0.0
        self.configure(per_second, per_minute)

    def configure(self, per_second: float, per_minute: float = 0.0) -> None:
        """Change the limits (the last transport to open sets them for all transports of the same client)."""
        limits = (max(0.0, float(per_second)), max(0.0, float(per_minute)))
        with self._lock:
            if limits == self._limits:
                return
            self._limits = limits
            self._buckets = []
            if limits[0] > 0:
                self._buckets.append(_Bucket(limits[0], limits[0]))
            if limits[1] > 0:
                self._buckets.append(_Bucket(limits[1] / 60.0, limits[1]))

    @property
    def limits(self) -> tuple[float, float]:
        """The ``(per_second, per_minute)`` limits, 0 for a disabled one."""
        with self._lock:
            return self._limits or (0.0, 0.0)

    def reserve(self) -> float:
        """Take a request slot and return how many seconds the caller must wait before sending (never blocks)."""
        with self._lock:
            now = time.monotonic()
            delay = max(0.0, self._paused_until - now)
            for bucket in self._buckets:
                delay = max(delay, bucket.reserve(now))
        return delay

    async def acquire(self) -> None:
        """Wait, on the running event loop, until a request may be sent."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold back every request for ``seconds`` (after a 429 with ``Retry-After``)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))


_budgets: dict[tuple[str, str], RequestBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(url: str, client_id: str, per_second: float, per_minute: float = 0.0) -> RequestBudget:
    """Return the process-wide budget of the client ``client_id`` of the FirecREST server at ``url``, set to the limits.

    :param url: the FirecREST URL.
    :param client_id: the OIDC client the requests are made as.
    :param per_second: requests per second (0 for no limit).
    :param per_minute: requests per minute (0 for no limit).
    """
    key = (url.rstrip('/'), client_id)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RequestBudget(per_second, per_minute)
    budget.configure(per_second, per_minute)
    return budget


class LoopLocalLock:
    """An :class:`asyncio.Lock` per event loop, for state shared process-wide between loops.

    An ``asyncio.Lock`` belongs to the loop that first waits on it; state shared by the whole process (the token
    cache, the systems cache) is used from several loops, so each loop gets its own lock. Work guarded by it must be
    idempotent across loops (at worst two loops both refresh a token).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def get(self) -> asyncio.Lock:
        """Return the lock of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def __aenter__(self) -> None:
        await self.get().acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.get().release()
