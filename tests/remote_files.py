"""The remote side of the server under test, as the tests see it: build trees there, read them back, clean up.

The tests never check what a transport or a job did through the code under test. The embedded local server shares this
machine's file system, so :class:`DiskFiles` looks at it directly; a deployment given with ``--firecrest-config`` is
reached through a plain pyfirecrest client (:class:`ClientFiles`), whose paths are :class:`~pathlib.PurePosixPath` so
that a test that would read the disk instead fails at once rather than pass by accident.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from firecrest import FirecrestException
from firecrest.v2 import Firecrest

from tests.transport.contract_helpers import DIR, Dir, Entry, Link, build_tree, snapshot

RemotePath = Path | PurePosixPath
"""A path on the server under test: a :class:`Path` on this machine's disk, or a pure path on a remote deployment."""


class RemoteFiles:
    """Files on the server under test."""

    def path(self, path: str | PurePosixPath) -> RemotePath:
        """``path`` as this kind of remote path."""
        raise NotImplementedError

    def scratch(self, parent: str, prefix: str = 'test') -> RemotePath:
        """Create and return a fresh empty directory ``{parent}/{prefix}-<random>``; remove it with :meth:`remove`."""
        path = self.path(f'{parent}/{prefix}-{uuid.uuid4().hex[:12]}')
        self.mkdir(path, parents=True)
        return path

    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        raise NotImplementedError

    def remove(self, path: RemotePath) -> None:
        """Remove ``path`` and everything under it, if it exists."""
        raise NotImplementedError

    def exists(self, path: RemotePath) -> bool:
        """Whether something (a link included, dangling or not) is at ``path``."""
        raise NotImplementedError

    def listdir(self, path: RemotePath) -> list[str]:
        """The names in directory ``path``, hidden ones included, in no particular order."""
        raise NotImplementedError

    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        raise NotImplementedError

    def read_bytes(self, path: RemotePath) -> bytes:
        raise NotImplementedError

    def read_text(self, path: RemotePath) -> str:
        return self.read_bytes(path).decode('utf-8')

    def sha256(self, path: RemotePath) -> str:
        """The SHA-256 of the file at ``path``, in hexadecimal."""
        return hashlib.sha256(self.read_bytes(path)).hexdigest()

    def build_tree(self, root: RemotePath, spec: Mapping[str, Entry]) -> RemotePath:
        """Create the tree ``spec`` under ``root``, as :func:`~tests.transport.contract_helpers.build_tree` does."""
        raise NotImplementedError

    def snapshot(self, root: RemotePath) -> dict[str, Entry]:
        """Read the tree under ``root``, as :func:`~tests.transport.contract_helpers.snapshot` does."""
        raise NotImplementedError


class DiskFiles(RemoteFiles):
    """The remote side of the local server: this machine's file system."""

    def path(self, path: str | PurePosixPath) -> Path:
        return Path(path)

    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        Path(path).mkdir(parents=parents)

    def remove(self, path: RemotePath) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def exists(self, path: RemotePath) -> bool:
        return Path(path).exists() or Path(path).is_symlink()

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
    """The remote side of a FirecREST deployment, through a pyfirecrest client of its ``compute_resource``."""

    def __init__(self, client: Firecrest, config: dict[str, Any]) -> None:
        self.client = client
        self.system = config['compute_resource']
        self.account = config.get('billing_account') or None

    def path(self, path: str | PurePosixPath) -> PurePosixPath:
        return PurePosixPath(path)

    def mkdir(self, path: RemotePath, parents: bool = False) -> None:
        self.client.mkdir(self.system, str(path), create_parents=parents)

    def remove(self, path: RemotePath) -> None:
        if self.exists(path):
            self.client.rm(self.system, str(path), account=self.account)

    def exists(self, path: RemotePath) -> bool:
        try:
            self.client.stat(self.system, str(path))
        except FirecrestException as exc:
            if exc.responses and exc.responses[-1].status_code == 404:
                return False
            raise
        return True

    def listdir(self, path: RemotePath) -> list[str]:
        return [entry['name'] for entry in self.client.list_files(self.system, str(path), show_hidden=True)]

    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        path = PurePosixPath(path)
        self.client.upload(
            self.system, io.BytesIO(data), str(path.parent), path.name, account=self.account, file_size=len(data)
        )

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
        made = {root}

        def make_parents(path: PurePosixPath) -> None:
            if path.parent not in made:
                self.mkdir(path.parent, parents=True)
                made.update([path.parent, *path.parent.parents])

        for relative, entry in spec.items():
            path = root / relative
            make_parents(path)
            if isinstance(entry, Dir):
                if path not in made:
                    self.mkdir(path, parents=True)
                    made.update([path, *path.parents])
            elif isinstance(entry, Link):
                self.client.symlink(self.system, entry.target, str(path))
            else:
                self.write_bytes(path, entry.encode('utf-8'))
        return root

    def snapshot(self, root: RemotePath) -> dict[str, Entry]:
        result: dict[str, Entry] = {}
        listing = self.client.list_files(self.system, str(root), show_hidden=True, recursive=True)
        for entry in listing:
            relative = entry['name']
            if entry['type'] == 'l':
                result[relative] = Link(entry['linkTarget'])
            elif entry['type'] == 'd':
                result[relative] = DIR
            else:
                result[relative] = self.read_text(PurePosixPath(root) / relative)
        return result
