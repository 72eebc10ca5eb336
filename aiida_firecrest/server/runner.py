"""Start and stop a local FirecREST v2 server (and its S3 server) on loopback, in a thread of the calling process."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .middleware import RequestLog
from .settings import FaultSettings, ServerSettings

STARTUP_TIMEOUT = 30.0


class LocalFirecrest:
    """A running local FirecREST v2 server; a context manager.

    :param settings: the server's settings; by default it exposes a fresh temporary directory of its own and runs
        batch scripts as local processes.
    :param port: the TCP port on 127.0.0.1, 0 for a free one.
    :param staging: start a SeaweedFS S3 server for staged transfers, unless ``settings.s3`` already names one.
    """

    def __init__(self, settings: ServerSettings | None = None, *, port: int = 0, staging: bool = True) -> None:
        self._exit_stack = contextlib.ExitStack()
        if settings is None:
            root = Path(self._exit_stack.enter_context(tempfile.TemporaryDirectory(prefix='firecrest-root-')))
            settings = ServerSettings(roots=[root])
        self.settings = settings
        self._port = port
        self._staging = staging
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app: Any = None
        self.url = ''

    @property
    def token_uri(self) -> str:
        """The URL of the OAuth2 token endpoint."""
        return f'{self.url}/auth/token'

    @property
    def request_log(self) -> RequestLog:
        """The log of the requests the server answered."""
        log: RequestLog = self.app.state.request_log
        return log

    @property
    def faults(self) -> FaultSettings:
        """The faults the server injects; change their fields to switch them on while the server runs."""
        return self.settings.faults

    def restart(self, downtime: float | None = None) -> None:
        """Restart the server as :attr:`FaultSettings.restart_interval` does, once and now: every token issued so far
        is refused from now on, and API requests are answered 503 during ``downtime`` seconds (by default
        ``faults.restart_downtime``)."""
        self.app.state.restarts.restart(self.faults.restart_downtime if downtime is None else downtime)

    @property
    def root(self) -> Path:
        """The first directory the server exposes."""
        return self.settings.roots[0]

    def client_config(self) -> dict[str, Any]:
        """Return everything a client needs, with the keys of ``firecrest_demo.py serve --config-out``."""
        workdir = self.root / 'work'
        temp_directory = self.root / 'tmp'
        for directory in (workdir, temp_directory):
            directory.mkdir(parents=True, exist_ok=True)
        return {
            'url': self.url,
            'token_uri': self.token_uri,
            'client_id': self.settings.client_id,
            'client_secret': self.settings.client_secret,
            'compute_resource': self.settings.system_name,
            'temp_directory': str(temp_directory),
            'workdir': str(workdir),
            'billing_account': self.settings.account,
        }

    def start(self) -> LocalFirecrest:
        """Start the S3 server (if asked for) and the API server; return once both answer."""
        try:
            if self._staging and self.settings.s3 is None:
                from .s3 import SeaweedFS

                s3_directory = self._exit_stack.enter_context(tempfile.TemporaryDirectory(prefix='firecrest-s3-'))
                self.settings.s3 = self._exit_stack.enter_context(SeaweedFS(Path(s3_directory)))
            self._start_api()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_api(self) -> None:
        # IPPROTO_TCP, not the default 0: asyncio disables Nagle's algorithm only on sockets that say they are TCP, and
        # with it every request on a kept-alive connection waits about 40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', self._port))
        host, port = sock.getsockname()
        self.url = f'http://{host}:{port}'
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, log_level='warning', lifespan='on', timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={'sockets': [sock]}, name='local-firecrest', daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f'the local FirecREST server did not start on {self.url}')
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the API server, its job backend and the S3 server; idempotent."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = self._thread = None
        self._exit_stack.close()

    def __enter__(self) -> LocalFirecrest:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
