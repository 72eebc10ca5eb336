"""The client-side request budget, shared by every process of the machine, and the lock that process-wide state needs.

FirecREST deployments throttle each *client* (CSCS publishes 10 requests per second and 120 per minute, in sliding
windows) and answer 429 beyond that. The daemon workers, ``verdi`` and scripts of one machine that use the same client
credentials all count against that one limit, so the budget cannot live in a process: it is a file, one per
``(url, client_id)``, in the AiiDA configuration folder (``~/.aiida/firecrest/request-budgets/``, mode 0600).

The file is a sliding-window log: the times at which requests were sent, over the last minute, and the time until
which a 429's ``Retry-After`` holds every request back. A process *takes* a slot under an exclusive
:func:`fcntl.flock`: it reads the log and, if one more request now keeps every window of one second and of one minute
within the limits (see :data:`WINDOW_MARGIN`), appends now; otherwise it learns how long to wait, and asks again
then. Slots are not reserved ahead: a caller that comes back late (a busy event loop) would otherwise send inside a
window counted for an earlier moment. Taking never waits for a slot: the caller sleeps on its own event loop, and
:meth:`RequestBudget.acquire` does the locked file I/O (about 1 ms with a full minute's log) in a worker thread, so
neither blocks the loop.

With workers on several machines (one file each), each machine takes a share of the client's limits: the transport
option ``budget_share`` (see :mod:`aiida_firecrest.transport.options`) multiplies both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = (
    'DEFAULT_REQUESTS_PER_MINUTE',
    'DEFAULT_REQUESTS_PER_SECOND',
    'WINDOW_MARGIN',
    'LoopLocalLock',
    'RequestBudget',
    'budget_directory',
    'shared_budget',
)

DEFAULT_REQUESTS_PER_SECOND = 10.0
"""CSCS's published per-second limit of FirecREST requests per client."""

DEFAULT_REQUESTS_PER_MINUTE = 120.0
"""CSCS's published per-minute limit of FirecREST requests per client."""

WINDOW_MARGIN = 2.0
"""Seconds added to each window (3 s, 62 s): a request recorded at time t reaches the server's limiter a little later,
after a delay that varies (the event loop's turn, a new connection, a busy server); the margin absorbs that jitter so
that the server, which counts on arrival, never sees a window over its limit. Measured: 0.1 s let three processes on
two busy cores draw 429s from the local server (tests/transport/test_shared_budget.py); 0.25 s none there, but four
daemon workers on the same two cores, with PostgreSQL, RabbitMQ and Slurm beside them, still drew 12 in 590 requests
(benchmarks/side_by_side.py, 50 CalcJobs); 1 s drew 1 in 559 (11 requests arrived within one second); 2 s none in
568, the busiest second 10, the run's wall time 0.98 of the per-minute floor. It costs 3.2 % of a steady rate under the
per-minute limit, which is what a long run meets, and two thirds of a burst's rate under the per-second one (10 per
3 s, for the first seconds of a burst only: 120 per minute is 2 per second)."""

_WINDOWS = (1.0, 60.0)


def budget_directory() -> Path:
    """The folder of the budget files: ``firecrest/request-budgets`` in the AiiDA configuration folder."""
    from aiida.manage.configuration.settings import AiiDAConfigDir

    return Path(AiiDAConfigDir.get()) / 'firecrest' / 'request-budgets'


class RequestBudget:
    """At most ``per_second`` requests in any second and ``per_minute`` in any minute, counted in the file ``path``
    that every process of the machine using the same client shares.

    :param path: the budget file (created with mode 0600, its folder with 0700, when first used).
    :param per_second: requests per second; 0 or less disables this limit.
    :param per_minute: requests per minute; 0 or less disables this limit.
    """

    def __init__(self, path: Path, per_second: float = DEFAULT_REQUESTS_PER_SECOND, per_minute: float = 0.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._limits = (0.0, 0.0)
        self.configure(per_second, per_minute)

    def configure(self, per_second: float, per_minute: float = 0.0) -> None:
        """Change this process's limits (the last transport to open sets them for all transports of the client)."""
        self._limits = (max(0.0, float(per_second)), max(0.0, float(per_minute)))

    @property
    def limits(self) -> tuple[float, float]:
        """The ``(per_second, per_minute)`` limits, 0 for a disabled one."""
        return self._limits

    def take(self) -> float:
        """Take a request slot if one is free now and return 0, or return the seconds until one may be (and take
        nothing): the time recorded is the time of sending, however late the caller comes back. Blocks only for the
        locked read and write of the file."""
        with self._locked() as state:
            now = time.time()
            sent = [moment for moment in state['sent'] if moment > now - _WINDOWS[-1] - WINDOW_MARGIN]
            moment = max(now, float(state['paused_until']))
            for limit, window in zip(self._limits, _WINDOWS, strict=True):
                moment = max(moment, _earliest_slot(sent, limit, window + WINDOW_MARGIN))
            if moment <= now:
                sent.append(now)
            state['sent'] = sent
        return moment - now

    async def acquire(self) -> None:
        """Wait, on the running event loop, until a request may be sent (the file is read and written in a thread)."""
        while (delay := await asyncio.to_thread(self.take)) > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold back every request of the client, in every process, for ``seconds`` (after a 429 with
        ``Retry-After``)."""
        with self._locked() as state:
            state['paused_until'] = max(state['paused_until'], time.time() + max(0.0, seconds))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Yield the file's state under an exclusive lock (threads of this process, then processes); write it back."""
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, 'r+', encoding='utf-8') as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                state = _parse(handle.read())
                yield state
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state))
                # closing the file releases the lock


def _parse(text: str) -> dict[str, Any]:
    """The state of a budget file; an empty or damaged file (a process killed while writing) is an empty log."""
    try:
        state = json.loads(text)
        return {'sent': sorted(float(moment) for moment in state['sent']), 'paused_until': float(state['paused_until'])}
    except (ValueError, KeyError, TypeError):
        return {'sent': [], 'paused_until': 0.0}


def _earliest_slot(sent: list[float], limit: float, window: float) -> float:
    """The earliest time at which one more request keeps ``limit`` or fewer in any ``window`` (``sent`` sorted;
    0 or less: no limit; a fraction counts as the whole number below it, at least 1).

    The new request comes last, so only windows ending at it matter: it must follow the ``limit``-th latest request by
    a whole window.
    """
    count = max(1, int(limit))
    if limit <= 0 or len(sent) < count:
        return 0.0
    return sent[-count] + window


_budgets: dict[Path, RequestBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(
    url: str, client_id: str, per_second: float, per_minute: float = 0.0, directory: Path | None = None
) -> RequestBudget:
    """Return the budget of the client ``client_id`` of the FirecREST server at ``url``, set to the limits: one object
    per process and file, one file per machine (and AiiDA configuration folder).

    :param url: the FirecREST URL.
    :param client_id: the OIDC client the requests are made as.
    :param per_second: requests per second (0 for no limit).
    :param per_minute: requests per minute (0 for no limit).
    :param directory: the folder of the budget files (default :func:`budget_directory`).
    """
    name = hashlib.sha256(f'{url.rstrip("/")}\n{client_id}'.encode()).hexdigest()[:32]
    path = (directory or budget_directory()) / f'{name}.json'
    with _budgets_lock:
        budget = _budgets.get(path)
        if budget is None:
            budget = _budgets[path] = RequestBudget(path, per_second, per_minute)
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
