"""The demo: three CalcJobs through the engine, in a throwaway AiiDA profile, on a FirecREST v2 deployment.

The deployment is the local server (:func:`run_demo`), or any other, described by the keys that ``firecrest_demo.py
serve --config-out`` writes (:func:`run_demo_on`). The requests of each CalcJob are counted by the local server, or, on
another deployment, on the client side from httpx's log of every request it sends (:class:`ClientRequestLog`).

Import this module only after ``AIIDA_PATH`` points where the throwaway profile may live (``firecrest_demo.py`` does).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import click
from aiida import load_profile, orm
from aiida.engine import run_get_node
from aiida.manage.configuration import create_profile, get_config

from ..client.firecrest_client import TRANSFER_JOBS_LOGGER
from ..server import LocalFirecrest, ServerSettings
from ..server.cli import write_private_json, write_private_text
from .steps import Step, arithmetic_add, restart, staged_io

COMPUTER_LABEL = 'firecrest-demo'
DEMO_UPLOAD_CHECK_INTERVAL = 1.0
"""Seconds between the embedded server's upload jobs' checks for their object (the real server's: 60)."""

CONFIG_KEYS = ('url', 'token_uri', 'client_id', 'client_secret', 'compute_resource', 'workdir')
"""The keys of the configuration file that the demo needs; ``temp_directory`` and ``billing_account`` may be absent."""


class RequestCounter(Protocol):
    """What the demo reads of a request log: the local server's, or :class:`ClientRequestLog`."""

    def mark(self) -> int:
        """Return a mark to pass to :meth:`counts`."""

    def counts(self, mark: int = 0) -> collections.Counter[str]:
        """Return the number of FirecREST API requests per endpoint after ``mark`` (token requests not counted)."""


class ClientRequestLog(logging.Handler):
    """Counts the FirecREST API requests this process sends, per endpoint, from the ``httpx`` logger.

    httpx logs every request it has sent at INFO with the method and URL as the first two arguments of the record. Only
    URLs under the FirecREST URL count (not the token endpoint, nor the S3 URLs of staged transfers); their path is
    turned into the route template the local server reports (``GET /filesystem/{system_name}/ops/ls``).
    """

    def __init__(self, url: str, token_uri: str, system: str) -> None:
        super().__init__(logging.INFO)
        self._prefix = url.rstrip('/')
        self._token_uri = token_uri
        self._system = re.compile(rf'/{re.escape(system)}(?=/|$)')
        self._endpoints: list[str] = []
        self._lock_endpoints = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Record the endpoint of a request to the FirecREST API."""
        if not isinstance(record.args, tuple) or len(record.args) < 2:
            return
        method, url = str(record.args[0]), str(record.args[1]).split('?', 1)[0]
        if url == self._token_uri or not url.startswith(self._prefix + '/'):
            return
        route = self._system.sub('/{system_name}', url[len(self._prefix) :], count=1)
        route = re.sub(r'/\d+(?=/|$)', '/{job_id}', route)
        with self._lock_endpoints:
            self._endpoints.append(f'{method} {route}')

    def mark(self) -> int:
        """Return a mark to pass to :meth:`counts`."""
        with self._lock_endpoints:
            return len(self._endpoints)

    def counts(self, mark: int = 0) -> collections.Counter[str]:
        """Return the number of API requests per endpoint after ``mark``."""
        with self._lock_endpoints:
            return collections.Counter(self._endpoints[mark:])

    @contextlib.contextmanager
    def installed(self) -> Iterator[ClientRequestLog]:
        """Count while the block runs: attach to the ``httpx`` logger at INFO, without passing its records on."""
        with _attached(self, logging.getLogger('httpx')):
            yield self


class TransferJobLogs(logging.Handler):
    """The log files of the transfer jobs this process starts, which FirecREST leaves on the cluster (from the
    records of :data:`~aiida_firecrest.client.firecrest_client.TRANSFER_JOBS_LOGGER`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._paths: list[str] = []
        self._lock_paths = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Record the log files of a transfer job."""
        with self._lock_paths:
            self._paths.extend(getattr(record, 'transfer_logs', ()))

    @property
    def paths(self) -> list[str]:
        """The log files recorded so far."""
        with self._lock_paths:
            return list(self._paths)

    @contextlib.contextmanager
    def installed(self) -> Iterator[TransferJobLogs]:
        """Record while the block runs: attach to the transfer-jobs logger at DEBUG, without passing its records on."""
        with _attached(self, TRANSFER_JOBS_LOGGER):
            yield self


@contextlib.contextmanager
def _attached(handler: logging.Handler, logger: logging.Logger) -> Iterator[None]:
    """Attach ``handler`` to ``logger`` for the block, the logger at the handler's level and not propagating; restore
    the logger afterwards."""
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(handler.level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def slurm_is_running() -> bool:
    """Whether this machine has a Slurm controller that answers."""
    if shutil.which('sinfo') is None:
        return False
    try:
        return subprocess.run(['sinfo', '-h'], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def slurm_default_account() -> str | None:
    """Return the Slurm default account of the current user, if accounting knows one."""
    result = subprocess.run(
        ['sacctmgr', '-n', '-P', 'show', 'user', os.environ.get('USER', 'root'), 'format=defaultaccount'],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


def create_throwaway_profile(name: str) -> None:
    """Create and load an SQLite profile without a broker in the configuration folder ``AIIDA_PATH`` names."""
    config = get_config(create=True)
    create_profile(
        config,
        name=name,
        email='demo@aiida-firecrest.local',
        storage_backend='core.sqlite_dos',
        storage_config={},
        broker_backend=None,
        broker_config=None,
    )
    config.set_option('runner.poll.interval', 1, scope=name)
    config.set_default_profile(name, overwrite=True)
    config.store()
    load_profile(name, allow_switch=True)


def set_up_computer(client_config: dict[str, Any], secret_file: Path | str, poll_interval: float) -> orm.InstalledCode:
    """Set up and configure the ``firecrest`` computer, as ``verdi computer setup/configure`` would; return its code.

    :param client_config: the keys of ``serve --config-out``.
    :param secret_file: where the transport reads the client secret: a private file, or ``env:VARNAME``.
    :param poll_interval: the computer's minimum job poll interval, in seconds.
    """
    computer = orm.Computer(
        label=COMPUTER_LABEL,
        hostname='localhost',
        description='The local FirecREST v2 server of the demo',
        transport_type='firecrest',
        scheduler_type='firecrest',
        workdir=client_config['workdir'],
    ).store()
    computer.set_minimum_job_poll_interval(poll_interval)
    computer.set_default_mpiprocs_per_machine(1)
    computer.configure(
        url=client_config['url'],
        token_uri=client_config['token_uri'],
        client_id=client_config['client_id'],
        client_secret=str(secret_file),
        compute_resource=client_config['compute_resource'],
        temp_directory=client_config.get('temp_directory') or '',
        billing_account=client_config.get('billing_account') or '',
    )
    return orm.InstalledCode(
        label='bash', computer=computer, filepath_executable='/bin/bash', default_calc_job_plugin='core.arithmetic.add'
    ).store()


@contextlib.contextmanager
def progress(requests: RequestCounter, mark: int, every: float = 5.0) -> Iterator[None]:
    """Print the elapsed time and the requests so far every ``every`` seconds while the block runs."""
    done = threading.Event()
    start = time.monotonic()

    def report() -> None:
        while not done.wait(every):
            count = sum(requests.counts(mark).values())
            click.echo(f'    ... {time.monotonic() - start:.0f} s, {count} FirecREST requests so far')

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_step(requests: RequestCounter, step: Step) -> tuple[orm.ProcessNode | None, bool]:
    """Run ``step`` through the engine, print its result, requests and time; return its node and success."""
    click.secho(f'==> {step.title}', bold=True)
    mark = requests.mark()
    start = time.monotonic()
    node = None
    try:
        with progress(requests, mark):
            _, node = run_get_node(step.builder())
        summary = step.check(node)
        ok = True
    except Exception as exc:  # a failed step is reported and the demo goes on
        summary, ok = f'FAILED: {exc}', False
    elapsed = time.monotonic() - start
    counts = requests.counts(mark)
    click.secho(f'    {summary}', fg='green' if ok else 'red')
    click.echo(f'    {sum(counts.values())} FirecREST requests (tokens not counted), {elapsed:.1f} s wall time')
    for endpoint, count in sorted(counts.items()):
        click.echo(f'      {count:4d}  {endpoint}')
    return node, ok


def prepare(base: Path, client_config: dict[str, Any], poll_interval: float) -> orm.InstalledCode:
    """Create the throwaway profile in ``base`` and the computer of ``client_config``; return its code."""
    click.echo(f'Creating a throwaway AiiDA profile in {base} ...')
    create_throwaway_profile('firecrest-demo')
    code = set_up_computer(client_config, secret_source(base, client_config['client_secret']), poll_interval)
    click.echo(f'    computer {COMPUTER_LABEL!r}: transport and scheduler `firecrest`, in {client_config["workdir"]}')
    return code


def run_calcjobs(requests: RequestCounter, code: orm.InstalledCode, staged_size: int) -> bool:
    """Run the three CalcJobs of the demo with ``code``; return whether every one succeeded."""
    _, ok_add = run_step(requests, arithmetic_add(code))
    staged, ok_staged = run_step(requests, staged_io(code, staged_size))
    ok_restart = False
    if staged is not None and ok_staged:
        _, ok_restart = run_step(requests, restart(code, lambda: staged))
    else:
        click.secho('==> Restart skipped: it restarts from the staged CalcJob, which failed', fg='red')
    return ok_add and ok_staged and ok_restart


def secret_source(base: Path, client_secret: str) -> str:
    """Return where the transport reads ``client_secret`` from: ``env:VARNAME`` or an absolute path as they are, else
    (the secret itself, as ``serve --config-out`` writes it) a private file in ``base`` that holds it."""
    if client_secret.startswith(('env:', '/')):
        return client_secret
    secret_file = base / 'client-secret'
    write_private_text(secret_file, client_secret)
    return str(secret_file)


def run_demo(base: Path, scheduler: str, staged_size: int) -> bool:
    """Run the whole demo in ``base`` on a local server of its own; return whether every step succeeded."""
    if scheduler == 'auto':
        scheduler = 'slurm' if slurm_is_running() else 'local'
    account = slurm_default_account() if scheduler == 'slurm' else None
    cluster = base / 'cluster'
    cluster.mkdir(parents=True, exist_ok=True)
    click.echo(f'Starting the local FirecREST v2 server (S3 staging, {scheduler} jobs) ...')
    # the real server's upload job looks for its object every minute (docs/cscs.md): the demo's checks every second
    settings = ServerSettings(
        roots=[cluster],
        scheduler=scheduler,  # type: ignore[arg-type]
        account=account,
        upload_check_interval=DEMO_UPLOAD_CHECK_INTERVAL,
    )
    with LocalFirecrest(settings) as server:
        client_config = server.client_config()
        click.echo(f'    listening on {server.url}, exposing {cluster}')
        write_private_json(base / 'firecrest-config.json', client_config)
        code = prepare(base, client_config, poll_interval=5.0 if scheduler == 'slurm' else 1.0)
        return run_calcjobs(server.request_log, code, staged_size)


def read_config(path: Path) -> dict[str, Any]:
    """Read a deployment's configuration (the keys of ``serve --config-out``).

    :raises click.BadParameter: if it is not a JSON object with the keys of :data:`CONFIG_KEYS`.
    """
    import json

    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f'cannot read {path}: {exc}', param_hint='--config') from exc
    missing = [key for key in CONFIG_KEYS if not isinstance(config, dict) or not config.get(key)]
    if missing:
        raise click.BadParameter(f'{path} lacks {", ".join(missing)}', param_hint='--config')
    return dict(config)


def run_demo_on(base: Path, config: dict[str, Any], staged_size: int, poll_interval: float = 5.0) -> bool:
    """Run the demo on the deployment ``config`` describes, in a fresh folder of its ``workdir`` removed afterwards.

    :param base: where the throwaway profile lives.
    :param config: the keys of ``serve --config-out``.
    :returns: whether every step succeeded.
    """
    workdir = f'{config["workdir"].rstrip("/")}/firecrest-demo-{uuid.uuid4().hex[:8]}'
    click.echo(f'FirecREST v2 at {config["url"]}, system {config["compute_resource"]!r}')
    requests = ClientRequestLog(config['url'], config['token_uri'], config['compute_resource'])
    code = prepare(base, {**config, 'workdir': workdir}, poll_interval)
    resolve_username(code.computer)
    with requests.installed(), TransferJobLogs().installed() as transfer_logs:
        try:
            return run_calcjobs(requests, code, staged_size)
        finally:
            remove_remote_workdir(code.computer)
            remove_remote_files(code.computer, transfer_logs.paths)


def resolve_username(computer: orm.Computer) -> None:
    """Replace ``{username}`` in the work directory of ``computer`` by the user name on the cluster.

    The engine does that for the folders of CalcJobs, but not for the paths the demo derives from the work directory
    (the stash of the restart, and what it removes at the end).
    """
    with computer.get_transport() as transport:
        computer.set_workdir(computer.get_workdir().format(username=transport.whoami()))


def remove_remote_files(computer: orm.Computer, paths: list[str]) -> None:
    """Remove ``paths`` (the logs of the demo's transfer jobs) through the transport of ``computer``, those that
    exist."""
    if not paths:
        return
    with computer.get_transport() as transport:
        existing = [path for path in paths if transport.path_exists(path)]
        for path in existing:
            transport.remove(path)
    click.echo(f'Removed the {len(existing)} log files of the transfer jobs from the deployment')


def remove_remote_workdir(computer: orm.Computer) -> None:
    """Remove the work directory of ``computer`` through its transport, with what the CalcJobs left there."""
    workdir = computer.get_workdir()
    with computer.get_transport() as transport:
        if transport.path_exists(workdir):
            transport.rmtree(workdir)
    click.echo(f'Removed {workdir} from the deployment')
