"""What the ``firecrest`` transport knows for certain about the remote side while it is open: the directories it
created itself (and what cannot be in them yet), and the recent listings of directories."""

from __future__ import annotations

import asyncio
import posixpath
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ('LISTING_MAX_AGE', 'FreshDirectories', 'RecentListings')

LISTING_MAX_AGE = 10.0
"""Seconds during which a directory's listing answers for it (the engine retrieves a CalcJob's files one ``get`` after
the other, within a second or so of each other)."""

Entries = list[dict[str, Any]]


class RecentListings:
    """The listings of directories this transport read recently, shared by the operations in those directories.

    The engine retrieves the files of a CalcJob with one ``get`` per file, giving no size; the size decides between
    the direct and the staged download. One ``ls`` of the directory tells the sizes of all its files: concurrent and
    successive ``get`` s in the directory share it for :data:`LISTING_MAX_AGE` seconds, unless this transport changes
    the directory meanwhile. Changes made by others during those seconds are not seen (a direct download of a file
    that grew past the limit still succeeds through the staged fallback).
    """

    def __init__(self, max_age: float = LISTING_MAX_AGE) -> None:
        self._max_age = max_age
        self._listings: dict[str, tuple[float, asyncio.Future[Entries]]] = {}

    async def get(self, directory: str, fetch: Callable[[], Awaitable[Entries]]) -> Entries:
        """Return the listing of ``directory``: a recent one, or the one ``fetch`` returns (shared with concurrent
        callers). A failed fetch is not remembered."""
        directory = posixpath.normpath(directory)
        known = self._listings.get(directory)
        if known is None or time.monotonic() - known[0] > self._max_age:
            future: asyncio.Future[Entries] = asyncio.ensure_future(fetch())
            known = (time.monotonic(), future)
            self._listings[directory] = known
        try:
            return await asyncio.shield(known[1])
        except Exception:
            if self._listings.get(directory) is known:
                del self._listings[directory]
            raise

    def invalidate(self, path: str) -> None:
        """Forget the listings of ``path``, of what is below it and of its ancestors (``path`` changed)."""
        path = posixpath.normpath(path)
        prefix = path.rstrip('/') + '/'
        ancestors = set()
        parent = path
        while parent != '/':
            parent = posixpath.dirname(parent)
            ancestors.add(parent)
        for directory in [d for d in self._listings if d == path or d.startswith(prefix) or d in ancestors]:
            del self._listings[directory]

    def clear(self) -> None:
        """Forget all listings."""
        self._listings.clear()


class FreshDirectories:
    """What this transport knows for certain about directories it created itself: they were empty, and only what it
    created in them since can be there.

    The engine creates each CalcJob's folder with ``mkdir`` and then puts the sandbox into it: knowing that
    ``folder/.aiida`` cannot exist yet saves the request that would ask. Operations whose effect on a directory is not
    tracked exactly (an extraction, a copy or move into it) make the transport forget it. The knowledge lives as long as
    the transport is open (one open/close cycle of the engine, seconds).

    Every change noted here also invalidates the :attr:`listings` it affects.
    """

    def __init__(self) -> None:
        self._children: dict[str, set[str]] = {}
        self.listings = RecentListings()

    def created(self, path: str) -> None:
        """``path`` was just created empty (by ``mkdir`` without ``-p``)."""
        self.touched(path)
        self._children[posixpath.normpath(path)] = set()

    def touched(self, path: str) -> None:
        """``path`` (and its parents) may exist now."""
        path = posixpath.normpath(path)
        self.listings.invalidate(path)
        while path != '/':
            parent, name = posixpath.split(path)
            if parent in self._children:
                self._children[parent].add(name)
            path = parent

    def forget(self, path: str) -> None:
        """Forget all about ``path`` and what is below it (its contents are no longer known)."""
        path = posixpath.normpath(path)
        self.listings.invalidate(path)
        for directory in [d for d in self._children if d == path or d.startswith(path.rstrip('/') + '/')]:
            del self._children[directory]

    def absent(self, path: str) -> bool:
        """Whether ``path`` certainly does not exist: its parent is a fresh directory that did not get it."""
        parent, name = posixpath.split(posixpath.normpath(path))
        return parent in self._children and name not in self._children[parent]

    def clear(self) -> None:
        """Forget everything (the transport closes)."""
        self._children.clear()
        self.listings.clear()
