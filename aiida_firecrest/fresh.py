"""The directories the ``firecrest`` transport created itself, and what cannot be in them yet."""

from __future__ import annotations

import posixpath

__all__ = ('FreshDirectories',)


class FreshDirectories:
    """What this transport knows for certain about directories it created itself: they were empty, and only what it
    created in them since can be there.

    The engine creates each CalcJob's folder with ``mkdir`` and then puts the sandbox into it: knowing that
    ``folder/.aiida`` cannot exist yet saves the request that would ask. Operations whose effect on a directory is not
    tracked exactly (an extraction, a copy or move into it) make the transport forget it. The knowledge lives as long as
    the transport is open (one open/close cycle of the engine, seconds).
    """

    def __init__(self) -> None:
        self._children: dict[str, set[str]] = {}

    def created(self, path: str) -> None:
        """``path`` was just created empty (by ``mkdir`` without ``-p``)."""
        self.touched(path)
        self._children[posixpath.normpath(path)] = set()

    def touched(self, path: str) -> None:
        """``path`` (and its parents) may exist now."""
        path = posixpath.normpath(path)
        while path != '/':
            parent, name = posixpath.split(path)
            if parent in self._children:
                self._children[parent].add(name)
            path = parent

    def forget(self, path: str) -> None:
        """Forget all about ``path`` and what is below it (its contents are no longer known)."""
        path = posixpath.normpath(path)
        for directory in [d for d in self._children if d == path or d.startswith(path.rstrip('/') + '/')]:
            del self._children[directory]

    def absent(self, path: str) -> bool:
        """Whether ``path`` certainly does not exist: its parent is a fresh directory that did not get it."""
        parent, name = posixpath.split(posixpath.normpath(path))
        return parent in self._children and name not in self._children[parent]

    def clear(self) -> None:
        self._children.clear()
