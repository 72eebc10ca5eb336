#!/usr/bin/env python
"""FirecREST requests and wall time of ``ArithmeticAddCalculation`` CalcJobs run through the AiiDA engine.

    python benchmarks/calcjob.py [--calcjobs N] [--scheduler local|slurm] [--safe-interval S ...]

Runs N CalcJobs one after the other on the local FirecREST server, in a throwaway profile, and prints the requests of
each (counted by the server, token requests apart), how many of them were polls, and the wall time; with
``--safe-interval`` (repeatable), N CalcJobs for each value of the transport's ``safe_interval`` in turn, and the
median wall time of each value. aiida-firecrest
1.0.0 made 39 requests for one such CalcJob against the real FirecREST v2 server.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click

POLLS = ('GET /compute/{system_name}/jobs', 'GET /compute/{system_name}/jobs/{job_id}')
"""A poll of the jobs: the list (several CalcJobs running), or one job (a single CalcJob)."""


@click.command()
@click.option('--calcjobs', type=int, default=5, show_default=True, help='How many CalcJobs to run.')
@click.option('--scheduler', type=click.Choice(['local', 'slurm']), default='local', show_default=True)
@click.option('--breakdown', is_flag=True, help='Also print the requests of each CalcJob per endpoint.')
@click.option(
    '--safe-interval',
    'safe_intervals',
    type=float,
    multiple=True,
    help="Run the CalcJobs with this safe_interval (repeatable); default: the transport's default.",
)
def main(calcjobs: int, scheduler: str, breakdown: bool, safe_intervals: tuple[float, ...]) -> None:
    """Print the FirecREST requests of each CalcJob."""
    with tempfile.TemporaryDirectory(prefix='firecrest-benchmark-') as temporary:
        base = Path(temporary)
        os.environ['AIIDA_PATH'] = str(base / 'aiida')
        (base / 'aiida' / '.aiida').mkdir(parents=True)
        from aiida.engine import run_get_node

        from aiida_firecrest.demo.run import create_throwaway_profile, set_up_computer, slurm_default_account
        from aiida_firecrest.demo.steps import arithmetic_add
        from aiida_firecrest.server import LocalFirecrest, ServerSettings
        from aiida_firecrest.server.cli import write_private_text

        (base / 'cluster').mkdir()
        account = slurm_default_account() if scheduler == 'slurm' else None
        settings = ServerSettings(roots=[base / 'cluster'], scheduler=scheduler, account=account)  # type: ignore[arg-type]
        with LocalFirecrest(settings, staging=False) as server:
            create_throwaway_profile('firecrest-benchmark')
            client_config = server.client_config()
            write_private_text(base / 'secret', client_config['client_secret'])
            code = set_up_computer(client_config, base / 'secret', poll_interval=1.0)
            for safe_interval in safe_intervals or (None,):
                if safe_interval is not None:
                    set_safe_interval(code.computer, safe_interval)
                    click.echo(f'safe_interval {safe_interval} s')
                click.echo(f'{"calcjob":>7} {"requests":>8} {"polls":>5} {"seconds":>8}')
                seconds = []
                for index in range(calcjobs):
                    mark = server.request_log.mark()
                    start = time.monotonic()
                    step = arithmetic_add(code, index, 1)
                    _, node = run_get_node(step.builder())
                    step.check(node)
                    seconds.append(time.monotonic() - start)
                    counts = server.request_log.counts(mark)
                    polls = sum(counts[poll] for poll in POLLS)
                    click.echo(f'{index + 1:>7} {sum(counts.values()):>8} {polls:>5} {seconds[-1]:>8.1f}')
                    if breakdown:
                        for endpoint, count in sorted(counts.items()):
                            click.echo(f'{"":>7} {count:>8} {endpoint}')
                click.echo(f'{"median":>7} {"":>8} {"":>5} {statistics.median(seconds):>8.1f}')


def set_safe_interval(computer: Any, seconds: float) -> None:
    """Give the transport of ``computer`` (for the current user) the ``safe_interval`` ``seconds``."""
    from aiida import orm

    authinfo = computer.get_authinfo(orm.User.collection.get_default())
    authinfo.set_auth_params({**authinfo.get_auth_params(), 'safe_interval': seconds})


if __name__ == '__main__':
    main()
