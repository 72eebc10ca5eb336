"""The ``serve`` command: run a local FirecREST v2 server in the foreground until interrupted."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import click

from .middleware import RequestLog
from .runner import LocalFirecrest
from .settings import (
    CSCS_RATE_LIMIT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_OPS_FILE_SIZE,
    DEFAULT_UPLOAD_CHECK_INTERVAL,
    RateLimit,
    ServerSettings,
)


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by the owner alone from its creation on (it holds a secret)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, 'w') as handle:
        handle.write(text)


def write_private_json(path: Path, data: dict[str, object]) -> None:
    """Write ``data`` to ``path`` as JSON readable by the owner alone (it holds the client secret)."""
    write_private_text(path, json.dumps(data, indent=2) + '\n')


REQUEST_LOG_INTERVAL = 0.05
"""Seconds between two appends to the ``--request-log`` file: a line is written at most this long after its answer."""


def follow_request_log(log: RequestLog, path: Path, stop: threading.Event) -> None:
    """Append every request ``log`` records to ``path``, one JSON line each, until ``stop`` is set.

    A line holds the fields of :class:`~aiida_firecrest.server.middleware.RequestRecord` (token requests included) and
    ``time``, the Unix time at which it was written: at most :data:`REQUEST_LOG_INTERVAL` after the end of the answer.
    """
    mark = 0
    with path.open('a', encoding='utf-8') as handle:
        while True:
            stopping = stop.wait(REQUEST_LOG_INTERVAL)
            records = log.since(mark, api_only=False)
            mark += len(records)
            now = time.time()
            handle.writelines(json.dumps({'time': now, **dataclasses.asdict(record)}) + '\n' for record in records)
            handle.flush()
            if stopping:
                return


def follow_request_log_until_exit(stack: contextlib.ExitStack, log: RequestLog, path: Path) -> None:
    """Run :func:`follow_request_log` in a thread until ``stack`` closes (the lines so far written then)."""
    stop = threading.Event()
    thread = threading.Thread(target=follow_request_log, args=(log, path, stop), name='request-log', daemon=True)
    thread.start()
    stack.callback(thread.join)
    stack.callback(stop.set)


class RateLimitType(click.ParamType):
    """A rate limit written as ``N/unit[,N/unit...]``, e.g. ``10/s,120/min``."""

    name = 'N/UNIT[,N/UNIT...]'

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> RateLimit:
        if isinstance(value, RateLimit):
            return value
        try:
            return RateLimit.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command('serve')
@click.option('--port', type=int, default=0, show_default=True, help='TCP port on 127.0.0.1; 0 picks a free one.')
@click.option(
    '--scheduler',
    type=click.Choice(['local', 'slurm']),
    default='local',
    show_default=True,
    help='Job backend: the real Slurm of this machine, or batch scripts run as local processes.',
)
@click.option(
    '--root',
    'roots',
    type=click.Path(file_okay=False, path_type=Path),
    multiple=True,
    help='A directory the server exposes (repeatable); default: a fresh temporary folder of its own.',
)
@click.option('--account', default=None, help='The billing account reported for the user and used by default.')
@click.option(
    '--max-ops-file-size',
    type=int,
    default=DEFAULT_MAX_OPS_FILE_SIZE,
    show_default=True,
    help='The direct-transfer limit in bytes; larger files go through S3 staging.',
)
@click.option(
    '--command-timeout',
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_COMMAND_TIMEOUT,
    show_default=True,
    help="Seconds after which a direct operation answers 408 (the real server's SSH command timeout); the requests "
    'that hang on the real server (large direct downloads, empty direct uploads) wait this long.',
)
@click.option(
    '--upload-check-interval',
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_UPLOAD_CHECK_INTERVAL,
    show_default=True,
    help="Seconds between two checks of a staged upload's transfer job for its object (the real server's job checks at "
    'once, then every minute).',
)
@click.option(
    '--rate-limit',
    type=RateLimitType(),
    default=None,
    help=f'The request budget of each client, enforced as an API gateway does (429 with Retry-After beyond), e.g. '
    f'{CSCS_RATE_LIMIT} as at CSCS; units s, min, h, day. Default: no limit. The token endpoint is not limited.',
)
@click.option(
    '--config-out',
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Write what a client needs (url, token_uri, client_id, client_secret, ...) to this JSON file (mode 600).',
)
@click.option(
    '--request-log',
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Append every answered request to this file, one JSON line each (method, path, route, status, duration, '
    'client, and the Unix time it was written), for benchmarks in other processes to count.',
)
def serve(
    port: int,
    scheduler: str,
    roots: tuple[Path, ...],
    account: str | None,
    max_ops_file_size: int,
    command_timeout: float,
    upload_check_interval: float,
    rate_limit: RateLimit | None,
    config_out: Path | None,
    request_log: Path | None,
) -> None:
    """Run a local FirecREST v2 server (and its S3 server) until interrupted.

    It behaves like the real FirecREST 2.5 server (see ``aiida_firecrest.server.RealismSettings``).
    """
    with contextlib.ExitStack() as stack:
        if not roots:
            roots = (Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='firecrest-root-'))),)
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
        settings = ServerSettings(
            roots=list(roots),
            scheduler=scheduler,  # type: ignore[arg-type]
            account=account,
            max_ops_file_size=max_ops_file_size,
            command_timeout=command_timeout,
            upload_check_interval=upload_check_interval,
            rate_limit=rate_limit,
        )
        server = stack.enter_context(LocalFirecrest(settings))
        config = server.client_config()
        click.echo(f'FirecREST v2 listening on {server.url} (system {config["compute_resource"]}, {scheduler} jobs)')
        click.echo(f'Exposed directories: {", ".join(str(root) for root in server.settings.roots)}')
        if rate_limit is not None:
            click.echo(f'Rate limit per client: {rate_limit}')
        if request_log is not None:
            follow_request_log_until_exit(stack, server.request_log, request_log)
            click.echo(f'Requests logged to {request_log}')
        if config_out is not None:
            write_private_json(config_out, config)
            click.echo(f'Client configuration written to {config_out}')
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
        click.echo('Stopping.')
