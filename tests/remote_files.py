"""The files of the server under test, as the tests see them: build trees there, read them back, clean up.

The tests never check what a transport or a job did through the code under test. The embedded local server shares this
machine's file system, so :class:`DiskFiles` looks at it directly; a deployment given with ``--firecrest-config`` is
reached through a plain pyfirecrest client (:class:`ClientFiles`), whose paths are :class:`~pathlib.PurePosixPath` so
that a test that would read the disk instead fails at once rather than pass by accident.

:class:`ClientFiles` uses pyfirecrest's public API alone (it is the independent checker of the plugin) and copes with
the real server: its commands carry a name only inside unescaped single quotes, its listings C-quote names, an empty
direct upload hangs and a direct download above about 3/4 of its limit fails. So it moves whole trees as tar archives,
which carry any name, mode and link: a tree is built by one upload and one extract of an archive made here, and read
back by one compress and one download of an archive read here. Only the root of a tree (and a path given to
:meth:`~RemoteFiles.lstat`, :meth:`~RemoteFiles.chmod`, :meth:`~RemoteFiles.read_bytes`...) reaches a command, so
those must be free of ``'``; the names inside a tree may be anything.

:class:`Location` binds a path to the files object of its side, so that a test reads ``(remote / 'x').snapshot()``
whether the side is this machine or a deployment.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import io
import os
import pwd
import shutil
import stat
import tarfile
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from firecrest import FirecrestException
from firecrest.v2 import Firecrest

from tests.transport.contract_helpers import DIR, Dir, Entry, Link, build_tree, make_writable, snapshot

RemotePath = Path | PurePosixPath
"""A path on the server under test: a :class:`Path` on this machine's disk, or a pure path on a remote deployment."""

DIRECT_TRANSFER_SHARE = 0.7
"""The share of a deployment's ``max_ops_file_size`` that :class:`ClientFiles` moves directly: a direct download reads
the file's base64 text (4/3 of its size) through a buffer of that size, so a larger file fails or hangs."""


@dataclasses.dataclass(frozen=True)
class FileStat:
    """What ``lstat`` tells of a path (a link is described itself, not followed)."""

    mode: int
    size: int
    nlink: int
    uid: int
    gid: int
    atime: float
    mtime: float


class RemoteFiles(abc.ABC):
    """The files of one side of a transport: this machine's, or a FirecREST deployment's."""

    @abc.abstractmethod
    def path(self, path: str | PurePosixPath) -> RemotePath:
        """``path`` as this kind of remote path."""

    def scratch(self, parent: str, prefix: str = 'test') -> RemotePath:
        """Create and return a fresh empty directory ``{parent}/{prefix}-<random>``; remove it with :meth:`remove`."""
        path = self.path(f'{parent}/{prefix}-{uuid.uuid4().hex[:12]}')
        self.mkdir(path, parents=True)
        return path

    @abc.abstractmethod
    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        """Create directory ``path`` (and its missing parents with ``parents``)."""

    @abc.abstractmethod
    def chmod(self, path: RemotePath, mode: int) -> None:
        """Set the permission bits of ``path`` to ``mode``."""

    @abc.abstractmethod
    def remove(self, path: RemotePath) -> None:
        """Remove ``path`` and everything under it, if it exists, whatever the permissions inside."""

    @abc.abstractmethod
    def exists(self, path: RemotePath, follow_links: bool = False) -> bool:
        """Whether something is at ``path``: a link, dangling or not, counts unless ``follow_links``."""

    @abc.abstractmethod
    def lstat(self, path: RemotePath) -> FileStat:
        """The status of ``path`` itself (links not followed)."""

    @abc.abstractmethod
    def readlink(self, path: RemotePath) -> str:
        """The target of the symbolic link ``path``, verbatim."""

    @abc.abstractmethod
    def realpath(self, path: RemotePath) -> str:
        """``path`` with every symbolic link in it resolved (the path must exist)."""

    @abc.abstractmethod
    def owner(self, path: RemotePath) -> str:
        """The name of the user owning ``path``."""

    @abc.abstractmethod
    def listdir(self, path: RemotePath) -> list[str]:
        """The names in directory ``path``, hidden ones included, in no particular order."""

    @abc.abstractmethod
    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        """Write ``data`` to the file ``path`` (its directory must exist)."""

    @abc.abstractmethod
    def read_bytes(self, path: RemotePath) -> bytes:
        """The content of the file ``path`` (a link is followed)."""

    def read_text(self, path: RemotePath) -> str:
        """The content of the file ``path`` as UTF-8 text."""
        return self.read_bytes(path).decode('utf-8')

    def sha256(self, path: RemotePath) -> str:
        """The SHA-256 of the file at ``path``, in hexadecimal."""
        return hashlib.sha256(self.read_bytes(path)).hexdigest()

    @abc.abstractmethod
    def build_tree(self, root: RemotePath, spec: Mapping[str, Entry]) -> RemotePath:
        """Create the tree ``spec`` under ``root``, as :func:`~tests.transport.contract_helpers.build_tree` does."""

    @abc.abstractmethod
    def snapshot(self, root: RemotePath) -> dict[str, Entry]:
        """Read the tree under ``root``, as :func:`~tests.transport.contract_helpers.snapshot` does."""


class DiskFiles(RemoteFiles):
    """The files of this machine: the local side of a transport, and the remote side of the local server."""

    def path(self, path: str | PurePosixPath) -> Path:
        return Path(path)

    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        Path(path).mkdir(parents=parents)

    def chmod(self, path: RemotePath, mode: int) -> None:
        Path(path).chmod(mode)

    def remove(self, path: RemotePath) -> None:
        path = Path(path)
        if path.is_dir() and not path.is_symlink():
            make_writable(path)
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def exists(self, path: RemotePath, follow_links: bool = False) -> bool:
        return Path(path).exists() or (not follow_links and Path(path).is_symlink())

    def lstat(self, path: RemotePath) -> FileStat:
        status = Path(path).lstat()
        fields = ('mode', 'size', 'nlink', 'uid', 'gid', 'atime', 'mtime')
        return FileStat(*(getattr(status, f'st_{field}') for field in fields))

    def readlink(self, path: RemotePath) -> str:
        return os.readlink(path)

    def realpath(self, path: RemotePath) -> str:
        return os.path.realpath(path)

    def owner(self, path: RemotePath) -> str:
        return pwd.getpwuid(Path(path).lstat().st_uid).pw_name

    def listdir(self, path: RemotePath) -> list[str]:
        return [entry.name for entry in Path(path).iterdir()]

    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        Path(path).write_bytes(data)

    def read_bytes(self, path: RemotePath) -> bytes:
        return Path(path).read_bytes()

    def build_tree(self, root: RemotePath, spec: Mapping[str, Entry]) -> Path:
        return build_tree(Path(root), spec)

    def snapshot(self, root: RemotePath) -> dict[str, Entry]:
        return snapshot(Path(root))


class ClientFiles(RemoteFiles):
    """The files of a FirecREST deployment's ``compute_resource``, through a plain pyfirecrest client.

    Archives in transit live in a directory of their own inside the deployment's ``workdir``, removed by :meth:`close`.
    """

    def __init__(self, client: Firecrest, config: dict[str, Any]) -> None:
        self.client = client
        self.system = config['compute_resource']
        self.account = config.get('billing_account') or None
        self.staging = PurePosixPath(config['workdir'], f'.remote-files-{uuid.uuid4().hex[:12]}')
        self.client.mkdir(self.system, str(self.staging), create_parents=True)
        # pyfirecrest moves directly any file below this attribute, whatever the deployment's limit.
        self.client.MAX_DIRECT_UPLOAD_SIZE = min(self.client.MAX_DIRECT_UPLOAD_SIZE, self._direct_limit())

    def _direct_limit(self) -> int:
        """The largest file this deployment surely moves directly, from the limit ``/status/systems`` reports."""
        [system] = [system for system in self.client.systems() if system['name'] == self.system]
        limit = (system.get('dataOperation') or {}).get('max_ops_file_size')
        return int(limit * DIRECT_TRANSFER_SHARE) if limit else self.client.MAX_DIRECT_UPLOAD_SIZE

    def close(self) -> None:
        """Remove the staging directory of archives."""
        self.client.rm(self.system, str(self.staging), account=self.account)

    def path(self, path: str | PurePosixPath) -> PurePosixPath:
        return PurePosixPath(path)

    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        self.client.mkdir(self.system, str(path), create_parents=parents)

    def chmod(self, path: RemotePath, mode: int) -> None:
        self.client.chmod(self.system, str(path), f'{mode:o}')

    def remove(self, path: RemotePath) -> None:
        if not self.exists(path):
            return
        try:
            self.client.rm(self.system, str(path), account=self.account)
        except FirecrestException as exc:
            if _status(exc) != 403:
                raise
            self._make_writable(PurePosixPath(path))
            self.client.rm(self.system, str(path), account=self.account)

    def _make_writable(self, root: PurePosixPath) -> None:
        """Give the owner full access to ``root`` and the directories under it that lack it: readable ones with plain
        ASCII names only, since listings C-quote other names (the permission tests make no others)."""
        self.chmod(root, stat.S_IMODE(self.lstat(root).mode) | stat.S_IRWXU)
        for entry in self.client.list_files(self.system, str(root), show_hidden=True, recursive=True):
            if entry['type'] == 'd' and entry['permissions'][:3] != 'rwx':
                self.chmod(root / entry['name'], 0o700)

    def exists(self, path: RemotePath, follow_links: bool = False) -> bool:
        try:
            self.client.stat(self.system, str(path), dereference=follow_links)
        except FirecrestException as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    def lstat(self, path: RemotePath) -> FileStat:
        status = self.client.stat(self.system, str(path), dereference=False)
        fields = ('mode', 'size', 'nlink', 'uid', 'gid', 'atime', 'mtime')
        return FileStat(*(status[field] for field in fields))

    def readlink(self, path: RemotePath) -> str:
        link = self._read_archive(PurePosixPath(path))[''][0]
        assert link.issym(), f'{path} is not a symbolic link'
        return link.linkname

    def realpath(self, path: RemotePath) -> str:
        """``path`` with every symbolic link in it resolved; the API cannot look outside the server's file systems,
        so a directory there (such as ``/`` or the parent of a file system) is taken as written."""
        resolved = PurePosixPath('/')
        for part in PurePosixPath(path).parts[1:]:
            if part == '..':
                resolved = resolved.parent
                continue
            candidate = resolved / part
            if self._is_link(candidate):
                candidate = PurePosixPath(self.realpath(resolved / self.readlink(candidate)))
            resolved = candidate
        return str(resolved)

    def _is_link(self, path: PurePosixPath) -> bool:
        """Whether ``path`` is a symbolic link; False outside the server's file systems (answered 400)."""
        try:
            return stat.S_ISLNK(self.lstat(path).mode)
        except FirecrestException as exc:
            if _status(exc) == 400:
                return False
            raise

    def owner(self, path: RemotePath) -> str:
        return self._read_archive(PurePosixPath(path))[''][0].uname

    def listdir(self, path: RemotePath) -> list[str]:
        return [relative for relative in self._read_archive(PurePosixPath(path)) if relative and '/' not in relative]

    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        path = PurePosixPath(path)
        self._upload_tree(path.parent, {path.name: data})

    def read_bytes(self, path: RemotePath) -> bytes:
        with tempfile.TemporaryDirectory() as directory:
            local = Path(directory) / 'download'
            self.client.download(self.system, str(path), local, account=self.account)
            return local.read_bytes()

    def sha256(self, path: RemotePath) -> str:
        answer = self.client.checksum(self.system, str(path))
        assert answer['algorithm'].replace('-', '').upper() == 'SHA256', answer
        return str(answer['checksum']).lower()

    def build_tree(self, root: RemotePath, spec: Mapping[str, Entry]) -> PurePosixPath:
        root = PurePosixPath(root)
        self.mkdir(root, parents=True)
        entries = {
            relative: entry.encode('utf-8') if isinstance(entry, str) else entry for relative, entry in spec.items()
        }
        self._upload_tree(root, entries)
        return root

    def _upload_tree(self, root: PurePosixPath, entries: Mapping[str, bytes | Dir | Link]) -> None:
        """Create ``entries`` under the existing directory ``root``: one upload and one extract of a tar archive."""
        archive = _tar_archive(entries)
        name = f'.tree-{uuid.uuid4().hex[:12]}.tar'
        self.client.upload(
            self.system, io.BytesIO(archive), str(root), name, account=self.account, file_size=len(archive)
        )
        try:
            self.client.extract(self.system, str(root / name), str(root), compression='none', account=self.account)
        finally:
            self.client.rm(self.system, str(root / name), account=self.account)

    def snapshot(self, root: RemotePath) -> dict[str, Entry]:
        members = self._read_archive(PurePosixPath(root))
        return {relative: _entry(*member) for relative, member in members.items() if relative}

    def _read_archive(self, path: PurePosixPath) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
        """Every entry at and under ``path`` (links not followed), keyed by its path relative to ``path`` (``''`` for
        ``path`` itself), with the content of regular files: one compress and one download of a tar archive."""
        archive = self.staging / f'{uuid.uuid4().hex[:12]}.tar'
        self.client.compress(self.system, str(path), str(archive), compression='none', account=self.account)
        try:
            data = self.read_bytes(archive)
        finally:
            self.client.rm(self.system, str(archive), account=self.account)
        members = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as tar:
            for member in tar.getmembers():
                relative = member.name.removeprefix(path.name).removeprefix('/')
                # A hard link to a file archived before has the content of that file.
                content = tar.extractfile(member) if member.isfile() or member.islnk() else None
                members[relative] = (member, content.read() if content else b'')
        return members


def _status(exc: FirecrestException) -> int | None:
    """The HTTP status of the answer that made pyfirecrest raise ``exc``."""
    return exc.responses[-1].status_code if exc.responses else None


def _entry(member: tarfile.TarInfo, content: bytes) -> Entry:
    """The tree description of an archive member."""
    if member.issym():
        return Link(member.linkname)
    if member.isdir():
        return DIR
    return content.decode('utf-8')


def _tar_archive(entries: Mapping[str, bytes | Dir | Link]) -> bytes:
    """A tar archive of ``entries`` (relative paths to file contents, directories and links), parents included."""
    buffer = io.BytesIO()
    now = time.time()
    added: set[str] = set()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for relative, entry in entries.items():
            for parent in reversed(PurePosixPath(relative).parents[:-1]):
                if str(parent) not in added:
                    added.add(str(parent))
                    tar.addfile(_member(str(parent), DIR, now))
            if relative not in added:
                added.add(relative)
                content = io.BytesIO(entry) if isinstance(entry, bytes) else None
                tar.addfile(_member(relative, entry, now), content)
    return buffer.getvalue()


def _member(name: str, entry: bytes | Dir | Link, mtime: float) -> tarfile.TarInfo:
    """The archive header of one entry, with the modes a fresh file, directory or link has."""
    member = tarfile.TarInfo(name)
    member.mtime = mtime
    if isinstance(entry, Dir):
        member.type, member.mode = tarfile.DIRTYPE, 0o755
    elif isinstance(entry, Link):
        member.type, member.mode, member.linkname = tarfile.SYMTYPE, 0o777, entry.target
    else:
        member.mode, member.size = 0o644, len(entry)
    return member


@dataclasses.dataclass(frozen=True)
class Location:
    """A path on one side of a transport, with the files object that reads and writes there.

    ``str(location)`` is the path as a transport takes it; ``location / name`` a path below it.
    """

    files: RemoteFiles
    path: RemotePath

    def __truediv__(self, name: str) -> Location:
        return Location(self.files, self.path / name)

    def __str__(self) -> str:
        return str(self.path)

    def build(self, spec: Mapping[str, Entry]) -> Location:
        """Create the tree ``spec`` here (see :func:`~tests.transport.contract_helpers.build_tree`); return ``self``."""
        self.files.build_tree(self.path, spec)
        return self

    def snapshot(self) -> dict[str, Entry]:
        """The tree here (see :func:`~tests.transport.contract_helpers.snapshot`)."""
        return self.files.snapshot(self.path)

    def mkdir(self, mode: int | None = None) -> None:
        """Create this directory (its parent must exist), with permission bits ``mode`` if given."""
        self.files.mkdir(self.path)
        if mode is not None:
            self.files.chmod(self.path, mode)

    def chmod(self, mode: int) -> None:
        self.files.chmod(self.path, mode)

    def exists(self, follow_links: bool = False) -> bool:
        return self.files.exists(self.path, follow_links)

    def lstat(self) -> FileStat:
        return self.files.lstat(self.path)

    def realpath(self) -> str:
        return self.files.realpath(self.path)

    def owner(self) -> str:
        return self.files.owner(self.path)

    def write_bytes(self, data: bytes) -> None:
        self.files.write_bytes(self.path, data)

    def read_bytes(self) -> bytes:
        return self.files.read_bytes(self.path)

    def read_text(self) -> str:
        return self.files.read_text(self.path)
