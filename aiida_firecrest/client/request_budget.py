"""The client-side request budget, shared by every process of the machine, and the lock that process-wide state needs.

FirecREST deployments throttle each *client* (CSCS publishes 10 requests per second and 120 per minute, in sliding
windows) and answer 429 beyond that. The daemon workers, ``verdi`` and scripts of one machine that use the same client
credentials all count against that one limit, so the budget cannot live in a process: it is a file, one per
``(url, client_id)``, in the AiiDA configuration folder (``~/.aiida/firecrest/request-budgets/``, mode 0600).

The file is a sliding-window log of the requests sent over the last minute, each with the latest moment at which it
can have reached the server, and the time until which a 429's ``Retry-After`` holds every request back. The server
counts a request when it arrives, somewhere between its sending and its answer: a request answered at time ``a``
arrived by ``a``, so it can no longer be in any window of the server that starts after ``a``. A process *takes* a slot
under an exclusive :func:`fcntl.flock`: one more request now is allowed if, for each window (one second, one minute),
fewer than the limit of the requests logged can still be inside a window ending now, those still unanswered included;
otherwise the process learns how long to wait, and asks again then. When the answer comes (its headers), the request's
moment becomes the answer's; a request that ends without an answer (a lost connection, a cancellation) may still
reach a busy server a little later: it counts :data:`UNANSWERED_ARRIVAL` seconds longer. No window of the server can
hold more than the limit, whatever the delays between client and server, and the budget waits no longer than they
last (a request answered in 20 ms frees its slot of the one-second window 1.02 s after it was sent). An unanswered
request of a process that no longer runs ended at the latest when the process did.

Slots are not reserved ahead: a caller that comes back late (a busy event loop) would otherwise send inside a window
counted for an earlier moment. Taking never waits for a slot: the caller sleeps on its own event loop, and
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
import itertools
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
    'UNANSWERED_ARRIVAL',
    'LoopLocalLock',
    'RequestBudget',
    'budget_directory',
    'shared_budget',
)

DEFAULT_REQUESTS_PER_SECOND = 10.0
"""CSCS's published per-second limit of FirecREST requests per client."""

DEFAULT_REQUESTS_PER_MINUTE = 120.0
"""CSCS's published per-minute limit of FirecREST requests per client."""

UNANSWERED_ARRIVAL = 2.0
"""Seconds after its end that a request ended without an answer still counts: its bytes may wait in the server's
socket buffer while the server is busy (the client's answer time bounds the arrival of answered requests only)."""

UNANSWERED_LIFETIME = 600.0
"""Seconds after which a request still unanswered in the log no longer counts: its process lost track of it (it ends
every request it sends, answered or not; a killed process is seen as such at once)."""

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

    def take(self, slot: str) -> float:
        """Take a request slot named ``slot`` if one is free now and return 0, or return the seconds until one may be
        (and take nothing): the time recorded is the time of sending, however late the caller comes back. Blocks only
        for the locked read and write of the file.

        :param slot: a name for the request, unique among the requests of the file's processes (see :meth:`settle`).
        """
        with self._locked() as state:
            now = time.time()
            entries = _live_entries(state['sent'], now)
            moment = max(now, float(state['paused_until']))
            for limit, window in zip(self._limits, _WINDOWS, strict=True):
                moment = max(moment, _earliest_slot(entries, limit, window, now))
            if moment <= now:
                entries.append([now, None, os.getpid(), slot])
            state['sent'] = entries
        return moment - now

    async def acquire(self) -> str:
        """Wait, on the running event loop, until a request may be sent (the file is read and written in a thread);
        return the name of its slot, for :meth:`settle`."""
        slot = f'{os.getpid()}-{next(_slot_numbers)}'
        while (delay := await asyncio.to_thread(self.take, slot)) > 0:
            await asyncio.sleep(delay)
        return slot

    def settle(self, slot: str, *, answered: bool) -> None:
        """Record the end of the request of ``slot``: its answer (``answered``: it reached the server by now), or its
        end without one (it may still reach a busy server within :data:`UNANSWERED_ARRIVAL`). A slot already settled
        keeps its first end."""
        with self._locked() as state:
            end = time.time() + (0.0 if answered else UNANSWERED_ARRIVAL)
            for entry in state['sent']:
                if entry[3] == slot and entry[1] is None:
                    entry[1] = end

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


_slot_numbers = itertools.count()


def _parse(text: str) -> dict[str, Any]:
    """The state of a budget file: ``sent``, a list of ``[sent, end, pid, slot]`` (``end`` None while unanswered),
    and ``paused_until``; an empty or damaged file (a process killed while writing) is an empty log."""
    try:
        state = json.loads(text)
        entries = [
            [float(sent), None if end is None else float(end), int(pid), str(slot)]
            for sent, end, pid, slot in state['sent']
        ]
        return {'sent': entries, 'paused_until': float(state['paused_until'])}
    except (ValueError, KeyError, TypeError):
        return {'sent': [], 'paused_until': 0.0}


def _live_entries(entries: list[list[Any]], now: float) -> list[list[Any]]:
    """The entries that may still be in a window ending now: answered within the longest window, or unanswered (an
    unanswered request of a process that no longer runs ends now; one older than :data:`UNANSWERED_LIFETIME` is
    dropped)."""
    live = []
    for entry in entries:
        sent, end, pid, _ = entry
        if end is None and (now - sent > UNANSWERED_LIFETIME or not _process_runs(pid)):
            entry[1] = end = now + UNANSWERED_ARRIVAL
        if end is None or end > now - _WINDOWS[-1]:
            live.append(entry)
    return live


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _earliest_slot(entries: list[list[Any]], limit: float, window: float, now: float) -> float:
    """The earliest time at which one more request keeps ``limit`` or fewer in any server window of ``window``
    seconds ending at its arrival (0 or less: no limit; a fraction counts as the whole number below it, at least 1).

    A request whose end (the moment it reached the server by) is over a window ago is outside every window ending now
    or later; the others count, the unanswered ones until their answer.
    """
    if limit <= 0:
        return 0.0
    ends = sorted(entry[1] for entry in entries if entry[1] is not None and entry[1] > now - window)
    unanswered = sum(1 for entry in entries if entry[1] is None)
    excess = len(ends) + unanswered - max(1, int(limit)) + 1
    if excess <= 0:
        return 0.0
    if excess > len(ends):  # an unanswered request must leave: answered now at the earliest, it counts a window more
        return now + window
    return float(ends[excess - 1]) + window


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
