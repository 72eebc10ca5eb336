#!/usr/bin/env python
"""The soak: N CalcJobs through the AiiDA daemon while the local server injects every fault kind at rate p.

    python benchmarks/soak.py [--calcjobs N] [--fault-rate P] [--workers W] [--expect-all-ok] [--output FILE]

It starts the local FirecREST v2 server in this process (tokens valid for one minute), creates a throwaway
``core.psql_dos`` profile with RabbitMQ (as ``side_by_side.py`` does: PostgreSQL with a role of your user name,
RabbitMQ on localhost), a ``firecrest`` computer and a daemon of W workers, and submits N ``core.arithmetic.add``
CalcJobs with every fault of the server at rate P (429, 500 and 503, connections dropped before and after the server
acted, 2 s delays; every new job missing from the scheduler's answers for 5 s) and one server restart once half of
them have ended (every token revoked, 2 s of 503). Paused CalcJobs are played (as ``verdi process play``) and waited
for. The machinery is :mod:`aiida_firecrest.demo.soak`.

It prints the figures (Markdown) and writes them to ``--output`` (JSON). It exits 1 if a CalcJob is lost (not finished
OK even after being played), wrong or submitted twice on the server; with ``--expect-all-ok``, also if one did not
finish OK the first time (paused, excepted).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import click
from side_by_side import DAEMON_STOP_TIMEOUT, Plugin, create_profile, database, markdown, slurm_default_account


@contextlib.contextmanager
def running_daemon(plugin: Plugin, workers: int) -> Iterator[None]:
    """Run the daemon of ``plugin``'s profile with ``workers`` workers while the block runs."""
    plugin.verdi('daemon', 'start', str(workers))
    try:
        yield
    finally:
        plugin.verdi('daemon', 'stop', '--timeout', str(DAEMON_STOP_TIMEOUT))


def unload_profile() -> None:
    """Unload the profile and close its database connections, so that its database can be dropped."""
    from aiida.manage import get_manager

    get_manager().unload_profile()
    gc.collect()  # the connection of the storage's last session goes with its objects


@click.command()
@click.option('--calcjobs', type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    '--fault-rate', type=click.FloatRange(0, 1), default=0.05, show_default=True, help='The rate of each fault kind.'
)
@click.option('--workers', type=click.IntRange(min=1), default=4, show_default=True, help='Daemon workers.')
@click.option('--delay', type=float, default=2.0, show_default=True, help='Seconds of a delayed request.')
@click.option(
    '--job-invisible', type=float, default=5.0, show_default=True, help='Seconds a new job is missing from answers.'
)
@click.option(
    '--restart-downtime', type=float, default=2.0, show_default=True, help='Seconds of 503 after the restart.'
)
@click.option(
    '--token-lifetime',
    type=click.IntRange(min=31),
    default=60,
    show_default=True,
    help="Seconds of the server's tokens.",
)
@click.option(
    '--requests-per-second',
    type=click.FloatRange(min=0),
    default=None,
    help="The transport's request budget per second (0: none); default: the plugin's (10).",
)
@click.option(
    '--requests-per-minute',
    type=click.FloatRange(min=0),
    default=None,
    help="The transport's request budget per minute (0: none); default: the plugin's (120).",
)
@click.option('--seed', type=int, default=None, help='Seed of the fault draws (default: random).')
@click.option('--scheduler', type=click.Choice(['local', 'slurm']), default='local', show_default=True)
@click.option(
    '--poll-interval', type=float, default=1.0, show_default=True, help="The computer's minimum job poll interval."
)
@click.option(
    '--timeout', type=float, default=3600.0, show_default=True, help='Seconds to wait for the CalcJobs, each pass.'
)
@click.option('--expect-all-ok', is_flag=True, help='Also fail if a CalcJob did not finish OK the first time.')
@click.option(
    '--workdir',
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help='Keep the profile, the cluster files and the daemon log here instead of a temporary folder.',
)
@click.option('--output', type=click.Path(dir_okay=False, path_type=Path), default=Path('soak.json'), show_default=True)
def main(
    calcjobs: int,
    fault_rate: float,
    workers: int,
    delay: float,
    job_invisible: float,
    restart_downtime: float,
    token_lifetime: int,
    requests_per_second: float | None,
    requests_per_minute: float | None,
    seed: int | None,
    scheduler: Literal['local', 'slurm'],
    poll_interval: float,
    timeout: float,
    expect_all_ok: bool,
    workdir: Path | None,
    output: Path,
) -> None:
    """Run the soak; print its figures and write them to --output."""
    with contextlib.ExitStack() as stack:
        base = workdir.absolute() if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base.mkdir(parents=True, exist_ok=True)
        plugin = Plugin('soak', Path(sys.executable), base / 'soak', f'soak_{uuid.uuid4().hex[:8]}')
        stack.enter_context(database(plugin.database))
        create_profile(plugin)
        os.environ['AIIDA_PATH'] = str(plugin.base / 'aiida')  # AiiDA reads it when imported: only now
        from aiida import load_profile

        from aiida_firecrest.client.request_budget import DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_SECOND
        from aiida_firecrest.demo.run import set_up_computer
        from aiida_firecrest.demo.soak import every_fault, run_soak, set_request_budget, soak_server_settings
        from aiida_firecrest.server import LocalFirecrest
        from aiida_firecrest.server.cli import write_private_text

        load_profile(plugin.profile)
        stack.callback(unload_profile)
        cluster = base / 'cluster'
        cluster.mkdir(exist_ok=True)
        account = slurm_default_account() if scheduler == 'slurm' else None
        settings = soak_server_settings(cluster, scheduler, account, token_lifetime)
        server = stack.enter_context(LocalFirecrest(settings))
        config = server.client_config()
        write_private_text(base / 'client-secret', config['client_secret'])
        code = set_up_computer(config, base / 'client-secret', poll_interval)
        if requests_per_second is not None or requests_per_minute is not None:
            set_request_budget(
                code.computer,
                DEFAULT_REQUESTS_PER_SECOND if requests_per_second is None else requests_per_second,
                DEFAULT_REQUESTS_PER_MINUTE if requests_per_minute is None else requests_per_minute,
            )
        faults = every_fault(
            fault_rate, delay=delay, job_invisible=job_invisible, restart_downtime=restart_downtime, seed=seed
        )
        click.echo(f'{calcjobs} CalcJobs, {workers} daemon workers, every fault at {fault_rate:.0%} ({scheduler} jobs)')
        start = time.monotonic()
        with running_daemon(plugin, workers):
            result = run_soak(
                server, code, calcjobs, faults, timeout=timeout, progress=lambda line: click.echo(f'    {line}')
            )
    broken = result.violations(expect_all_ok=expect_all_ok)
    budget = {'requests_per_second': requests_per_second, 'requests_per_minute': requests_per_minute}
    parameters = {'workers': workers, 'scheduler': scheduler, 'token_lifetime': token_lifetime, 'budget': budget}
    output.write_text(json.dumps({**parameters, **result.as_json(), 'violations': broken}, indent=1) + '\n')
    click.echo(f'\n{markdown(result.rows())}\n\nWritten to {output} ({time.monotonic() - start:.0f} s).')
    for report in result.reports[:5]:
        click.echo(f'\n{report}', err=True)
    if broken:
        click.secho('Broken:\n  ' + '\n  '.join(broken), fg='red', err=True)
        sys.exit(1)
    click.secho('None lost, none wrong, none duplicated.', fg='green')


if __name__ == '__main__':
    main()
