#!/usr/bin/env python
"""Requests and time of the ``firecrest`` transport's transfers, per direction, on the local FirecREST server.

    python benchmarks/transfers.py [--big-size MiB] [--tree-files N] [--repeat K]

For one small file, one big file (staged through S3 above the 5 MiB direct-transfer limit) and a tree of many small
files, it prints the FirecREST requests each put and get took (counted by the server, token requests apart) and the
wall time (best of ``--repeat``); then the big file's put and get by the raw API path (the staged-transfer endpoints
with plain httpx, polling the transfer job every 0.1 s: ``side_by_side.RawApi``), the reference. Request counts are
exact; times depend on the machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import tempfile
import time
from pathlib import Path

import click
from side_by_side import UPLOAD_CHECK_INTERVAL, RawApi  # benchmarks/ is the script's folder, first on sys.path

from aiida_firecrest.server import LocalFirecrest, ServerSettings
from aiida_firecrest.server.cli import write_private_text
from aiida_firecrest.transport import FirecrestTransport


def make_tree(root: Path, files: int) -> None:
    """Write ``files`` small files in ten subdirectories of ``root``."""
    for index in range(files):
        directory = root / f'dir{index % 10}'
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f'file{index}.txt').write_text(f'content of file {index}\n')


async def measure(server: LocalFirecrest, transport: FirecrestTransport, label: str, coroutine_function, repeat: int):
    """Run ``coroutine_function()`` ``repeat`` times; print the requests of the first run and the best time."""
    best = float('inf')
    counts = None
    for _ in range(repeat):
        mark = server.request_log.mark()
        start = time.perf_counter()
        await coroutine_function()
        best = min(best, time.perf_counter() - start)
        counts = counts or server.request_log.counts(mark)
    assert counts is not None
    detail = ', '.join(f'{count} {endpoint.split(" ", 1)[1].rsplit("/", 1)[-1]}' for endpoint, count in counts.items())
    click.echo(f'{label:<28} {sum(counts.values()):>8} {best:>9.2f}   {detail}')


async def run(server: LocalFirecrest, local: Path, secret_file: Path, big_size: int, tree_files: int, repeat: int):
    config = server.client_config()
    transport = FirecrestTransport(
        machine='localhost',
        url=config['url'],
        token_uri=config['token_uri'],
        client_id=config['client_id'],
        client_secret=str(secret_file),
        compute_resource=config['compute_resource'],
        temp_directory=config['temp_directory'],
        billing_account='',
    )
    remote = f'{config["workdir"]}/benchmark'
    small, big, tree, raw_back = local / 'small.dat', local / 'big.dat', local / 'tree', local / 'raw.back'
    tree_copies = itertools.count()
    small.write_bytes(os.urandom(1024))
    big.write_bytes(os.urandom(big_size))
    make_tree(tree, tree_files)
    async with transport:
        await transport.makedirs_async(remote, ignore_existing=True)
        await transport.whoami_async()  # the token and the per-system facts, once per process, as in the engine
        click.echo(f'{"operation":<28} {"requests":>8} {"seconds":>9}   per endpoint')
        cases = [
            ('put 1 KiB file', lambda: transport.putfile_async(small, f'{remote}/small.dat')),
            ('get 1 KiB file', lambda: transport.getfile_async(f'{remote}/small.dat', local / 'small.back')),
            (f'put {big_size / 2**20:.0f} MiB file', lambda: transport.putfile_async(big, f'{remote}/big.dat')),
            (
                f'get {big_size / 2**20:.0f} MiB file',
                lambda: transport.getfile_async(f'{remote}/big.dat', local / 'big.back'),
            ),
            (f'put {tree_files}-file tree', lambda: transport.puttree_async(tree, f'{remote}/tree{next(tree_copies)}')),
            (
                f'get {tree_files}-file tree',
                lambda: transport.gettree_async(f'{remote}/tree0', local / f'tree.back{next(tree_copies)}'),
            ),
        ]
        for label, function in cases:
            await measure(server, transport, label, function, repeat)
        raw = RawApi(config)
        size = f'{big_size / 2**20:.0f} MiB'
        await measure(server, transport, f'raw API put {size}', lambda: raw.put(big, Path(f'{remote}/raw.dat')), repeat)
        await measure(
            server, transport, f'raw API get {size}', lambda: raw.get(Path(f'{remote}/raw.dat'), raw_back), repeat
        )
        await transport.rmtree_async(remote)
    for copy in (local / 'big.back', raw_back):
        assert hashlib.sha256(big.read_bytes()).digest() == hashlib.sha256(copy.read_bytes()).digest()
    assert len(list((local / f'tree.back{repeat}').rglob('*.txt'))) == tree_files


@click.command()
@click.option('--big-size', type=int, default=50, show_default=True, help='Size of the big file in MiB.')
@click.option('--tree-files', type=int, default=1000, show_default=True, help='Number of files of the tree.')
@click.option('--repeat', type=int, default=3, show_default=True, help='Runs per operation; the best time counts.')
def main(big_size: int, tree_files: int, repeat: int) -> None:
    """Print the requests and the time of the firecrest transport's transfers."""
    with tempfile.TemporaryDirectory() as temporary:
        local = Path(temporary)
        (local / 'cluster').mkdir()
        settings = ServerSettings(roots=[local / 'cluster'], upload_check_interval=UPLOAD_CHECK_INTERVAL)
        with LocalFirecrest(settings) as server:
            secret_file = local / 'secret'
            write_private_text(secret_file, server.settings.client_secret)
            asyncio.run(run(server, local, secret_file, big_size * 2**20, tree_files, repeat))


if __name__ == '__main__':
    main()
