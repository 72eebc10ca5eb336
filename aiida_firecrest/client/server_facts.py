"""The process-wide cache of facts about a FirecREST server.

:data:`FACTS` caches what does not change while a process runs (a system's description from ``/status/systems``, the
user name): the engine creates a new transport for every open/close cycle, and they must not ask again. A fact that an
answer contradicts is forgotten (:meth:`FactsCache.forget`) and asked again.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .request_budget import LoopLocalLock

__all__ = ('FACTS', 'FactsCache')

T = TypeVar('T')


class FactsCache:
    """Answers that do not change while the process runs, each fetched at most once per event loop at a time.

    Keys are tuples such as ``('systems', url, client_id, system)``; a value is fetched by the first caller and shared
    by all later ones (concurrent callers on one loop wait for the first). Each key has its own lock, so that fetching
    one value may use another.
    """

    def __init__(self) -> None:
        self._values: dict[tuple[str, ...], Any] = {}
        self._locks: dict[tuple[str, ...], LoopLocalLock] = {}
        self._guard = threading.Lock()

    def peek(self, key: tuple[str, ...]) -> Any:
        """Return the cached value of ``key``, or None."""
        with self._guard:
            return self._values.get(key)

    async def get(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        """Return the value of ``key``, calling ``fetch`` if it is not cached yet."""
        cached: T | None = self.peek(key)
        if cached is not None:
            return cached
        with self._guard:
            lock = self._locks.setdefault(key, LoopLocalLock())
        async with lock:
            value: T | None = self.peek(key)
            if value is None:
                value = await fetch()
                with self._guard:
                    self._values[key] = value
        return value

    def lower(self, key: tuple[str, ...], value: int) -> None:
        """Keep the smaller of ``value`` and the cached value of ``key`` (a bound learnt from answers, such as the
        smallest file whose checksum outlasted the server's command timeout)."""
        with self._guard:
            cached = self._values.get(key)
            self._values[key] = value if cached is None else min(int(cached), value)

    def forget(self, *keys: tuple[str, ...]) -> None:
        """Forget the values of ``keys``, so that the next :meth:`get` asks the server again (an answer contradicted
        them, e.g. a 413 below the cached direct-transfer limit)."""
        with self._guard:
            for key in keys:
                self._values.pop(key, None)

    def clear(self) -> None:
        """Forget everything (for tests)."""
        with self._guard:
            self._values.clear()


FACTS = FactsCache()
"""The process-wide cache of server facts."""
