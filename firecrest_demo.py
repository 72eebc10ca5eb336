#!/usr/bin/env python
"""aiida-firecrest demo: AiiDA CalcJobs on a local FirecREST v2 server, end to end.

    python firecrest_demo.py                       # the demo: server, throwaway profile, three CalcJobs
    python firecrest_demo.py serve --config-out cfg.json   # only the server, until interrupted
    python firecrest_demo.py --config cfg.json     # the same demo against any FirecREST v2 deployment

The demo needs nothing but this package installed: it starts the local FirecREST v2 server with its S3 server (and
uses the machine's Slurm if one is running, else runs jobs as local processes), creates a throwaway AiiDA profile
(SQLite, no broker) in a temporary folder, and removes everything it started when it ends.

With ``--config FILE`` (the keys that ``serve --config-out`` writes: url, token_uri, client_id, client_secret,
compute_resource, workdir, and optionally temp_directory and billing_account), it runs against that deployment instead,
in a fresh folder of ``workdir`` that it removes at the end. ``client_secret`` may also be an absolute path to a file
readable by you alone, or ``env:VARNAME``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import click

from aiida_firecrest.server.cli import serve


@click.group(invoke_without_command=True)
@click.option(
    '--scheduler',
    type=click.Choice(['auto', 'local', 'slurm']),
    default='auto',
    show_default=True,
    help='Job backend of the server: Slurm if it is running (auto), or batch scripts run as local processes.',
)
@click.option(
    '--workdir',
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help='Keep the profile, the server files and the configuration here instead of a temporary folder.',
)
@click.option(
    '--staged-size',
    type=int,
    default=6 * 2**20,
    show_default=True,
    help='Bytes of the input and output of the staged CalcJob (above the 5 MiB direct-transfer limit).',
)
@click.option(
    '--config',
    'config_file',
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='Run against the FirecREST v2 deployment this JSON file describes (as `serve --config-out` writes it) '
    'instead of a local server of its own.',
)
@click.pass_context
def cli(ctx: click.Context, scheduler: str, workdir: Path | None, staged_size: int, config_file: Path | None) -> None:
    """Run the demo (no command), or a command."""
    if ctx.invoked_subcommand is not None:
        return
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='firecrest-demo-') as temporary:
        base = (workdir or Path(temporary)).resolve()
        os.environ['AIIDA_PATH'] = str(base / 'aiida')
        (base / 'aiida' / '.aiida').mkdir(parents=True, exist_ok=True)
        # only now: AiiDA reads AIIDA_PATH when it is imported
        from aiida_firecrest.demo.run import read_config, run_demo, run_demo_on

        if config_file is None:
            ok = run_demo(base, scheduler, staged_size)
        else:
            ok = run_demo_on(base, read_config(config_file), staged_size)
    click.secho(
        f'Demo {"passed" if ok else "FAILED"} in {time.monotonic() - start:.1f} s',
        fg='green' if ok else 'red',
        bold=True,
    )
    sys.exit(0 if ok else 1)


cli.add_command(serve)

if __name__ == '__main__':
    cli()
