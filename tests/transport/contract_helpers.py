"""Helpers of the transport contract suite: declarative file trees, snapshots of them, and transfer directions.

A tree is described by a mapping from relative POSIX paths to what lives there: text for a regular file, :data:`DIR`
for a directory and :class:`Link` for a symbolic link. :func:`build_tree` creates it and :func:`snapshot` reads any
directory back into the same form, so a test compares what a transport produced with one ``==``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiida.transports.transport import AsyncTransport, Transport

if TYPE_CHECKING:
    from tests.remote_files import Location

__all__ = (
    'DIR',
    'Dir',
    'Entry',
    'Link',
    'Transfer',
    'build_tree',
    'make_writable',
    'permissions_enforced',
    'run_coroutine',
    'snapshot',
)

T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class Dir:
    """A directory in a tree description."""


@dataclasses.dataclass(frozen=True)
class Link:
    """A symbolic link in a tree description, pointing at ``target`` (stored verbatim, relative or absolute)."""

    target: str


DIR = Dir()
"""The directory marker of tree descriptions."""

Entry = str | Dir | Link
"""What a tree description holds at a path: file text, a directory or a symbolic link."""


def build_tree(root: Path, spec: Mapping[str, Entry]) -> Path:
    """Create the tree ``spec`` under ``root`` (created if missing) and return ``root``.

    Parents are created as needed, so ``{'a/b/c.txt': 'x'}`` makes ``a`` and ``a/b`` as well.
    """
    root.mkdir(parents=True, exist_ok=True)
    for relative, entry in spec.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(entry, Dir):
            path.mkdir(exist_ok=True)
        elif isinstance(entry, Link):
            path.symlink_to(entry.target)
        else:
            path.write_text(entry, encoding='utf-8')
    return root


def snapshot(root: Path) -> dict[str, Entry]:
    """Read the tree under ``root`` into a description: every file, directory and link, links not followed."""
    result: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[relative] = Link(os.readlink(path))
            elif path.is_dir():
                result[relative] = DIR
            else:
                result[relative] = path.read_text(encoding='utf-8')
    return result


def make_writable(root: Path) -> None:
    """Give the owner full access to everything under ``root`` (links not followed), so that it can be removed."""
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_symlink():
        root.chmod(root.stat().st_mode | stat.S_IRWXU)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IRWXU)


def permissions_enforced() -> bool:
    """Whether file permissions bind this process: false for root (or anyone with ``CAP_DAC_OVERRIDE``)."""
    with tempfile.TemporaryDirectory() as directory:
        probe = Path(directory) / 'probe'
        probe.write_text('x')
        probe.chmod(0o000)
        try:
            probe.read_text()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
        return False


def run_coroutine(transport: Transport, factory: Callable[[], Awaitable[T]]) -> T:
    """Await ``factory()`` the way the engine does: on the loop of the AiiDA runner for an :class:`AsyncTransport`.

    A blocking transport's ``*_async`` methods are plain wrappers that work on any loop, so a fresh one is used.
    """

    async def main() -> T:
        return await factory()

    if isinstance(transport, AsyncTransport):
        return transport.run_command_blocking(main)
    return asyncio.run(main())


@dataclasses.dataclass
class Transfer:
    """One direction of file transfer through a transport: ``put`` (local to remote), ``get`` or ``copy``.

    ``source`` and ``destination`` are fresh, empty directories on the side each method reads from and writes to. The
    three method families (``put``/``putfile``/``puttree`` and the twins) are called with string paths.
    """

    kind: str
    transport: Transport
    source: Location
    destination: Location

    def any(self, source: Location, destination: Location, **kwargs: Any) -> Any:
        """Call ``put``, ``get`` or ``copy``."""
        return getattr(self.transport, self.kind)(str(source), str(destination), **kwargs)

    def file(self, source: Location, destination: Location, **kwargs: Any) -> Any:
        """Call ``putfile``, ``getfile`` or ``copyfile``."""
        return getattr(self.transport, f'{self.kind}file')(str(source), str(destination), **kwargs)

    def tree(self, source: Location, destination: Location, **kwargs: Any) -> Any:
        """Call ``puttree``, ``gettree`` or ``copytree``."""
        return getattr(self.transport, f'{self.kind}tree')(str(source), str(destination), **kwargs)

    def call(self, family: str, source: Location, destination: Location, **kwargs: Any) -> Any:
        """Call the method of ``family`` (``'any'``, ``'file'`` or ``'tree'``)."""
        return getattr(self, family)(source, destination, **kwargs)
