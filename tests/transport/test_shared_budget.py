"""One request budget for every process of the machine: processes of one client share it, against a server that
enforces the same limit.

Each process is a fresh Python interpreter with the same AiiDA configuration folder (``AIIDA_PATH``), as the daemon
workers, ``verdi`` and scripts of one user are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.client.request_budget import shared_budget

PROCESSES = 3
REQUESTS_PER_PROCESS = 8
PER_SECOND = 10
"""The server's limit and the clients' budget: 3 x 8 requests need more than two seconds of it."""

SEND_REQUESTS = """
import asyncio, json, sys
from aiida_firecrest.transport import FirecrestTransport

options, count = json.loads(sys.argv[1]), int(sys.argv[2])

async def main():
    async with FirecrestTransport(**options) as transport:
        await asyncio.gather(
            *(transport.client.stat(options['compute_resource'], options['workdir']) for _ in range(count))
        )

asyncio.run(main())
"""

RESERVE = """
import sys
from aiida_firecrest.client.request_budget import shared_budget

print(shared_budget(sys.argv[1], sys.argv[2], 10, 120).take('reserve'))
"""


@pytest.fixture
def aiida_path(tmp_path: Path) -> Path:
    """The AiiDA configuration folder of the processes of one test (its budget files)."""
    path = tmp_path / 'aiida-path'
    (path / '.aiida').mkdir(parents=True)
    return path


def run_processes(script: str, aiida_path: Path, *args_of_each: list[str]) -> list[str]:
    """Run ``script`` in one process per argument list, all at once; return their outputs."""
    environment = {**os.environ, 'AIIDA_PATH': str(aiida_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, '-c', script, *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in args_of_each
    ]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
        outputs.append(stdout.decode())
    return outputs


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[Any]:
    """A local server of this test alone that answers 429 beyond :data:`PER_SECOND` requests in any second."""
    from aiida_firecrest.server import LocalFirecrest, RateLimit, ServerSettings

    (tmp_path / 'cluster').mkdir()
    settings = ServerSettings(roots=[tmp_path / 'cluster'], rate_limit=RateLimit.parse(f'{PER_SECOND}/s'))
    with LocalFirecrest(settings, staging=False) as server:
        yield server


def test_processes_of_one_client_share_the_budget(limited_server: Any, aiida_path: Path, tmp_path: Path) -> None:
    """Three processes, each within the budget alone, together within it too: the server refuses none."""
    from aiida_firecrest.server.cli import write_private_text

    config = limited_server.client_config()
    write_private_text(tmp_path / 'secret', config['client_secret'])
    options = {
        **config,
        'machine': 'localhost',
        'client_secret': str(tmp_path / 'secret'),
        'requests_per_second': PER_SECOND,
        'requests_per_minute': 0,
    }
    mark = limited_server.request_log.mark()
    run_processes(SEND_REQUESTS, aiida_path, *[[json.dumps(options), str(REQUESTS_PER_PROCESS)]] * PROCESSES)
    statuses = limited_server.request_log.statuses(mark)
    assert statuses[200] == PROCESSES * REQUESTS_PER_PROCESS
    assert statuses[429] == 0


def test_retry_after_holds_back_every_process(aiida_path: Path) -> None:
    """A 429 seen by one process (its ``Retry-After`` written to the budget) holds back the requests of the others."""
    budget = shared_budget('https://firecrest.test/api', 'client', 10, 120, directory=budget_folder(aiida_path))
    budget.pause(30.0)
    (delay,) = run_processes(RESERVE, aiida_path, ['https://firecrest.test/api', 'client'])
    assert 25.0 < float(delay) <= 30.0


def budget_folder(aiida_path: Path) -> Path:
    """The folder of the budget files of processes whose ``AIIDA_PATH`` is ``aiida_path``."""
    return aiida_path / '.aiida' / 'firecrest' / 'request-budgets'
