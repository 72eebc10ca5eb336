#!/usr/bin/env python
"""aiida-firecrest 1.0.0 (from PyPI) and this checkout side by side, on the same local FirecREST v2 server.

    python benchmarks/side_by_side.py [--small] [--calcjobs N] [--workers W] [--repeats R] [--output FILE]

Run it with the Python of this checkout's environment (``pip install -e '.[server]'``), on a machine with PostgreSQL
(a role of your user name that may create databases: ``.ci/setup-postgresql.sh USER``) and RabbitMQ
(``.ci/setup-rabbitmq.sh``). It

1. installs aiida-firecrest 1.0.0 from PyPI into a virtual environment of its own (``--venv``, kept between runs),
2. gives each plugin its own AiiDA configuration folder and profile (``core.psql_dos`` on PostgreSQL, RabbitMQ), as
   both register the same entry-point names (``firecrest``), and drives each through ``verdi`` and worker processes
   of this same file run by that plugin's Python: the two never share an interpreter,
3. runs the local server (``python -m aiida_firecrest.server``) in a process of its own, with ``--request-log``: every
   request is counted from the server's log, token requests included,
4. measures, alternating the plugins run by run (``--repeats`` times, the median reported): one CalcJob through the
   engine; put and get of a small file, a medium file (staged through S3) and a tree of many files;
   ``listdir_withattributes`` of a directory of 100 entries; put and get of a large file, beside the raw API path (the
   server's staged-transfer endpoints driven with plain httpx, no plugin),
5. then, on a second server enforcing CSCS's rate limit (10/s and 120/min per client), N CalcJobs submitted to a daemon
   of W workers, one plugin after the other, each after a minute without requests (the budget's window),
6. prints the table (Markdown) and writes it with every measurement to ``--output`` (JSON).

It checks the invariants of this checkout's plugin and exits 1 if one fails: every CalcJob finished OK, no HTTP 429
answered to it, every transfer intact. Times are reported, never checked. ``--small`` (10 CalcJobs, 2 workers, smaller
files, one repeat) is what CI runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import getpass
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click

PYPI_RELEASE = 'aiida-firecrest==1.0.0'
CSCS_RATE_LIMIT = '10/s,120/min'
BUDGET_PER_MINUTE = 120
"""The tighter window of :data:`CSCS_RATE_LIMIT` over a long run: the floor of a run's wall time is its accepted API
requests divided by this budget (a run may beat it by up to a minute: a fresh window accepts 120 at once)."""
QUIET_PERIOD = 61.0
"""Seconds without requests before each daemon run on the rate-limited server, so no run inherits another's budget."""
SETTLE = 0.2
"""Seconds to wait before reading the server's request log: it writes a request at most 50 ms after its answer."""
REPLY_MARKER = '@@side-by-side@@ '
"""The prefix of a worker's answer on its standard output (anything else there is the libraries' chatter)."""
SERVER_START_TIMEOUT = 180.0
UPLOAD_CHECK_INTERVAL = 0.2
"""Seconds between the upload jobs' checks for their object. The real server's job checks every minute, which would
bury every staged upload's own time (the plugins' and the raw path's alike) under up to a minute of waiting."""
DAEMON_STOP_TIMEOUT = 300
"""Seconds ``verdi daemon stop`` may wait for its workers (its default, 5 s, is too short for busy workers)."""
CALCJOB_CODE = 'bash'
MB = 10**6


# ------------------------------------------------------------------------------------------------------------------
# What is measured


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of the workloads."""

    small_file: int
    medium_file: int
    tree_files: int
    tree_file_size: int
    listing_entries: int
    large_file: int
    calcjobs: int
    workers: int
    repeats: int
    release_daemon: bool
    """Whether 1.0.0 runs the CalcJobs through the daemon too (minutes under the rate limit, nothing checked)."""


FULL = Sizes(
    small_file=10_000,
    medium_file=50 * MB,
    tree_files=1000,
    tree_file_size=1000,
    listing_entries=100,
    large_file=256 * MB,
    calcjobs=50,
    workers=4,
    repeats=3,
    release_daemon=True,
)
SMALL = Sizes(
    small_file=10_000,
    medium_file=8 * MB,
    tree_files=100,
    tree_file_size=1000,
    listing_entries=100,
    large_file=16 * MB,
    calcjobs=10,
    workers=2,
    repeats=1,
    release_daemon=False,
)
"""CI's size: every path of the full size (the medium and large files are above the 5 MiB direct-transfer limit), the
daemon run of this checkout alone."""


def size_label(size: int) -> str:
    """``10 kB``, ``50 MB``: the size in decimal units."""
    return f'{size / MB:g} MB' if size >= MB else f'{size / 1000:g} kB'


# ------------------------------------------------------------------------------------------------------------------
# The server and its request log


@dataclasses.dataclass(frozen=True)
class Requests:
    """The requests the server answered during one measurement, from its request log."""

    records: tuple[dict[str, Any], ...]

    @property
    def total(self) -> int:
        """Every request, token requests included."""
        return len(self.records)

    @property
    def tokens(self) -> int:
        """Requests to the token endpoint (not rate limited)."""
        return sum(record['path'].startswith('/auth/') for record in self.records)

    @property
    def api(self) -> int:
        """Requests to the FirecREST API (rate limited)."""
        return self.total - self.tokens

    @property
    def rate_limited(self) -> int:
        """Requests answered 429."""
        return sum(record['status'] == 429 for record in self.records)

    @property
    def accepted(self) -> int:
        """API requests not answered 429: those that used the budget."""
        return self.api - self.rate_limited

    def busiest(self, seconds: float) -> int:
        """The most API requests that reached the server in any window of ``seconds`` (those answered 429 included),
        by their arrival, when the server's rate limit counts them."""
        times = sorted(record['arrival'] for record in self.records if not record['path'].startswith('/auth/'))
        most, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def summary(self) -> dict[str, int]:
        return {
            'total': self.total,
            'api': self.api,
            'accepted': self.accepted,
            'tokens': self.tokens,
            'http_429': self.rate_limited,
        }


class RequestLogFile:
    """The JSON lines that ``serve --request-log`` appends, read as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: list[dict[str, Any]] = []
        self._offset = 0

    def _read(self) -> None:
        time.sleep(SETTLE)
        with self.path.open('rb') as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b'\n') + 1]
        self._offset += len(complete)
        self._records.extend(json.loads(line) for line in complete.splitlines())

    def mark(self) -> int:
        """Return a mark to pass to :meth:`since`."""
        self._read()
        return len(self._records)

    def since(self, mark: int) -> Requests:
        """Return the requests answered after ``mark``."""
        self._read()
        return Requests(tuple(self._records[mark:]))

    def last_time(self) -> float | None:
        """The time of the last request so far."""
        self._read()
        return self._records[-1]['time'] if self._records else None


class Server:
    """The local FirecREST v2 server in a process of its own (``python -m aiida_firecrest.server``)."""

    def __init__(self, directory: Path, root: Path, scheduler: str, account: str | None, rate_limit: str | None):
        directory.mkdir(parents=True)
        self.directory = directory
        self.config_file = directory / 'config.json'
        self.log = RequestLogFile(directory / 'requests.jsonl')
        self.command = [sys.executable, '-m', 'aiida_firecrest.server', '--root', str(root), '--scheduler', scheduler]
        self.command += ['--config-out', str(self.config_file), '--request-log', str(self.log.path)]
        self.command += ['--upload-check-interval', str(UPLOAD_CHECK_INTERVAL)]
        self.command += ['--account', account] if account else []
        self.command += ['--rate-limit', rate_limit] if rate_limit else []
        self.rate_limit = rate_limit
        self.config: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        output = (self.directory / 'server.log').open('wb')
        self._process = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not (self.config_file.exists() and self.log.path.exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                tail = (self.directory / 'server.log').read_text(errors='replace')[-3000:]
                raise click.ClickException(f'the local server did not start:\n{tail}')
            time.sleep(0.1)
        time.sleep(SETTLE)  # the file is complete once written
        self.config = json.loads(self.config_file.read_text())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


# ------------------------------------------------------------------------------------------------------------------
# The plugins, each in its environment and profile


@dataclasses.dataclass
class Plugin:
    """One aiida-firecrest: its Python, its AiiDA configuration folder and profile, its files."""

    key: str
    python: Path
    base: Path
    database: str
    version: str = ''

    @property
    def profile(self) -> str:
        return f'side-by-side-{self.key}'

    @property
    def title(self) -> str:
        return f'aiida-firecrest {self.version}'

    def env(self) -> dict[str, str]:
        """The environment of this plugin's processes: its configuration folder, its ``verdi`` first on the path."""
        path = os.pathsep.join([str(self.python.parent), os.environ.get('PATH', '')])
        return {**os.environ, 'AIIDA_PATH': str(self.base / 'aiida'), 'PATH': path, 'PYTHONUNBUFFERED': '1'}

    def run(self, *command: str) -> str:
        """Run ``command`` in this plugin's environment; return its output, or fail with it."""
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f'{" ".join(command)} failed ({self.key}):\n{result.stdout}{result.stderr}')
        return result.stdout

    def verdi(self, *args: str) -> str:
        return self.run(str(self.python.parent / 'verdi'), *args)

    def worker(self, *args: str) -> dict[str, Any]:
        """Run a one-shot worker command of this file in this plugin's Python; return its answer."""
        return read_reply(self.run(str(self.python), __file__, *args).splitlines())


def read_reply(lines: Iterator[str] | list[str]) -> dict[str, Any]:
    """Return the answer among a worker's output lines."""
    for line in lines:
        if line.startswith(REPLY_MARKER):
            reply: dict[str, Any] = json.loads(line[len(REPLY_MARKER) :])
            return reply
    raise click.ClickException('a worker ended without an answer')


def reply(data: dict[str, Any]) -> None:
    """Answer the orchestrator (from a worker)."""
    sys.stdout.write(REPLY_MARKER + json.dumps(data) + '\n')
    sys.stdout.flush()


def default_venv() -> Path:
    cache = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    return cache / 'aiida-firecrest' / 'side-by-side' / PYPI_RELEASE.replace('==', '-')


def ensure_release_venv(venv: Path) -> Path:
    """Create ``venv`` with :data:`PYPI_RELEASE` installed from PyPI, unless it already is; return its Python."""
    python = venv / 'bin' / 'python'
    stamp = venv / '.side-by-side-installed'
    if stamp.exists():
        return python
    if venv.exists():
        if not (venv / 'pyvenv.cfg').exists():
            raise click.ClickException(f'{venv} exists and is not a virtual environment: refusing to delete it')
        shutil.rmtree(venv)
    click.echo(f'Installing {PYPI_RELEASE} from PyPI into {venv} ...')
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    pip = [str(python), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', PYPI_RELEASE]
    subprocess.run(pip, check=True)
    stamp.touch()
    return python


def installed_version(python: Path) -> str:
    code = 'import importlib.metadata as m; print(m.version("aiida-firecrest"))'
    return subprocess.run([str(python), '-c', code], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def database(name: str) -> Iterator[None]:
    """A fresh PostgreSQL database of the current user (peer authentication over the Unix socket)."""
    subprocess.run(['createdb', name], check=True)
    try:
        yield
    finally:
        subprocess.run(['dropdb', '--if-exists', name], check=False)


def create_profile(plugin: Plugin) -> None:
    """Create the plugin's ``core.psql_dos`` profile with RabbitMQ, as ``verdi profile setup`` does."""
    (plugin.base / 'aiida' / '.aiida').mkdir(parents=True)
    plugin.verdi(
        'profile', 'setup', 'core.psql_dos', '-n', '--profile-name', plugin.profile, '--set-as-default',
        '--email', 'side-by-side@aiida-firecrest.local', '--first-name', 'Side', '--last-name', 'By Side',
        '--institution', 'aiida-firecrest', '--broker', 'core.rabbitmq',
        '--database-hostname', '', '--database-port', '5432', '--database-username', getpass.getuser(),
        '--database-password', 'peer', '--database-name', plugin.database,
        '--repository-uri', (plugin.base / 'repository').as_uri(),
    )  # fmt: skip
    plugin.verdi('config', 'set', 'warnings.rabbitmq_version', 'False')


def set_up_computer(plugin: Plugin, server: Server, label: str, poll_interval: float) -> None:
    """Set up and configure the computer ``label`` on ``server`` with ``verdi``, as a user would, and its code."""
    config = server.config
    secret = plugin.base / f'{label}.secret'
    descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, 'w') as handle:
        handle.write(config['client_secret'])
    root = Path(config['workdir']).parent
    workdir, temp_directory = root / f'work-{plugin.key}', root / f'tmp-{plugin.key}'
    temp_directory.mkdir(exist_ok=True)
    plugin.verdi(
        'computer', 'setup', '-n', '--label', label, '--hostname', 'localhost', '--transport', 'firecrest',
        '--scheduler', 'firecrest', '--work-dir', str(workdir), '--mpiprocs-per-machine', '1',
    )  # fmt: skip
    plugin.verdi(
        'computer', 'configure', 'firecrest', label, '-n', '--url', config['url'], '--token-uri', config['token_uri'],
        '--client-id', config['client_id'], '--client-secret', str(secret),
        '--compute-resource', config['compute_resource'], '--temp-directory', str(temp_directory),
        '--billing-account', config.get('billing_account') or '',
    )  # fmt: skip
    plugin.worker('worker-code', '--computer', label, '--poll-interval', str(poll_interval))


# ------------------------------------------------------------------------------------------------------------------
# Worker commands: run by each plugin's Python, in its profile


@click.command('worker-code', hidden=True)
@click.option('--computer', required=True)
@click.option('--poll-interval', type=float, required=True)
def worker_code(computer: str, poll_interval: float) -> None:
    """Set the job poll interval of ``computer`` and create its ``bash`` code for ArithmeticAddCalculation."""
    from aiida import load_profile, orm

    load_profile()
    node = orm.load_computer(computer)
    node.set_minimum_job_poll_interval(poll_interval)
    orm.InstalledCode(
        label=CALCJOB_CODE,
        computer=node,
        filepath_executable='/bin/bash',
        default_calc_job_plugin='core.arithmetic.add',
    ).store()
    reply({'code': f'{CALCJOB_CODE}@{computer}'})


def calcjob_builder(computer: str, x: int, y: int) -> Any:
    from aiida import orm
    from aiida.calculations.arithmetic.add import ArithmeticAddCalculation

    builder = ArithmeticAddCalculation.get_builder()
    builder.code = orm.load_code(f'{CALCJOB_CODE}@{computer}')
    builder.x, builder.y = orm.Int(x), orm.Int(y)
    return builder


def calcjob_outcome(node: Any, x: int, y: int) -> str | None:
    """Why the CalcJob ``node`` (of ``x + y``) did not succeed, or None if it did."""
    if not node.is_finished_ok:
        return f'CalcJob {node.pk}: {node.process_state.value}, exit status {node.exit_status} {node.exit_message!r}'
    if node.outputs.sum.value != x + y:
        return f'CalcJob {node.pk}: sum {node.outputs.sum.value}, expected {x + y}'
    return None


@click.command('worker-session', hidden=True)
@click.option('--computer', required=True)
def worker_session(computer: str) -> None:
    """Run the operations the orchestrator sends (JSON lines on standard input) with one open transport."""
    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    load_profile()
    user = orm.User.collection.get_default()
    assert user is not None, 'the profile has no default user'
    authinfo = orm.load_computer(computer).get_authinfo(user)
    with authinfo.get_transport() as transport:
        reply({'ready': True})
        for line in sys.stdin:
            command = json.loads(line)
            operation, args = command['operation'], command.get('args', [])
            start = time.perf_counter()
            answer: dict[str, Any] = {'error': None}
            try:
                if operation == 'calcjob':
                    _, node = run_get_node(calcjob_builder(computer, *args))
                    answer['error'] = calcjob_outcome(node, *args)
                else:
                    result = getattr(transport, operation)(*args)
                    if operation == 'listdir_withattributes':
                        answer['entries'] = len(result)
            except Exception as exc:  # a failed operation is a result to report
                answer['error'] = f'{type(exc).__name__}: {exc}'
            answer['seconds'] = time.perf_counter() - start
            reply(answer)


@click.command('worker-submit', hidden=True)
@click.option('--computer', required=True)
@click.option('--calcjobs', type=int, required=True)
@click.option('--timeout', type=float, required=True)
def worker_submit(computer: str, calcjobs: int, timeout: float) -> None:
    """Submit ``calcjobs`` CalcJobs to the daemon and wait until each has terminated or is paused (the engine pauses a
    CalcJob whose transport task failed five times: it waits for a human), or for ``timeout`` seconds."""
    from aiida import load_profile
    from aiida.engine import submit

    load_profile()
    start = time.time()
    nodes = [(submit(calcjob_builder(computer, index, 1)), index) for index in range(calcjobs)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(node.is_terminated or node.paused for node, _ in nodes):
        time.sleep(0.5)
    settled = [node for node, _ in nodes if node.is_terminated or node.paused]
    end = max((node.mtime.timestamp() for node in settled), default=time.time())
    failures = [
        calcjob_outcome(node, index, 1)
        if node.is_terminated
        else f'CalcJob {node.pk}: {"paused" if node.paused else "not terminated"}'
        for node, index in nodes
    ]
    reply({'start': start, 'end': end, 'failures': [failure for failure in failures if failure]})


class Session:
    """A ``worker-session`` of one plugin: operations on one open transport, timed by the worker."""

    def __init__(self, plugin: Plugin, computer: str) -> None:
        command = [str(plugin.python), __file__, 'worker-session', '--computer', computer]
        self._process = subprocess.Popen(
            command, env=plugin.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        read_reply(self._process.stdout)

    def call(self, operation: str, *args: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(
            json.dumps({'operation': operation, 'args': [str(arg) if isinstance(arg, Path) else arg for arg in args]})
            + '\n'
        )
        self._process.stdin.flush()
        return read_reply(self._process.stdout)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


# ------------------------------------------------------------------------------------------------------------------
# Files, and whether a transfer kept them intact


def write_random(path: Path, size: int) -> None:
    with path.open('wb') as handle:
        for offset in range(0, size, 2**20):
            handle.write(os.urandom(min(2**20, size - offset)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(path: Path) -> dict[str, str]:
    """The SHA-256 of the file ``path``, or of every file under the directory ``path`` by relative path."""
    if path.is_file():
        return {'': sha256(path)}
    return {str(item.relative_to(path)): sha256(item) for item in sorted(path.rglob('*')) if item.is_file()}


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Item:
    """A file or a tree that each plugin puts and gets."""

    name: str
    label: str
    size: int
    """Bytes in all, for the throughput."""
    tree: bool = False


def make_data(local: Path, remote: Path, sizes: Sizes) -> tuple[list[Item], dict[str, dict[str, str]]]:
    """Write the files to transfer in ``local`` and their copies in ``remote`` (the server's side, written directly),
    and a directory of ``listing_entries`` files there; return the items and their manifests."""
    local.mkdir(parents=True)
    items = [
        Item('small', f'{size_label(sizes.small_file)} file', sizes.small_file),
        Item('medium', f'{size_label(sizes.medium_file)} file', sizes.medium_file),
        Item(
            'tree',
            f'tree of {sizes.tree_files} files of {size_label(sizes.tree_file_size)}',
            sizes.tree_files * sizes.tree_file_size,
            tree=True,
        ),
        Item('large', f'{size_label(sizes.large_file)} file', sizes.large_file),
    ]
    for item in items:
        if item.tree:
            for index in range(sizes.tree_files):
                directory = local / item.name / f'dir{index % 10}'
                directory.mkdir(parents=True, exist_ok=True)
                write_random(directory / f'file{index}.bin', sizes.tree_file_size)
        else:
            write_random(local / item.name, item.size)
    shutil.copytree(local, remote)
    for index in range(sizes.listing_entries):
        (remote / 'listing').mkdir(exist_ok=True)
        (remote / 'listing' / f'entry{index:03d}').write_text(f'{index}\n')
    return items, {item.name: manifest(local / item.name) for item in items}


# ------------------------------------------------------------------------------------------------------------------
# The raw API path: the staged-transfer endpoints with plain httpx


RAW_POLL_INTERVAL = 0.1
RAW_CONCURRENCY = 8
LIVE_JOB_STATES = {'PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'REQUEUED', 'SUSPENDED', 'STAGE_OUT'}


class RawApi:
    """Staged uploads and downloads as the FirecREST v2 API defines them, without any plugin or pyfirecrest."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.system = config['compute_resource']

    async def _client(self) -> Any:
        import httpx

        data = {
            'grant_type': 'client_credentials',
            'client_id': self.config['client_id'],
            'client_secret': self.config['client_secret'],
        }
        token = httpx.post(self.config['token_uri'], data=data).raise_for_status().json()['access_token']
        return httpx.AsyncClient(
            base_url=self.config['url'], headers={'Authorization': f'Bearer {token}'}, timeout=None
        )

    async def _wait(self, client: Any, job: dict[str, Any]) -> None:
        while True:
            answer = (await client.get(f'/compute/{self.system}/jobs/{job["jobId"]}')).raise_for_status()
            state = answer.json()['jobs'][0]['status']['state']
            if state == 'COMPLETED':
                return
            if state not in LIVE_JOB_STATES:
                raise RuntimeError(f'transfer job {job["jobId"]} ended {state}')
            await asyncio.sleep(RAW_POLL_INTERVAL)

    async def put(self, local: Path, remote: Path) -> None:
        """Upload ``local`` to ``remote``: multipart upload to S3, then the transfer job moves it in place."""
        size = local.stat().st_size
        async with await self._client() as client:
            body = {'path': str(remote), 'transferDirectives': {'transferMethod': 's3', 'fileSize': size}}
            started = (await client.post(f'/filesystem/{self.system}/transfer/upload', json=body)).raise_for_status()
            directives = started.json()['transferDirectives']
            part_size = directives['maxPartSize']
            semaphore = asyncio.Semaphore(RAW_CONCURRENCY)

            async def put_part(index: int, url: str) -> tuple[int, str]:
                with local.open('rb') as handle:
                    handle.seek(index * part_size)
                    data = handle.read(part_size)
                async with semaphore:
                    answer = (await client.put(url, content=data, headers={'Authorization': ''})).raise_for_status()
                return index + 1, answer.headers['ETag']

            urls = directives['partsUploadUrls']
            tags = await asyncio.gather(*(put_part(index, url) for index, url in enumerate(urls)))
            root = ElementTree.Element('CompleteMultipartUpload', {'xmlns': 'http://s3.amazonaws.com/doc/2006-03-01/'})
            for number, tag in sorted(tags):
                part = ElementTree.SubElement(root, 'Part')
                ElementTree.SubElement(part, 'ETag').text = tag
                ElementTree.SubElement(part, 'PartNumber').text = str(number)
            complete = ElementTree.tostring(root, encoding='unicode')
            url = directives['completeUploadUrl']
            (await client.post(url, content=complete, headers={'Authorization': ''})).raise_for_status()
            await self._wait(client, started.json()['transferJob'])

    async def get(self, remote: Path, local: Path) -> None:
        """Download ``remote`` to ``local``: the transfer job puts it in S3, then it is downloaded from there."""
        async with await self._client() as client:
            body = {'sourcePath': str(remote), 'transferDirectives': {'transferMethod': 's3'}}
            started = (await client.post(f'/filesystem/{self.system}/transfer/download', json=body)).raise_for_status()
            await self._wait(client, started.json()['transferJob'])
            url = started.json()['transferDirectives']['downloadUrl']
            async with client.stream('GET', url, headers={'Authorization': ''}) as answer:
                answer.raise_for_status()
                with local.open('wb') as handle:
                    async for chunk in answer.aiter_bytes(2**20):
                        handle.write(chunk)


# ------------------------------------------------------------------------------------------------------------------
# The measurements


RAW = 'raw'
"""The column of the raw API path."""


@dataclasses.dataclass
class Measurements:
    """Every run of every workload, by workload and column (plugin key or :data:`RAW`)."""

    runs: dict[str, dict[str, list[dict[str, Any]]]] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, workload: str, column: str, run: dict[str, Any]) -> None:
        self.runs.setdefault(workload, {}).setdefault(column, []).append(run)
        outcome = f'FAILED: {run["error"]}' if run.get('error') else f'{run["seconds"]:.2f} s'
        click.echo(f'    {self.labels[workload]:<40} {column:<6} {outcome}, {run["requests"]["total"]} requests')

    def median(self, workload: str, column: str) -> dict[str, Any] | None:
        """The run of median time (the slower of the middle two)."""
        runs = sorted(self.runs.get(workload, {}).get(column, []), key=lambda run: run['seconds'])
        return runs[len(runs) // 2] if runs else None


def intact(target: Path, expected: dict[str, str]) -> str | None:
    """Why ``target`` is not a copy of the source of manifest ``expected``, or None if it is."""
    found = manifest(target) if target.exists() else {}
    return None if found == expected else f'{target} differs from its source ({len(found)} files found)'


class Bench:
    """The workloads of the first phase, each run by a worker session or the raw API path, its requests counted."""

    def __init__(
        self, server: Server, sessions: dict[str, Session], base: Path, sizes: Sizes, measurements: Measurements
    ) -> None:
        self.server = server
        self.sessions = sessions
        self.base = base
        self.sizes = sizes
        self.local = base / 'data'
        self.remote = Path(server.config['workdir']).parent / 'bench'
        self.raw = RawApi(server.config)
        self.measurements = measurements

    def _call(self, column: str, operation: str, *args: Any) -> dict[str, Any]:
        if column != RAW:
            return self.sessions[column].call(operation, *args)
        start = time.perf_counter()
        try:
            asyncio.run(getattr(self.raw, operation)(*args))
            error = None
        except Exception as exc:  # a failed transfer is a result to report
            error = f'{type(exc).__name__}: {exc}'
        return {'seconds': time.perf_counter() - start, 'error': error}

    def measure(
        self, workload: str, column: str, operation: str, *args: Any, check: Callable[[], str | None] | None = None
    ) -> dict[str, Any]:
        """Run ``operation`` in ``column``; record and return its time, requests and error (its own, else the
        ``check``'s of its result)."""
        mark = self.server.log.mark()
        result = self._call(column, operation, *args)
        result['requests'] = self.server.log.since(mark).summary()
        if not result['error'] and check is not None:
            result['error'] = check()
        self.measurements.add(workload, column, result)
        return result

    def transfer(self, item: Item, manifests: dict[str, dict[str, str]], repeat: int, columns: list[str]) -> None:
        """Put ``item`` in each column, then get it, each copy checked and removed."""
        for direction in ('put', 'get'):
            for column in columns:
                if direction == 'put':
                    source, target = self.local / item.name, self.remote / column / f'{item.name}-{repeat}'
                else:
                    source, target = (
                        self.remote / 'src' / item.name,
                        self.base / column / 'got' / f'{item.name}-{repeat}',
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                operation = direction if column == RAW else f'{direction}{"tree" if item.tree else "file"}'
                check = functools.partial(intact, target, manifests[item.name])
                self.measure(f'{direction} {item.name}', column, operation, source, target, check=check)
                remove(target)

    def listing(self, column: str) -> None:
        expected = self.sizes.listing_entries
        mark = self.server.log.mark()
        result = self._call(column, 'listdir_withattributes', self.remote / 'src' / 'listing')
        result['requests'] = self.server.log.since(mark).summary()
        if not result['error'] and result.get('entries') != expected:
            result['error'] = f'{result.get("entries")} entries listed, {expected} expected'
        self.measurements.add('listdir', column, result)

    def run(self, items: list[Item], manifests: dict[str, dict[str, str]], *, transfers_only: bool = False) -> None:
        """Every workload (only the puts and gets if ``transfers_only``), ``repeats`` times, the plugins alternating:
        first, then last."""
        labels, sizes = self.measurements.labels, self.measurements.sizes
        if not transfers_only:
            labels['calcjob'] = 'one CalcJob (ArithmeticAdd, engine in-process)'
        for item in items:
            for direction in ('put', 'get'):
                labels[f'{direction} {item.name}'] = f'{direction} {item.label}'
                sizes[f'{direction} {item.name}'] = item.size
        if not transfers_only:
            labels['listdir'] = f'listdir_withattributes of {self.sizes.listing_entries} entries'
        keys = list(self.sessions)
        for repeat in range(self.sizes.repeats):
            click.echo(f'  repeat {repeat + 1} of {self.sizes.repeats}')
            order = keys if repeat % 2 == 0 else keys[::-1]
            for column in order if not transfers_only else []:
                self.measure('calcjob', column, 'calcjob', repeat, 1)
            for item in items:
                self.transfer(item, manifests, repeat, [*order, RAW] if item.name == 'large' else order)
            for column in order if not transfers_only else []:
                self.listing(column)


# ------------------------------------------------------------------------------------------------------------------
# Many CalcJobs through a daemon, under the rate limit


def wait_quiet(log: RequestLogFile) -> None:
    """Wait until no request was answered for :data:`QUIET_PERIOD`: the next run starts with the whole budget."""
    last = log.last_time()
    wait = 0.0 if last is None else last + QUIET_PERIOD - time.time()
    if wait > 0:
        click.echo(f'    waiting {wait:.0f} s without requests (the budget of the last minute)')
        time.sleep(wait)


def daemon_run(plugin: Plugin, server: Server, computer: str, sizes: Sizes, timeout: float) -> dict[str, Any]:
    """Submit ``sizes.calcjobs`` CalcJobs to a daemon of ``sizes.workers`` workers; return what happened."""
    wait_quiet(server.log)
    click.echo(f'  {plugin.title}: {sizes.calcjobs} CalcJobs, {sizes.workers} daemon workers ...')
    mark = server.log.mark()
    plugin.verdi('daemon', 'start', str(sizes.workers))
    try:
        answer = plugin.worker(
            'worker-submit', '--computer', computer, '--calcjobs', str(sizes.calcjobs), '--timeout', str(timeout)
        )
    finally:
        plugin.verdi('daemon', 'stop', '--timeout', str(DAEMON_STOP_TIMEOUT))
    requests = server.log.since(mark)
    seconds = answer['end'] - answer['start']
    result = {
        'seconds': seconds,
        'calcjobs': sizes.calcjobs,
        'workers': sizes.workers,
        'finished_ok': sizes.calcjobs - len(answer['failures']),
        'failures': answer['failures'],
        'requests': requests.summary(),
        'busiest_60s': requests.busiest(60.0),
        'busiest_1s': requests.busiest(1.0),
        'floor_seconds': requests.accepted * 60.0 / BUDGET_PER_MINUTE,
    }
    click.echo(
        f'    {seconds:.0f} s, {result["finished_ok"]}/{sizes.calcjobs} finished OK, {requests.total} requests, '
        f'{requests.rate_limited} answered 429'
    )
    return result


# ------------------------------------------------------------------------------------------------------------------
# The table


def transfer_cell(run: dict[str, Any] | None, size: int | None) -> str:
    if run is None:
        return ''
    if run['error']:
        return 'failed'
    speed = f' ({size / MB / run["seconds"]:.0f} MB/s)' if size and size >= MB else ''
    return f'{run["seconds"]:.2f} s{speed}, {run["requests"]["total"]} req'


def throughput_ratio(run: dict[str, Any] | None, raw: dict[str, Any]) -> str:
    """The throughput of ``run`` over the raw API path's, in per cent (time of the raw run over its time)."""
    if run is None or run['error'] or raw['error']:
        return ''
    return f'{100 * raw["seconds"] / run["seconds"]:.0f} %'


def daemon_rows(runs: dict[str, dict[str, Any]], columns: list[str], rate_limit: str) -> list[list[str]]:
    first = next(iter(runs.values()))
    title = f'{first["calcjobs"]} CalcJobs, {first["workers"]} workers, {rate_limit}'

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        cells = (cell(runs[column]) if column in runs else '' if column == RAW else 'not run' for column in columns)
        return [label, *cells]

    return [
        row(f'{title}: wall time', lambda run: f'{run["seconds"]:.0f} s'),
        row('  finished OK', lambda run: f'{run["finished_ok"]}/{run["calcjobs"]}'),
        row('  requests (of which token)', lambda run: f'{run["requests"]["total"]} ({run["requests"]["tokens"]})'),
        row('  requests per CalcJob', lambda run: f'{run["requests"]["total"] / run["calcjobs"]:.1f}'),
        row('  answered 429', lambda run: str(run['requests']['http_429'])),
        row(
            '  most API requests arriving in any 60 s / 1 s', lambda run: f'{run["busiest_60s"]} / {run["busiest_1s"]}'
        ),
        row(f'  floor: accepted API requests at {BUDGET_PER_MINUTE}/min', lambda run: f'{run["floor_seconds"]:.0f} s'),
        row('  wall time / floor', lambda run: f'{run["seconds"] / run["floor_seconds"]:.2f}'),
    ]


def table(
    measurements: Measurements, daemon: dict[str, dict[str, Any]], titles: dict[str, str], rate_limit: str
) -> list[list[str]]:
    """The rows of the table: a header, then one row per workload (the median run of each)."""
    columns = list(titles)
    rows = [['workload', *titles.values()]]
    for workload, label in measurements.labels.items():
        size = measurements.sizes.get(workload)
        rows.append([label, *(transfer_cell(measurements.median(workload, column), size) for column in columns)])
        raw = measurements.median(workload, RAW)
        if raw is not None:
            rows.append(
                [
                    f"  {label}: throughput / raw API's",
                    *(
                        throughput_ratio(measurements.median(workload, column), raw) if column != RAW else ''
                        for column in columns
                    ),
                ]
            )
    if daemon:
        rows += daemon_rows(daemon, columns, rate_limit)
    return rows


def markdown(rows: list[list[str]]) -> str:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = [
        '| ' + ' | '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + ' |' for row in rows
    ]
    lines.insert(1, '|' + '|'.join('-' * (width + 2) for width in widths) + '|')
    return '\n'.join(lines)


def violations(measurements: Measurements, daemon: dict[str, dict[str, Any]], key: str) -> list[str]:
    """The invariants the plugin ``key`` breaks: a failed run, a CalcJob not finished OK, an HTTP 429."""
    found = []
    for workload, columns in measurements.runs.items():
        for run in columns.get(key, []):
            if run['error']:
                found.append(f'{measurements.labels[workload]}: {run["error"]}')
            if run['requests']['http_429']:
                found.append(f'{measurements.labels[workload]}: {run["requests"]["http_429"]} requests answered 429')
    if key in daemon:
        run = daemon[key]
        found += [f'daemon run: {failure}' for failure in run['failures']]
        if run['requests']['http_429']:
            found.append(f'daemon run: {run["requests"]["http_429"]} requests answered 429')
    return found


# ------------------------------------------------------------------------------------------------------------------
# The command


def slurm_is_running() -> bool:
    if shutil.which('sinfo') is None:
        return False
    result = subprocess.run(['sinfo', '-h'], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def slurm_default_account() -> str | None:
    command = ['sacctmgr', '-n', '-P', 'show', 'user', getpass.getuser(), 'format=defaultaccount']
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


@contextlib.contextmanager
def sessions(plugins: list[Plugin], computer: str) -> Iterator[dict[str, Session]]:
    opened: dict[str, Session] = {}
    try:
        for plugin in plugins:
            opened[plugin.key] = Session(plugin, computer)
        yield opened
    finally:
        for session in opened.values():
            session.close()


def benchmark(
    base: Path,
    plugins: list[Plugin],
    sizes: Sizes,
    scheduler: str,
    poll_interval: float,
    timeout: float,
    *,
    transfers_only: bool = False,
) -> tuple[Measurements, dict[str, dict[str, Any]]]:
    """Both phases: every workload on an unlimited server, then the daemon runs on a rate-limited one; with
    ``transfers_only``, the puts and gets of the first phase alone."""
    account = slurm_default_account() if scheduler == 'slurm' else None
    root = base / 'cluster'
    root.mkdir()
    click.echo('Writing the files to transfer ...')
    items, manifests = make_data(base / 'data', root / 'bench' / 'src', sizes)
    measurements = Measurements()
    times = 'once' if sizes.repeats == 1 else f'{sizes.repeats} times'
    click.echo(f'Phase 1: every workload, {times}, on a server without rate limit ({scheduler} jobs)')
    with Server(base / 'server-unlimited', root, scheduler, account, None) as server:
        for plugin in plugins:
            set_up_computer(plugin, server, 'unlimited', poll_interval)
        with sessions(plugins, 'unlimited') as opened:
            Bench(server, opened, base, sizes, measurements).run(items, manifests, transfers_only=transfers_only)
    daemon: dict[str, dict[str, Any]] = {}
    if transfers_only:
        return measurements, daemon
    click.echo(f'Phase 2: CalcJobs through the daemon on a server enforcing {CSCS_RATE_LIMIT} per client')
    with Server(base / 'server-limited', root, scheduler, account, CSCS_RATE_LIMIT) as server:
        for plugin in plugins:
            set_up_computer(plugin, server, 'limited', poll_interval)
        for plugin in plugins:
            if plugin.key == 'this' or sizes.release_daemon:
                daemon[plugin.key] = daemon_run(plugin, server, 'limited', sizes, timeout)
    return measurements, daemon


@click.group(invoke_without_command=True)
@click.option('--small', is_flag=True, help='The size CI runs: 10 CalcJobs, 2 workers, smaller files, one repeat.')
@click.option('--calcjobs', type=click.IntRange(min=1), default=None, help='CalcJobs through the daemon [50].')
@click.option('--workers', type=click.IntRange(min=1), default=None, help='Daemon workers [4].')
@click.option('--repeats', type=click.IntRange(min=1), default=None, help='Runs of each other workload [3].')
@click.option(
    '--scheduler',
    type=click.Choice(['auto', 'local', 'slurm']),
    default='auto',
    show_default=True,
    help="The server's job backend: Slurm if it is running (auto), or batch scripts run as local processes.",
)
@click.option(
    '--poll-interval',
    type=float,
    default=1.0,
    show_default=True,
    help="The computers' minimum job poll interval, the same for both plugins (AiiDA's default, 10 s, would hide "
    'everything else in the time of a CalcJob).',
)
@click.option(
    '--venv',
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f'The virtual environment of {PYPI_RELEASE}, created if missing [{default_venv()}].',
)
@click.option(
    '--workdir',
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help='Keep the profiles, the server files and logs here, instead of a temporary folder removed at the end.',
)
@click.option(
    '--output',
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path('side-by-side.json'),
    show_default=True,
    help='The JSON file of the table and of every measurement.',
)
@click.option('--timeout', type=float, default=3600.0, show_default=True, help='Seconds a daemon run may take.')
@click.option(
    '--transfers-only',
    is_flag=True,
    help='Only the puts and gets (the 256 MB file beside the raw API path included): no CalcJob, no listing, no '
    'daemon run.',
)
@click.pass_context
def main(
    ctx: click.Context,
    small: bool,
    calcjobs: int | None,
    workers: int | None,
    repeats: int | None,
    scheduler: str,
    poll_interval: float,
    venv: Path | None,
    workdir: Path | None,
    output: Path,
    timeout: float,
    transfers_only: bool,
) -> None:
    """aiida-firecrest 1.0.0 and this checkout side by side: print the table, write it with every run to --output."""
    if ctx.invoked_subcommand is not None:
        return
    sizes = SMALL if small else FULL
    sizes = dataclasses.replace(
        sizes,
        calcjobs=sizes.calcjobs if calcjobs is None else calcjobs,
        workers=sizes.workers if workers is None else workers,
        repeats=sizes.repeats if repeats is None else repeats,
    )
    if scheduler == 'auto':
        scheduler = 'slurm' if slurm_is_running() else 'local'
    release_python = ensure_release_venv((venv or default_venv()).absolute())
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        base = workdir.absolute() if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:8]
        plugins = [
            Plugin('1.0.0', release_python, base / 'release', f'side_by_side_{run_id}_release'),
            Plugin('this', Path(sys.executable), base / 'this', f'side_by_side_{run_id}_this'),
        ]
        for plugin in plugins:
            plugin.version = installed_version(plugin.python)
            stack.enter_context(database(plugin.database))
            create_profile(plugin)
        measurements, daemon = benchmark(
            base, plugins, sizes, scheduler, poll_interval, timeout, transfers_only=transfers_only
        )
    titles = {plugin.key: plugin.title + (' (this checkout)' if plugin.key == 'this' else '') for plugin in plugins}
    titles[RAW] = 'raw API (httpx)'
    rows = table(measurements, daemon, titles, CSCS_RATE_LIMIT)
    broken = violations(measurements, daemon, 'this')
    output.write_text(
        json.dumps(
            {
                'sizes': dataclasses.asdict(sizes),
                'scheduler': scheduler,
                'poll_interval': poll_interval,
                'rate_limit': CSCS_RATE_LIMIT,
                'versions': {plugin.key: plugin.version for plugin in plugins},
                'table': rows,
                'runs': measurements.runs,
                'labels': measurements.labels,
                'daemon': daemon,
                'violations': broken,
                'seconds': time.monotonic() - start,
            },
            indent=1,
        )
        + '\n'
    )
    click.echo(f'\n{markdown(rows)}\n\nWritten to {output} ({time.monotonic() - start:.0f} s in all).')
    if broken:
        click.secho('Invariants of this checkout broken:\n  ' + '\n  '.join(broken), fg='red', err=True)
        sys.exit(1)
    click.secho(
        'Invariants of this checkout hold: every run intact, every CalcJob finished OK, no HTTP 429.', fg='green'
    )


main.add_command(worker_code)
main.add_command(worker_session)
main.add_command(worker_submit)

if __name__ == '__main__':
    main()
