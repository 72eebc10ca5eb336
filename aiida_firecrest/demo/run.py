"""The demo: a local FirecREST server, a throwaway AiiDA profile, and three CalcJobs through the engine.

Import this module only after ``AIIDA_PATH`` points where the throwaway profile may live (``firecrest_demo.py`` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from aiida import load_profile, orm
from aiida.engine import run_get_node
from aiida.manage.configuration import create_profile, get_config

from ..server import LocalFirecrest, ServerSettings
from ..server.cli import write_private_json, write_private_text
from .steps import Step, arithmetic_add, restart, staged_io

COMPUTER_LABEL = 'firecrest-demo'


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


def set_up_computer(client_config: dict[str, Any], secret_file: Path, poll_interval: float) -> orm.InstalledCode:
    """Set up and configure the ``firecrest`` computer, as ``verdi computer setup/configure`` would; return its code."""
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
        temp_directory=client_config['temp_directory'],
        billing_account=client_config['billing_account'] or '',
    )
    return orm.InstalledCode(
        label='bash', computer=computer, filepath_executable='/bin/bash', default_calc_job_plugin='core.arithmetic.add'
    ).store()


@contextlib.contextmanager
def progress(server: LocalFirecrest, mark: int, every: float = 5.0) -> Iterator[None]:
    """Print the elapsed time and the requests so far every ``every`` seconds while the block runs."""
    done = threading.Event()
    start = time.monotonic()

    def report() -> None:
        while not done.wait(every):
            requests = len(server.request_log.since(mark))
            click.echo(f'    ... {time.monotonic() - start:.0f} s, {requests} FirecREST requests so far')

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_step(server: LocalFirecrest, step: Step) -> tuple[orm.ProcessNode | None, bool]:
    """Run ``step`` through the engine, print its result, requests and time; return its node and success."""
    click.secho(f'==> {step.title}', bold=True)
    mark = server.request_log.mark()
    start = time.monotonic()
    node = None
    try:
        with progress(server, mark):
            _, node = run_get_node(step.builder())
        summary = step.check(node)
        ok = True
    except Exception as exc:  # a failed step is reported and the demo goes on
        summary, ok = f'FAILED: {exc}', False
    elapsed = time.monotonic() - start
    counts = server.request_log.counts(mark)
    click.secho(f'    {summary}', fg='green' if ok else 'red')
    click.echo(f'    {sum(counts.values())} FirecREST requests (tokens not counted), {elapsed:.1f} s wall time')
    for endpoint, count in sorted(counts.items()):
        click.echo(f'      {count:4d}  {endpoint}')
    return node, ok


def run_demo(base: Path, scheduler: str, staged_size: int) -> bool:
    """Run the whole demo in ``base``; return whether every step succeeded."""
    if scheduler == 'auto':
        scheduler = 'slurm' if slurm_is_running() else 'local'
    account = slurm_default_account() if scheduler == 'slurm' else None
    cluster = base / 'cluster'
    cluster.mkdir(parents=True, exist_ok=True)
    click.echo(f'Starting the local FirecREST v2 server (S3 staging, {scheduler} jobs) ...')
    settings = ServerSettings(roots=[cluster], scheduler=scheduler, account=account)  # type: ignore[arg-type]
    with LocalFirecrest(settings) as server:
        client_config = server.client_config()
        click.echo(f'    listening on {server.url}, exposing {cluster}')
        click.echo(f'Creating a throwaway AiiDA profile in {base} ...')
        create_throwaway_profile('firecrest-demo')
        secret_file = base / 'client-secret'
        write_private_text(secret_file, client_config['client_secret'])
        write_private_json(base / 'firecrest-config.json', client_config)
        code = set_up_computer(client_config, secret_file, poll_interval=5.0 if scheduler == 'slurm' else 1.0)
        click.echo(f'    computer {COMPUTER_LABEL!r}: transport and scheduler `firecrest`')

        _, ok_add = run_step(server, arithmetic_add(code))
        staged, ok_staged = run_step(server, staged_io(code, staged_size))
        ok_restart = False
        if staged is not None and ok_staged:
            _, ok_restart = run_step(server, restart(code, lambda: staged))
        else:
            click.secho('==> Restart skipped: it restarts from the staged CalcJob, which failed', fg='red')
        return ok_add and ok_staged and ok_restart
